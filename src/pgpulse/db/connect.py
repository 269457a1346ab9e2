"""Opening an inspecting session: one place that turns every way a connection can fail into one line.

The doctor, the history snapshot and any other reader connect to a user's database with their own session
settings (read-only, timeouts); what differs is only the exception class their caller maps to an exit code.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from pgpulse.db.urls import libpq_url
from pgpulse.errors import one_line


async def open_session(
    url: str, *, timeout: float, server_settings: Mapping[str, str], error: type[Exception]
) -> asyncpg.Connection:
    """``asyncpg.connect`` with ``server_settings``; any failure becomes ``error`` with a one-line reason."""
    try:
        return await asyncpg.connect(libpq_url(url), timeout=timeout, server_settings=dict(server_settings))
    except asyncpg.InvalidPasswordError as exc:
        raise error(f"authentication failed: {one_line(exc)}") from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise error(f"no such database: {one_line(exc)}") from exc
    except asyncpg.PostgresError as exc:
        raise error(f"the server refused the connection: {one_line(exc)}") from exc
    except TimeoutError as exc:
        raise error(f"timed out after {timeout:g} s connecting") from exc
    except OSError as exc:
        raise error(f"cannot connect: {exc.strerror or one_line(exc)}") from exc
    except (
        asyncpg.InterfaceError,
        asyncpg.exceptions.ProtocolViolationError,
        ConnectionError,
        EOFError,
    ) as exc:
        raise error(f"the server did not speak the PostgreSQL protocol: {one_line(exc)}") from exc
    except Exception as exc:  # asyncpg raises odd things at a non-PostgreSQL port
        raise error(f"cannot connect ({type(exc).__name__}): {one_line(exc)}") from exc
