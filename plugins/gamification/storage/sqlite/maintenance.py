"""Operator tasks on a ledger file: online backup, streaming export, audited cache rebuild.

Each works on a live ledger while the bot may be writing. The ledger (`transactions`) is
never changed here: it is append-only and it is the truth. What can be repaired is the
`accounts` cache the writer keeps beside it, and every repair is logged in `admin_actions`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path
from typing import TextIO

from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.domain.errors import StorageError
from plugins.gamification.storage.export import (
    EXPORT_COLUMNS,
    FETCH_CHUNK,
    ExportFormat,
    ExportWriter,
)
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.rebuild import (
    REBUILD_ACTION,
    SELECT_CACHE,
    SELECT_CHAINS,
    AccountState,
    BalanceDifference,
    OperationRefusedError,
    RebuildRefusedError,
    Replay,
    changed_meanwhile,
    refuse_if_tampered,
)
from plugins.gamification.storage.sqlite.faults import storage_error
from plugins.gamification.storage.sqlite.files import belongs_to, kind_of
from plugins.gamification.storage.sqlite.integrity import open_for_check, run_check
from plugins.gamification.storage.sqlite.sidetables import INSERT_ADMIN_ACTION

__all__ = [
    "EXPORT_COLUMNS",
    "AccountState",
    "BalanceDifference",
    "OperationRefusedError",
    "RebuildRefusedError",
    "backup",
    "export",
    "partial_name",
    "rebuild_balances",
    "refuse_unsafe_output",
]

# `?1 IS NULL OR`: one statement for both; a rowid scan streams in id order with no sort.
SELECT_EXPORT = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, request_hash,"
    " actor_id, reason, breakdown, created_at, reverts_id, prev_hash, hash"
    " FROM transactions WHERE ?1 IS NULL OR chat_id = ?1 ORDER BY id"
)
SELECT_ACCOUNT = (
    "SELECT balance, earned, seq, head_hash FROM accounts WHERE chat_id = ? AND user_id = ?"
)
UPSERT_ACCOUNT = (
    "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET"
    " balance = excluded.balance, earned = excluded.earned, seq = excluded.seq,"
    " head_hash = excluded.head_hash, updated_at = excluded.updated_at"
)


# -- backup ---------------------------------------------------------------------------------


def backup(source: Path, dest: Path) -> IntegrityReport:
    """Copy a live ledger to `dest` consistently, then check the copy and return its report.

    SQLite's backup API copies in one step under one read snapshot, which in WAL mode never
    blocks the writer. The copy is written under a temporary name beside `dest` and only
    linked to `dest` when complete, so `dest` is never a half-written file; an existing
    `dest` is never replaced.
    """
    source, dest = Path(source), Path(dest)
    refuse_unsafe_output(dest, source)
    if dest.exists():
        raise OperationRefusedError(f"{dest} already exists; choose a new name for the backup.")
    if not dest.parent.is_dir():
        raise StorageError(f"The folder {dest.parent} does not exist.")
    src = open_for_check(source)
    partial = partial_name(dest)
    try:
        partial.touch(exist_ok=False)  # created here, so the copy never lands in a stray file
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            src.backup(copy)
            # One self-contained file: no -wal beside the backup.
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
        publish(partial, dest)
    except sqlite3.Error as exc:
        writing = any(word in str(exc).lower() for word in ("full", "readonly", "disk i/o"))
        raise storage_error(exc, dest if writing else source, writing=writing) from exc
    except OSError as exc:
        raise StorageError(f"Could not write the backup {dest}: {exc.strerror}.") from exc
    finally:
        src.close()
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
    return run_check(dest, record=False)


def refuse_unsafe_output(out: Path, ledger: Path | None) -> None:
    """Refuse an output that is the ledger, one of its -wal/-shm/-journal files, a symbolic
    link or anything but a regular file (a folder, a device, a named pipe); changes nothing.

    Writing next to a file and renaming over it would replace a device or a link with a
    regular file, and a ledger overwritten while the bot has it open is lost.
    """
    out = Path(out)
    if ledger is not None and belongs_to(out, Path(ledger)):
        raise OperationRefusedError(
            f"{out} is the ledger {ledger} or one of its own files; choose another file."
        )
    if out.is_symlink():
        raise OperationRefusedError(
            f"{out} is a symbolic link; name a regular file (links are never written through)."
        )
    if out.exists() and not out.is_file():
        raise OperationRefusedError(
            f"{out} is {kind_of(out)}, not a regular file; choose another file."
        )


def partial_name(path: Path) -> Path:
    """A hidden, unguessable name beside `path` for a file that is not complete yet."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")


def publish(partial: Path, dest: Path) -> None:
    """Give the finished copy its name without ever replacing a file that appeared meanwhile."""
    try:
        os.link(partial, dest)  # unlike rename, fails if dest exists
    except OSError as exc:
        if isinstance(exc, FileExistsError) or dest.exists():
            raise OperationRefusedError(f"{dest} appeared meanwhile; choose a new name.") from None
        os.replace(partial, dest)  # a file system without hard links
    # Make the new name itself durable; best effort, the copy is complete either way.
    with contextlib.suppress(OSError, AttributeError):
        folder = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


# -- export ---------------------------------------------------------------------------------


def export(path: Path, out: TextIO, fmt: ExportFormat, chat_id: int | None) -> int:
    """Write every ledger row (or one chat's) in id order to `out`; return how many.

    One SELECT is one read snapshot, streamed in chunks (the format: storage/export.py).
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}")
    conn = open_for_check(path, read_only=True)
    try:
        writer = ExportWriter(out, fmt)
        cursor = conn.execute(SELECT_EXPORT, (chat_id,))
        while rows := cursor.fetchmany(FETCH_CHUNK):
            writer.write(rows)
    except sqlite3.Error as exc:
        raise storage_error(exc, path, writing=False) from exc
    finally:
        conn.close()
    return writer.count


# -- rebuild --------------------------------------------------------------------------------


def rebuild_balances(
    path: Path, *, apply: bool, actor: str, clock: Clock | None = None
) -> list[BalanceDifference]:
    """Recompute every account's cache from the ledger; list (and with `apply` fix) what differs.

    The ledger is the truth and `accounts` only a cache of it, so a repair rewrites the cache
    rows, never a transaction. Applying first runs the integrity check: rebuilding from a
    ledger whose chains are broken would launder the tampering into balances that look
    right, so that is refused. (So is a stale row the writer already chained a new transaction
    onto: that row's balance is now wrong in the ledger itself, which takes an admin
    correction.) The cache rows are compared again inside the write transaction, so a
    change the bot made meanwhile is never overwritten.
    """
    conn = open_for_check(path)
    try:
        if not apply:
            conn.execute("PRAGMA query_only = ON")
        try:
            differences = _scan(conn)
        except sqlite3.Error as exc:
            raise storage_error(exc, path, writing=False) from exc
        if not apply or not differences:
            return differences
        # After the scan, so the check covers every row the recomputation used.
        refuse_if_tampered(run_check(path, record=False), differences)
        now = format_utc((clock or SystemClock()).now())
        try:
            _apply(conn, differences, actor, now)
        except sqlite3.Error as exc:
            raise storage_error(exc, path) from exc
        return differences
    finally:
        conn.close()


def _scan(conn: sqlite3.Connection) -> list[BalanceDifference]:
    """Replay the ledger into per-account state and compare it with the cache, one snapshot."""
    replay = Replay()
    conn.execute("BEGIN")
    try:
        cursor = conn.execute(SELECT_CHAINS)
        while rows := cursor.fetchmany(FETCH_CHUNK):
            replay.feed(rows)
        return replay.differences(conn.execute(SELECT_CACHE))
    finally:
        conn.execute("ROLLBACK")


def _apply(
    conn: sqlite3.Connection, differences: list[BalanceDifference], actor: str, now: str
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for diff in differences:
            row = conn.execute(SELECT_ACCOUNT, (diff.chat_id, diff.user_id)).fetchone()
            if (AccountState(*row) if row else None) != diff.cached:
                raise changed_meanwhile(diff, differences)
            new = diff.recomputed
            conn.execute(
                UPSERT_ACCOUNT,
                (diff.chat_id, diff.user_id, new.balance, new.earned, new.seq, new.head_hash, now),
            )
            conn.execute(
                INSERT_ADMIN_ACTION,
                (diff.chat_id, 0, REBUILD_ACTION, diff.user_id, diff.audit_detail(actor), now),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
