"""Which databases to snapshot and under which name: one URL, or a targets file for ``history collect``.

A target's name is its identity in the store (many targets share one store). By default it is derived from
the URL's host, port and database — never the user or password — so the same database snapshotted from cron
and from a CronJob lands in one history. A targets file has one target per line, ``name = URL`` or just ``URL``;
a line starting with ``#`` (or `` #`` after the URL) is a comment, and ``${VAR}`` is replaced by the environment
variable (keep passwords in secrets, not in the file).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pgpulse.db.urls import async_url
from pgpulse.errors import UserError, one_line
from pgpulse.sql import redact_url

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COMMENT = re.compile(r"\s+#.*$")  # after whitespace only: a '#' inside a URL stays


class TargetsError(UserError, ValueError):
    """A target or targets file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class HistoryTarget:
    name: str
    url: str

    def __repr__(self) -> str:  # never print the password, even in a traceback
        return f"HistoryTarget(name={self.name!r}, url={redact_url(self.url)!r})"


def identity(url: str) -> tuple[str, int, str]:
    """``(host, port, database)``: what makes two URLs the same database, whoever connects."""
    parsed = async_url(url)
    return (parsed.host or "localhost", parsed.port or 5432, parsed.database or parsed.username or "")


def default_name(url: str) -> str:
    host, port, database = identity(url)
    return f"{host}:{port}/{database}"


def _expand(text: str, where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise TargetsError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(value, text)


def read_targets_file(path: Path) -> list[HistoryTarget]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TargetsError(f"cannot read targets file {path}: {exc.strerror or exc}") from exc
    targets: list[HistoryTarget] = []
    for number, raw in enumerate(lines, start=1):
        line = "" if raw.lstrip().startswith("#") else _COMMENT.sub("", raw).strip()
        if not line:
            continue
        where = f"{path}:{number}"
        name, sep, url = line.partition("=")
        if sep and "://" not in name:
            name, url = name.strip(), url.strip()
        else:
            name, url = "", line
        url = _expand(url, where)
        try:
            identity(url)  # refuse a URL that is not PostgreSQL's here, with its line number
            targets.append(HistoryTarget(name or default_name(url), url))
        except ValueError as exc:
            raise TargetsError(f"{where}: {one_line(exc)}") from exc
    if not targets:
        raise TargetsError(f"{path} lists no targets (one `name = postgresql://…` per line)")
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TargetsError(f"{path}: target names must be unique ({', '.join(duplicates)} repeated)")
    return targets
