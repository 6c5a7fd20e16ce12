"""SQLite errors turned into storage errors, each one sentence an operator can act on."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from plugins.gamification.domain.errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    DiskFullError,
    ReadOnlyLedgerError,
    StorageError,
    StorageIOError,
)
from plugins.gamification.storage.sqlite import files
from plugins.gamification.storage.sqlite.files import read_only_part

# SQLite's primary result codes of faults that may pass by themselves.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL = 5, 6, 10, 13


def storage_error(exc: sqlite3.Error, path: str | Path, *, writing: bool = True) -> StorageError:
    """Turn a sqlite3 error into one sentence an operator can act on.

    A lock past the busy timeout, a full disk and an I/O error are TransientStorageErrors
    (worth retrying); the rest are permanent until someone acts. `writing`: the failed
    statement was a write, so "nothing was written" is worth saying; a reader that never
    writes says what to do instead.
    """
    text = str(exc).lower()
    # The extended code's low byte is the primary code; errors raised without one (some
    # of sqlite3's own) are told apart by their text.
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in text or "busy" in text:
        return DatabaseLockedError(
            f"The database {path} is locked by another process; try again when it is released."
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return DatabaseCorruptError(f"The file {path} is not a usable SQLite database ({exc}).")
    if "readonly" in text or "read-only" in text:
        part = read_only_part(Path(path)) or f"The database {path}"
        if writing:
            return ReadOnlyLedgerError(f"{part} is read-only; nothing was written.")
        return ReadOnlyLedgerError(
            f"{part} is read-only, and SQLite must write the ledger's -wal and -shm files to"
            " read it; make it writable."
        )
    full = code == SQLITE_FULL or "full" in text
    if not full and (code == SQLITE_IOERR or "disk i/o" in text):
        # SQLite reports a failed growth of its WAL index on a full disk as an I/O error.
        with contextlib.suppress(OSError):
            full = files.free_bytes(Path(os.path.realpath(path)).parent) < files.FREE_MARGIN
    if full:
        outcome = "nothing was written" if writing else "SQLite needs room for its -shm file"
        return DiskFullError(f"The disk holding {path} is full; {outcome}; free some space.")
    if code == SQLITE_IOERR or "disk i/o error" in text:
        return StorageIOError(f"The disk holding {path} reported an I/O error ({exc}).")
    return StorageError(f"The database {path} failed: {exc}.")
