"""The integrity check on a SQLite ledger file, read in one snapshot by the shared verifier."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.domain.errors import DatabaseCorruptError, StorageError
from plugins.gamification.storage.integrity import (
    OUTBOX_LAG,
    SELECT_LATEST_CHECKPOINT,
    Checkpoint,
    CheckpointNotStoredError,
    IntegrityReport,
    LedgerVerifier,
    Violation,
    checkpoint_of,
)
from plugins.gamification.storage.sqlite.faults import storage_error
from plugins.gamification.storage.sqlite.files import check_ledger_path
from plugins.gamification.storage.sqlite.schema import SCHEMA_VERSION, ledger_version

__all__ = [
    "Checkpoint",
    "CheckpointNotStoredError",
    "IntegrityReport",
    "Violation",
    "check_ledger",
    "latest_checkpoint",
    "open_for_check",
    "record_checkpoint",
    "run_check",
]

SELECT_CHECKPOINT_HEADS = (
    "SELECT chat_id, user_id, seq, hash FROM checkpoint_heads WHERE checkpoint_id = ?"
)
INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (created_at, high_water, tx_count, accounts, digest, violations,"
    " report) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CHECKPOINT_HEAD = (
    "INSERT INTO checkpoint_heads (checkpoint_id, chat_id, user_id, seq, hash)"
    " VALUES (?, ?, ?, ?, ?)"
)
DELETE_OLDER_HEADS = "DELETE FROM checkpoint_heads WHERE checkpoint_id < ?"
FETCH_CHUNK = 5000


def open_for_check(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open an existing ledger without creating one; one-sentence errors for bad files.

    With `read_only`, nothing can be written through the connection (export). The path goes
    through a file: URI built by pathlib, so names with '?' or '#' open the right file.
    """
    path = Path(path)
    try:
        missing = not path.exists() and not path.is_symlink()
    except OSError as exc:
        raise StorageError(f"Cannot look at the ledger {path}: {exc.strerror or exc}.") from exc
    if missing:
        raise StorageError(f"There is no database at {path}.")
    check_ledger_path(path, writing=False)
    if path.stat().st_size == 0:
        raise DatabaseCorruptError(f"The file {path} is empty, not a points ledger.")
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5)
    except sqlite3.Error as exc:
        raise storage_error(exc, path, writing=False) from exc
    try:
        version = ledger_version(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, path, writing=False) from exc
    except StorageError:
        conn.close()
        raise
    if version != SCHEMA_VERSION:
        conn.close()
        if version == 0:
            raise DatabaseCorruptError(f"The file {path} is an empty database, not a ledger.")
        raise StorageError(
            f"The ledger {path} has schema version {version}; this program reads {SCHEMA_VERSION}."
        )
    return conn


def latest_checkpoint(conn: sqlite3.Connection) -> Checkpoint | None:
    row = conn.execute(SELECT_LATEST_CHECKPOINT).fetchone()
    if row is None:
        return None
    return checkpoint_of(row, conn.execute(SELECT_CHECKPOINT_HEADS, (row[0],)))


def check_ledger(
    conn: sqlite3.Connection,
    *,
    anchor: Checkpoint | None = None,
    quick_check: bool = True,
    clock: Clock | None = None,
) -> IntegrityReport:
    """Verify the whole ledger inside one read snapshot.

    The scan runs in id order in chunks; in WAL mode a reader never blocks the writer, and
    one snapshot makes every balance comparable with its sum however long the scan takes.
    """
    started = time.perf_counter()
    try:
        conn.execute("BEGIN")
        try:
            report = verify_in_transaction(
                conn, anchor=anchor, quick_check=quick_check, clock=clock
            )
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise storage_error(exc, _path_of(conn), writing=False) from exc
    report.duration_s = time.perf_counter() - started
    return report


def verify_in_transaction(
    conn: sqlite3.Connection,
    *,
    anchor: Checkpoint | None = None,
    quick_check: bool = True,
    clock: Clock | None = None,
) -> IntegrityReport:
    """The check inside the caller's open transaction (its snapshot, or its uncommitted copy)."""
    verifier = LedgerVerifier(
        IntegrityReport(checked_at=format_utc((clock or SystemClock()).now())), anchor
    )
    if quick_check:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        verifier.storage("quick_check", "; ".join(str(r[0]) for r in rows[:5]))
    for statement, feed in verifier.reads():
        cursor = conn.execute(statement)
        while rows := cursor.fetchmany(FETCH_CHUNK):
            feed(rows)
    verifier.outbox(*conn.execute(OUTBOX_LAG).fetchone())
    return verifier.finish()


def record_checkpoint(conn: sqlite3.Connection, report: IntegrityReport) -> None:
    """Store the report and its chain heads, the anchor the next check is held to.

    Only the latest checkpoint keeps its heads (one row per account), so the table stays
    as large as the number of accounts; older checkpoints keep their digest and report.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(INSERT_CHECKPOINT, report.checkpoint_row())
            checkpoint_id = cursor.lastrowid
            conn.executemany(
                INSERT_CHECKPOINT_HEAD,
                ((checkpoint_id, c, u, seq, head) for c, u, seq, head in report.heads),
            )
            conn.execute(DELETE_OLDER_HEADS, (checkpoint_id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise storage_error(exc, _path_of(conn)) from exc


def _path_of(conn: sqlite3.Connection) -> str:
    """The file behind a connection, for a sentence (the connection may be failing)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return "the ledger"
    return str(row[2]) if row and row[2] else "the ledger"


def run_check(
    path: str | Path,
    *,
    record: bool = False,
    quick_check: bool = True,
    clock: Clock | None = None,
) -> IntegrityReport:
    """Open the ledger at `path`, check it against its latest checkpoint, optionally record."""
    conn = open_for_check(path)
    try:
        try:
            anchor = latest_checkpoint(conn)
        except sqlite3.Error as exc:
            raise storage_error(exc, path) from exc
        report = check_ledger(conn, anchor=anchor, quick_check=quick_check, clock=clock)
        if record:
            try:
                record_checkpoint(conn, report)
            except StorageError as exc:
                raise CheckpointNotStoredError(report, exc) from exc
        return report
    finally:
        conn.close()
