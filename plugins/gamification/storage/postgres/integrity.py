"""The integrity check on a PostgreSQL ledger: its rows, read in the caller's snapshot, go to
the shared verifier (storage/integrity.py), so the report and digest are SQLite's.

PostgreSQL has no counterpart of SQLite's `PRAGMA quick_check` that an ordinary role can run
(amcheck is an extension for superusers), so the storage line of the report says what is
checked instead: that the ledger's append-only triggers are present and enabled, without
which the server would let anyone with the table's privileges rewrite history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugins.gamification.domain.clock import Clock, format_utc
from plugins.gamification.storage.integrity import (
    OUTBOX_LAG,
    SELECT_LATEST_CHECKPOINT,
    Checkpoint,
    IntegrityReport,
    LedgerVerifier,
    checkpoint_of,
)
from plugins.gamification.storage.postgres.schema import LEDGER_LOCK

if TYPE_CHECKING:
    import asyncpg

STORAGE_CHECK = "PostgreSQL append-only triggers"
APPEND_ONLY_TRIGGERS = (
    "transactions_no_delete",
    "transactions_no_truncate",
    "transactions_no_update",
)
# 'O' fires in ordinary sessions, 'A' always; 'D' is disabled and 'R' fires only on replicas.
SELECT_TRIGGERS = (
    "SELECT tgname, tgenabled::text FROM pg_trigger"
    " WHERE tgrelid = 'transactions'::regclass AND NOT tgisinternal"
)
SELECT_CHECKPOINT_HEADS = (
    "SELECT chat_id, user_id, seq, hash FROM checkpoint_heads WHERE checkpoint_id = $1"
)
INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (created_at, high_water, tx_count, accounts, digest, violations,"
    " report) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
)
DELETE_OLDER_HEADS = "DELETE FROM checkpoint_heads WHERE checkpoint_id < $1"
TAKE_LEDGER_LOCK = "SELECT pg_advisory_xact_lock($1)"
FETCH_CHUNK = 5000


async def latest_checkpoint(conn: asyncpg.Connection) -> Checkpoint | None:
    row = await conn.fetchrow(SELECT_LATEST_CHECKPOINT)
    if row is None:
        return None
    heads = await conn.fetch(SELECT_CHECKPOINT_HEADS, row[0])
    return checkpoint_of(tuple(row), [tuple(head) for head in heads])


async def triggers_answer(conn: asyncpg.Connection) -> str:
    """ "ok" when every append-only trigger is there and fires, else which ones do not."""
    found = {str(name): str(enabled) for name, enabled in await conn.fetch(SELECT_TRIGGERS)}
    missing = [name for name in APPEND_ONLY_TRIGGERS if name not in found]
    disabled = [name for name in APPEND_ONLY_TRIGGERS if found.get(name) in ("D", "R")]
    problems = [f"{name} is missing" for name in missing]
    problems += [f"{name} is disabled" for name in disabled]
    if not problems:
        return "ok"
    return "; ".join(problems) + " (the ledger is not protected from rewrites)"


async def verify_in_transaction(conn: asyncpg.Connection, clock: Clock) -> IntegrityReport:
    """The check inside the caller's open transaction, against the latest checkpoint."""
    anchor = await latest_checkpoint(conn)
    verifier = LedgerVerifier(
        IntegrityReport(checked_at=format_utc(clock.now()), storage_check=STORAGE_CHECK),
        anchor,
    )
    verifier.storage("append-only triggers", await triggers_answer(conn))
    for statement, feed in verifier.reads():
        cursor = await conn.cursor(statement)
        while rows := await cursor.fetch(FETCH_CHUNK):
            feed([tuple(row) for row in rows])
    lag = await conn.fetchrow(OUTBOX_LAG)
    verifier.outbox(*tuple(lag or (0, None)))
    return verifier.finish()


async def record_checkpoint(conn: asyncpg.Connection, report: IntegrityReport) -> None:
    """Store the report and its chain heads under the ledger lock; only the latest keeps heads."""
    async with conn.transaction():
        await conn.execute(TAKE_LEDGER_LOCK, LEDGER_LOCK)
        checkpoint_id = await conn.fetchval(INSERT_CHECKPOINT, *report.checkpoint_row())
        await conn.copy_records_to_table(
            "checkpoint_heads",
            records=[(checkpoint_id, c, u, seq, head) for c, u, seq, head in report.heads],
            columns=("checkpoint_id", "chat_id", "user_id", "seq", "hash"),
        )
        await conn.execute(DELETE_OLDER_HEADS, checkpoint_id)
