"""Connections to the PostgreSQL ledger, and asyncpg's errors as one-sentence storage errors.

Every connection of the ledger (the writer's, the readers', the operator tools') is made
here, with the settings the contract depends on: `synchronous_commit = on` (a COMMIT that
returned is on the server's disk) and `plan_cache_mode = force_custom_plan` (asyncpg
prepares every statement; after five executions PostgreSQL may switch a prepared statement
to a generic plan that scans whole tables for array parameters).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from plugins.gamification.domain.errors import (
    DatabaseLockedError,
    DiskFullError,
    StorageError,
    StorageIOError,
    TransientStorageError,
)
from plugins.gamification.storage.options import redact

if TYPE_CHECKING:
    import asyncpg

SERVER_SETTINGS = {
    "synchronous_commit": "on",
    "plan_cache_mode": "force_custom_plan",
    "application_name": "gamification-ledger",
}
CONNECT_TIMEOUT = 10.0

# SQLSTATE classes and codes (PostgreSQL's appendix A).
DEADLOCK, SERIALIZATION, UNIQUE_VIOLATION = "40P01", "40001", "23505"
RETRYABLE = frozenset({DEADLOCK, SERIALIZATION, UNIQUE_VIOLATION})
DISK_FULL, OUT_OF_MEMORY, TOO_MANY_CONNECTIONS = "53100", "53200", "53300"
LOCK_NOT_AVAILABLE, QUERY_CANCELED = "55P03", "57014"
ADMIN_SHUTDOWN, CRASH_SHUTDOWN, CANNOT_CONNECT_NOW = "57P01", "57P02", "57P03"
INVALID_PASSWORD, INVALID_AUTHORIZATION = "28P01", "28000"
INVALID_CATALOG_NAME = "3D000"


def database_name(dsn: str) -> str:
    path = urlsplit(dsn).path.lstrip("/")
    return path or os.environ.get("PGDATABASE", "") or "(the user's own database)"


async def connect(dsn: str, **settings: str) -> asyncpg.Connection:
    """One connection with the ledger's settings; StorageError with one sentence if not."""
    import asyncpg

    try:
        return await asyncpg.connect(
            dsn,
            timeout=CONNECT_TIMEOUT,
            server_settings={**SERVER_SETTINGS, **settings},
        )
    except Exception as exc:
        raise storage_error(exc, dsn) from exc


async def create_pool(dsn: str, *, size: int, **settings: str) -> asyncpg.Pool:
    """A pool of reader connections with the ledger's settings."""
    import asyncpg

    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            timeout=CONNECT_TIMEOUT,
            server_settings={**SERVER_SETTINGS, **settings},
        )
    except Exception as exc:
        raise storage_error(exc, dsn) from exc
    assert pool is not None
    return pool


def sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


class CommitInDoubt(Exception):
    """The connection was lost while COMMIT was in flight: the batch may or may not be
    committed, and only the idempotency keys of a retry can tell."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def storage_error(exc: BaseException, dsn: str, *, writing: bool = True) -> StorageError:
    """Turn a connection or server error into one sentence an operator can act on.

    The server being away (refused, reset, shutting down, starting up), a full disk and a
    lock timeout are TransientStorageErrors: the same request can be tried again later.
    A connection lost during COMMIT (CommitInDoubt) says the write's fate is unknown.
    """
    if isinstance(exc, StorageError):
        return exc
    where = redact(dsn)
    nothing = "; nothing was written" if writing else ""
    if isinstance(exc, CommitInDoubt):
        exc = exc.cause
        nothing = (
            "; the change may or may not have been written; retrying with the same key is safe"
        )
    state = sqlstate(exc)
    if state == DISK_FULL:
        return DiskFullError(f"The PostgreSQL server at {where} has no disk space left{nothing}.")
    if state in (LOCK_NOT_AVAILABLE, QUERY_CANCELED, DEADLOCK, SERIALIZATION):
        return DatabaseLockedError(
            f"The ledger at {where} is locked by another session; try again when it is released."
        )
    if state in (INVALID_PASSWORD, INVALID_AUTHORIZATION):
        return StorageError(
            f"The PostgreSQL server at {where} refused the login ({_first_line(exc)})."
        )
    if state == INVALID_CATALOG_NAME:
        return StorageError(
            f"There is no database {database_name(dsn)!r} on the PostgreSQL server at {where};"
            " create it (createdb) or fix [storage] url."
        )
    if state in (ADMIN_SHUTDOWN, CRASH_SHUTDOWN, CANNOT_CONNECT_NOW, TOO_MANY_CONNECTIONS,
                 OUT_OF_MEMORY) or is_connection_loss(exc):  # fmt: skip
        return TransientStorageError(
            f"The PostgreSQL server at {where} cannot be reached ({_loss(exc)}){nothing}."
        )
    if isinstance(exc, OSError):
        return StorageIOError(f"The PostgreSQL server at {where} failed: {_first_line(exc)}.")
    return StorageError(f"The ledger at {where} failed: {_first_line(exc)}.")


def is_connection_loss(exc: BaseException) -> bool:
    """The connection itself failed (closed, reset, killed, timed out), not a statement."""
    import asyncpg

    return isinstance(
        exc,
        OSError
        | ConnectionError
        | asyncio.TimeoutError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.PostgresConnectionError,
    ) and not isinstance(exc, asyncpg.exceptions.InterfaceWarning)


def _loss(exc: BaseException) -> str:
    """What went wrong, in words: asyncpg's client-side errors after a lost connection
    (a killed backend, a closed socket) name its internal states, not the cause."""
    import asyncpg

    client_side = (
        asyncpg.exceptions.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.ConnectionDoesNotExistError
    )
    if isinstance(exc, client_side):
        return "the connection was lost"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")


def error_detail(exc: Any) -> str:
    """asyncpg's message of a server error, for logs."""
    return _first_line(exc)
