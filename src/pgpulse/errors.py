"""The errors pgpulse raises on purpose: one base, :class:`PgPulseError`, and the few kinds a caller tells apart.

The library raises and never exits the process (an app that embeds the profiler or calls the doctor keeps
running); only :mod:`pgpulse.cli.errors` turns an error into one line on stderr and an exit code. Each
capability's own errors (``ConnectError``, ``WorkloadError``, ``StoreError``…) subclass :class:`UserError`, whose
``str()`` is already the one line to show.
"""

from __future__ import annotations


class PgPulseError(Exception):
    """Base of every error pgpulse raises on purpose. The library raises; only the CLI turns one into a line and
    an exit code."""


class UserError(PgPulseError):
    """An error the user can fix; ``str()`` is the one-line message shown to them."""


class MissingExtraError(UserError):
    """A command needs an optional part of pgpulse that is not installed; ``str()`` says what to install."""


class DemoDatabaseRefused(UserError):
    """``pgpulse demo``/``serve`` will not write to this database: it exists and the demo did not create it."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (driver errors run to several), or its class name when empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
