"""Targets files: many databases, one per line, read the same way by ``pgpulse doctor --targets`` and
``pgpulse history collect --targets``.

The format (README, "Targets file")::

    # the fleet (a comment line)
    postgresql://app@db1.internal/app                        # URL: the command names it
    replica postgresql://ro:pa#ss@db2.internal/app           # NAME URL; a '#' in a password stays
    billing = postgresql://app:${BILLING_PW}@db3:6432/bill   # NAME = URL (spaces around '=' optional)

- A ``#`` starts a comment only as the first non-blank character of a line or right after a space or tab. A URL
  never contains a blank, so a comment can never cut one: a ``#`` in a password (raw or ``%23``) stays.
- ``${VAR}`` in a URL is replaced by that environment variable (keep passwords in secrets, not in the file).
- A NAME has no ``=`` and no control characters, is at most 200 characters, and (in the ``NAME URL`` form) has no
  blank. Without one, the command supplies the name (``default_name``): the doctor shows the URL without its
  password, history uses ``host:port/dbname``.
- UTF-8 (a byte-order mark is skipped), LF or CRLF line ends, blank lines ignored; at most 10,000 targets and
  lines of at most 8,192 characters. The file is read line by line, so a huge one is refused without being
  loaded whole.

Every problem is a :class:`TargetsError` whose text is one line: ``FILE:LINE: what is wrong: what to do`` for a
bad line, with any URL shown without its password.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qsl

from pgpulse.db.urls import DatabaseURLError, async_url
from pgpulse.errors import UserError
from pgpulse.sql.redact import MASK, redact_url

MAX_TARGETS = 10_000
MAX_LINE = 8_192
MAX_NAME = 200
FORMS = "URL, NAME URL or NAME = URL"
_TRAILING = "text after the URL: start a comment with ' #', write a blank inside a URL as %20"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COMMENT = re.compile(r"(?:^|[ \t])#.*$")  # at the start, or after a blank: never inside a URL
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # a tab is a blank; anything else would garble a terminal
_SECRET_KEY = re.compile(r"pass|secret|token|key|auth|credential", re.IGNORECASE)


class TargetsError(UserError, ValueError):
    """A targets file that cannot be used; ``str()`` is one line saying where, what is wrong and what to do."""


@dataclass(frozen=True)
class Target:
    """One database to work on: the name it is reported (and stored) under, and its URL."""

    name: str
    url: str

    def __repr__(self) -> str:  # never print the password, even in a traceback
        return f"Target(name={self.name!r}, url={redact_url(self.url)!r})"


def read_targets(path: Path, default_name: Callable[[str], str] = redact_url) -> list[Target]:
    """The targets listed in the file at ``path``, in order; ``default_name(url)`` names a line without a NAME."""
    try:
        with path.open(encoding="utf-8-sig", newline=None) as lines:
            return _parse(lines, str(path), default_name)
    except OSError as exc:
        raise TargetsError(f"cannot read targets file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TargetsError(f"cannot read targets file {path}: it is not UTF-8 text: save it as UTF-8") from exc


def parse_targets(text: str, source: str = "targets", default_name: Callable[[str], str] = redact_url) -> list[Target]:
    """The targets listed in ``text`` (the content of a targets file); ``source`` names it in errors."""
    return _parse(io.StringIO(text.removeprefix("\ufeff"), newline=None), source, default_name)


def _lines(stream: TextIO, source: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` without its line end, reading at most ``MAX_LINE`` characters at a time."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE and not line.endswith("\n"):
            raise TargetsError(
                f"{source}:{number}: the line is longer than {MAX_LINE:,} characters: one database per line"
            )
        yield number, line.rstrip("\n")


def _parse(stream: TextIO, source: str, default_name: Callable[[str], str]) -> list[Target]:
    targets: list[Target] = []
    seen: dict[str, int] = {}  # name → the line that gave it
    for number, raw in _lines(stream, source):
        where = f"{source}:{number}"
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        if len(targets) == MAX_TARGETS:
            raise TargetsError(
                f"{where}: more than {MAX_TARGETS:,} targets: split the fleet into several files and run each"
            )
        target = _target(line, where, default_name)
        if target.name in seen:
            raise TargetsError(
                f"{where}: the name {target.name!r} is already used on line {seen[target.name]}: "
                f"give each database its own name ({FORMS})"
            )
        seen[target.name] = number
        targets.append(target)
    if not targets:
        raise TargetsError(f"{source}: no targets in the file: write one database per line ({FORMS})")
    return targets


def _target(line: str, where: str, default_name: Callable[[str], str]) -> Target:
    """One non-blank, comment-free line → its target; every error is one line that shows no password."""
    if _CONTROL.search(line):
        raise TargetsError(f"{where}: the line contains a control character: remove it")
    head, equals, tail = line.partition("=")
    if equals and "://" not in head:  # NAME = URL (a '=' inside a URL comes after its '://')
        name: str | None = head.strip()
        url = tail.strip()
        if not name:
            raise TargetsError(f"{where}: nothing before '=': write NAME = URL, or the URL alone")
    else:
        words = line.split()
        if len(words) > 2:
            raise TargetsError(f"{where}: expected {FORMS}, found {len(words)} words: one database per line")
        if len(words) == 2 and "://" in words[0]:
            if "://" in words[1]:
                raise TargetsError(f"{where}: two URLs on one line: one database per line ({FORMS})")
            raise TargetsError(f"{where}: {_TRAILING}")
        name, url = (None, words[0]) if len(words) == 1 else (words[0], words[1])
    if name is not None and len(name) > MAX_NAME:
        raise TargetsError(f"{where}: the name is longer than {MAX_NAME} characters: give a shorter one")
    url = _expand(url, where)
    if not url:
        raise TargetsError(f"{where}: nothing after '=': write NAME = URL")
    if any(c.isspace() for c in url):
        raise TargetsError(f"{where}: {_TRAILING}")
    if "://" not in url:  # not shown: without a scheme it may be user:password@host, which nothing would mask
        raise TargetsError(f"{where}: no postgresql:// URL on the line: expected {FORMS}")
    try:
        async_url(url)  # the checks a URL given on the command line gets: scheme, syntax, port range
        name = name if name is not None else default_name(url)
    except DatabaseURLError as exc:
        raise TargetsError(f"{where}: {_scrub(str(exc), url)}") from exc
    return Target(name, url)


def _expand(url: str, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match[1] not in os.environ:
            raise TargetsError(f"{where}: environment variable {match[1]} is not set: export it, or write the value")
        return os.environ[match[1]]

    return _VARIABLE.sub(value, url)


def _scrub(message: str, url: str) -> str:
    """``message`` with every possible password of ``url`` masked, whatever shape the URL is in.

    The URL module's messages show the URL through ``redact_url`` (which masks a non-numeric "port" too, as in
    ``postgresql://user:secret`` with no ``@``); this is the second net: any fragment of the line that could be a
    password is masked wherever a message quotes it."""
    _, _, rest = url.partition("://")
    if "@" in rest:
        secrets = [rest.rpartition("@")[0].partition(":")[2]]
    else:  # host:port, or user:password without its '@'; a raw '#' may be in the password or start a fragment
        heads = (re.split(r"[/?]", rest, maxsplit=1)[0], re.split(r"[/?#]", rest, maxsplit=1)[0])
        secrets = [p for p in (h.partition(":")[2] for h in heads) if not p.isdigit()]
    query = rest.partition("?")[2]
    secrets += [v for k, v in parse_qsl(query, keep_blank_values=True) if _SECRET_KEY.search(k)]
    secrets += [v for k, v in (p.partition("=")[::2] for p in query.split("&")) if _SECRET_KEY.search(k)]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(secret, MASK)
    return message
