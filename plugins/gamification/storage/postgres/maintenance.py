"""Operator tasks on a PostgreSQL ledger: check, backup to a SQLite file, export, cache rebuild.

The same tasks as storage/sqlite/maintenance.py with the same results: the check's rules,
the export format and the rebuild rules are the shared modules', so a report, a digest and
an export read the same whichever backend holds the ledger. Reads run in one REPEATABLE READ
read-only transaction (one snapshot, never blocking the writers); writes (a checkpoint, the
rebuilt cache rows) take the ledger's advisory lock like every writer. The ledger itself is
never changed here.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.errors import GamificationError, StorageError
from plugins.gamification.storage.export import FETCH_CHUNK, ExportFormat, ExportWriter
from plugins.gamification.storage.integrity import CheckpointNotStoredError, IntegrityReport
from plugins.gamification.storage.postgres.connect import storage_error
from plugins.gamification.storage.postgres.integrity import (
    TAKE_LEDGER_LOCK,
    record_checkpoint,
    verify_in_transaction,
)
from plugins.gamification.storage.postgres.schema import LEDGER_LOCK
from plugins.gamification.storage.postgres.transfer import PostgresSide, require_ledger
from plugins.gamification.storage.rebuild import (
    REBUILD_ACTION,
    SELECT_CACHE,
    SELECT_CHAINS,
    AccountState,
    BalanceDifference,
    OperationRefusedError,
    Replay,
    changed_meanwhile,
    refuse_if_tampered,
)
from plugins.gamification.storage.sqlite.faults import storage_error as sqlite_error
from plugins.gamification.storage.sqlite.integrity import run_check
from plugins.gamification.storage.sqlite.maintenance import partial_name, publish
from plugins.gamification.storage.sqlite.transfer import SqliteSide
from plugins.gamification.storage.transfer import copy_ledger

if TYPE_CHECKING:
    from typing import Literal

    import asyncpg

SELECT_EXPORT = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, request_hash,"
    " actor_id, reason, breakdown, created_at, reverts_id, prev_hash, hash"
    " FROM transactions WHERE $1::bigint IS NULL OR chat_id = $1 ORDER BY id"
)
SELECT_ACCOUNT = (
    "SELECT balance, earned, seq, head_hash FROM accounts"
    " WHERE chat_id = $1 AND user_id = $2 FOR UPDATE"
)
UPSERT_ACCOUNT = (
    "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chat_id, user_id) DO UPDATE SET"
    " balance = excluded.balance, earned = excluded.earned, seq = excluded.seq,"
    " head_hash = excluded.head_hash, updated_at = excluded.updated_at"
)
INSERT_ADMIN_ACTION = (
    "INSERT INTO admin_actions (chat_id, actor_id, action, target_id, detail, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)


async def check(
    conn: asyncpg.Connection, where: str, *, record: bool, clock: Clock
) -> IntegrityReport:
    """Check the ledger in one snapshot against its latest checkpoint; with `record`, store one.

    Raises CheckpointNotStoredError (holding the report) if only the checkpoint failed.
    """
    started = time.perf_counter()
    try:
        await require_ledger(conn, where)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            report = await verify_in_transaction(conn, clock)
    except GamificationError:
        raise
    except Exception as exc:
        raise storage_error(exc, where, writing=False) from exc
    report.duration_s = time.perf_counter() - started
    if record:
        try:
            await record_checkpoint(conn, report)
        except Exception as exc:
            raise CheckpointNotStoredError(report, storage_error(exc, where)) from exc
    return report


async def backup(conn: asyncpg.Connection, where: str, dest: Path) -> IntegrityReport:
    """Write the ledger, from one snapshot, to a new portable SQLite ledger file at `dest`.

    The file has SQLite's schema and the same rows and hashes, so `python -m bot check --db
    DEST` verifies it with the same digest (and `migrate` can bring it back). It is written
    under a temporary name and only linked to `dest` when complete and verified; the copy is
    then checked again as a file, and that report is returned.
    """
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise OperationRefusedError(f"{dest} already exists; choose a new name for the backup.")
    if not dest.parent.is_dir():
        raise StorageError(f"The folder {dest.parent} does not exist.")
    partial = partial_name(dest)
    try:
        target = SqliteSide.target(partial)
        try:
            await copy_ledger(await PostgresSide.source(conn, where), target)
        finally:
            target.close()
        publish(partial, dest)
    except GamificationError:
        raise
    except sqlite3.Error as exc:
        raise sqlite_error(exc, dest) from exc
    except OSError as exc:
        raise StorageError(f"Could not write the backup {dest}: {exc.strerror or exc}.") from exc
    except Exception as exc:
        raise storage_error(exc, where, writing=False) from exc
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)
    return run_check(dest, record=False)


async def export(
    conn: asyncpg.Connection,
    where: str,
    out: TextIO,
    fmt: Literal["csv", "jsonl"] | ExportFormat,
    chat_id: int | None,
) -> int:
    """Write every ledger row (or one chat's) in id order to `out`, as SQLite's export does."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}")
    try:
        await require_ledger(conn, where)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            writer = ExportWriter(out, fmt)
            cursor = await conn.cursor(SELECT_EXPORT, chat_id)
            while rows := await cursor.fetch(FETCH_CHUNK):
                writer.write([tuple(row) for row in rows])
    except (GamificationError, OSError):
        raise
    except Exception as exc:
        raise storage_error(exc, where, writing=False) from exc
    return writer.count


async def rebuild_balances(
    conn: asyncpg.Connection, where: str, *, apply: bool, actor: str, at: str
) -> list[BalanceDifference]:
    """Recompute every account's cache from the ledger; list (and with `apply` fix) what differs.

    The same rules as SQLite's (storage/rebuild.py): applying is refused when the ledger
    fails the integrity check, and a cache row the bot changed meanwhile is never
    overwritten. `at` is the time written to the repaired rows and their audit rows.
    """
    try:
        await require_ledger(conn, where)
        replay = Replay()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(SELECT_CHAINS)
            while rows := await cursor.fetch(FETCH_CHUNK):
                replay.feed([tuple(row) for row in rows])
            differences = replay.differences([tuple(r) for r in await conn.fetch(SELECT_CACHE)])
    except GamificationError:
        raise
    except Exception as exc:
        raise storage_error(exc, where, writing=False) from exc
    if not apply or not differences:
        return differences
    # After the scan, so the check covers every row the recomputation used.
    refuse_if_tampered(await check(conn, where, record=False, clock=SystemClock()), differences)
    try:
        async with conn.transaction():
            await conn.execute(TAKE_LEDGER_LOCK, LEDGER_LOCK)
            for diff in differences:
                row = await conn.fetchrow(SELECT_ACCOUNT, diff.chat_id, diff.user_id)
                if (AccountState(*row) if row else None) != diff.cached:
                    raise changed_meanwhile(diff, differences)
                new = diff.recomputed
                await conn.execute(
                    UPSERT_ACCOUNT, diff.chat_id, diff.user_id, new.balance, new.earned,
                    new.seq, new.head_hash, at,
                )  # fmt: skip
                await conn.execute(
                    INSERT_ADMIN_ACTION, diff.chat_id, 0, REBUILD_ACTION, diff.user_id,
                    diff.audit_detail(actor), at,
                )  # fmt: skip
    except GamificationError:
        raise
    except Exception as exc:
        raise storage_error(exc, where) from exc
    return differences
