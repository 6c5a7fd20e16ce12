"""PostgresStore: the ledger on a PostgreSQL server, behind the same protocol as LedgerStore.

One writer connection driven by the shared group-commit queue (storage/batching.py): each
batch is one transaction of PgBatchWriter, callers answered after COMMIT. Reads use a small
pool beside it. When the server goes away, waiting callers fail with one sentence (a
TransientStorageError, which the engine and services retry), the writer reconnects by
itself with backoff, and later writes go through without restarting the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.domain.errors import StorageError, TransientStorageError
from plugins.gamification.storage.batching import QueuedWrites
from plugins.gamification.storage.operations import (
    Operation,
    Outcome,
    SideWrite,
)
from plugins.gamification.storage.postgres import connect as pg
from plugins.gamification.storage.postgres import maintenance, schema
from plugins.gamification.storage.postgres import statements as s
from plugins.gamification.storage.postgres.reads import PgReads
from plugins.gamification.storage.postgres.writer import PgBatchWriter
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.reading import audit_params, outbox_params
from plugins.gamification.storage.records import AdminAction, KnownPerson, OutboxEvent
from plugins.gamification.storage.sqlite.effects import Effects
from plugins.gamification.storage.sqlite.integrity import IntegrityReport
from plugins.gamification.storage.sqlite.maintenance import BalanceDifference

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

# The writer's reconnection backoff: first pause, and the longest one.
RECONNECT_FIRST, RECONNECT_MAX = 0.1, 5.0
CLOSE_TIMEOUT = 5.0

Statement = tuple[str, tuple[object, ...]]


class PostgresStore(PgReads, QueuedWrites):
    """Owns one writer connection (and its task, via GroupCommitQueue) and a reader pool."""

    def __init__(
        self,
        dsn: str,
        *,
        clock: Clock | None = None,
        write_timeout: float = 30.0,
        max_batch: int = 1024,
        max_queue: int = 100_000,
        effects: Effects | None = None,
        pool_size: int = 4,
    ) -> None:
        super().__init__(dsn, read_timeout=write_timeout)
        self._clock = clock or SystemClock()
        self._pool_size = pool_size
        self._writer = PgBatchWriter(self._clock.now, effects)
        self._write_conn: asyncpg.Connection | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._queue_writes(
            self._commit,
            self.where,
            write_timeout=write_timeout,
            max_batch=max_batch,
            max_queue=max_queue,
        )

    async def open(self) -> PostgresStore:
        """Connect, migrate and start the writer; raises StorageError with one sentence.

        A ledger of a newer schema version or another application's database is refused
        before anything is written (schema.migrate).
        """
        try:
            self._write_conn = await pg.connect(self.dsn)
            await schema.migrate(self._write_conn, self.where)
            self._pool = await pg.create_pool(self.dsn, size=self._pool_size)
        except BaseException as exc:
            await self._close_connections()
            if isinstance(exc, Exception):
                raise pg.storage_error(exc, self.dsn) from exc
            raise
        self._queue.start()
        return self

    # -- writing ------------------------------------------------------------------------

    async def _commit(self, ops: Sequence[Operation]) -> list[Outcome]:
        """One batch on the writer connection; a failed batch as one sentence."""
        conn = self._write_conn
        if conn is None or conn.is_closed():
            conn = await self._connect_now(conn)
        try:
            return await self._writer.apply(conn, ops)
        except Exception as exc:
            error = pg.storage_error(exc, self.dsn)
            if isinstance(error, TransientStorageError) or conn.is_closed():
                self._lost(conn)
            raise error from exc

    async def _connect_now(self, dead: asyncpg.Connection | None) -> asyncpg.Connection:
        """A connection found closed (the server dropped an idle one) is replaced at once;
        while the background reconnection runs, a batch fails at once instead."""
        if self._reconnect is None or self._reconnect.done():
            try:
                self._write_conn = await pg.connect(self.dsn)
                return self._write_conn
            except StorageError:
                pass
        self._lost(dead)
        raise TransientStorageError(
            f"The PostgreSQL server at {self.where} cannot be reached (reconnecting);"
            " nothing was written."
        )

    def _lost(self, conn: asyncpg.Connection | None) -> None:
        """The writer's connection is gone: drop it and reconnect in the background."""
        if conn is not None:
            conn.terminate()
        self._write_conn = None
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = asyncio.create_task(self._reconnecting(), name="ledger-reconnect")

    async def _reconnecting(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                conn = await pg.connect(self.dsn)
            except Exception as exc:
                log.debug("the ledger's writer could not reconnect: %s", exc)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            self._write_conn = conn
            log.info("the ledger's writer reconnected to %s", self.where)
            return

    async def close(self) -> None:
        """Refuse new work, let the writer commit everything queued, close the connections."""
        await self._queue.close()
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        await self._close_connections()

    async def _close_connections(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            try:
                await conn.close(timeout=CLOSE_TIMEOUT)
            except Exception:
                conn.terminate()
        await self._close_pool()

    # -- the outbox and the tables beside the ledger ---------------------------------------

    async def outbox_delivered(self, up_to_id: int, at: str) -> None:
        """Mark every event up to `up_to_id` delivered at `at`."""
        await self.execute_all((s.MARK_DELIVERED, (at, up_to_id)))

    async def outbox_prune(self, keep: int) -> None:
        """Delete delivered events beyond the newest `keep` of them."""
        rows = await self._fetch(s.SELECT_PRUNE_BOUND, keep)
        if rows:
            await self.execute_all((s.PRUNE_DELIVERED, (rows[0][0],)))

    async def publish(self, event: OutboxEvent) -> None:
        await self.execute_all((s.INSERT_OUTBOX, outbox_params(event)))

    async def freeze(
        self,
        chat_id: int,
        user_id: int,
        at: str,
        by: int | None,
        reason: str,
        audit: AdminAction | None = None,
    ) -> None:
        """Freeze an account (a no-op when it is); with `audit`, its row commits with it."""
        await self.execute_all(
            (s.INSERT_FREEZE, (chat_id, user_id, at, by, reason)), *_audit_rows(audit, at)
        )

    async def unfreeze(
        self, chat_id: int, user_id: int, at: str, audit: AdminAction | None = None
    ) -> None:
        """Lift a freeze; with `audit`, its row commits with it."""
        await self.execute_all((s.DELETE_FREEZE, (chat_id, user_id)), *_audit_rows(audit, at))

    async def record_admin_action(self, action: AdminAction, at: str) -> None:
        await self.execute_all(*_audit_rows(action, at))

    async def record_suspicion(
        self, chat_id: int, user_id: int, reason: str, detail: str, at: str, event: OutboxEvent
    ) -> None:
        await self.execute_all(
            (s.INSERT_SUSPICION, (chat_id, user_id, reason, detail, at)),
            (s.INSERT_OUTBOX, outbox_params(event)),
        )

    async def claim_job_run(
        self, job: str, slot: str, claimant: str, at: str, forget_before: str
    ) -> bool:
        # Through the writer like every write; the row read back after COMMIT names the
        # winner (the first INSERT of the slot; a later one did nothing).
        await self.execute_all(
            (s.FORGET_JOB_RUNS, (forget_before,)), (s.CLAIM_JOB_RUN, (job, slot, at, claimant))
        )
        rows = await self._fetch(s.SELECT_JOB_RUN, job, slot)
        return bool(rows) and rows[0][0] == claimant

    async def set_web_public(
        self, chat_id: int, public: bool, at: str, audit: AdminAction
    ) -> None:
        await self.execute_all(
            (s.SET_WEB_PUBLIC, (chat_id, public, audit.actor_id, at)), *_audit_rows(audit, at)
        )

    async def chat_language(self, chat_id: int) -> str | None:
        rows = await self._fetch(s.SELECT_CHAT_LANGUAGE, chat_id)
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def set_chat_language(
        self, chat_id: int, language: str | None, at: str, audit: AdminAction
    ) -> None:
        await self.execute_all(
            (s.UPSERT_CHAT_LANGUAGE, (chat_id, language, at, audit.actor_id)),
            *_audit_rows(audit, at),
        )

    def remember_person_later(
        self, person: KnownPerson, at: str, on_failure: Callable[[], None] | None = None
    ) -> None:
        row = (person.user_id, person.username, person.full_name, bool(person.is_bot), at)
        self._queue.enqueue_later(SideWrite(((s.UPSERT_KNOWN_USER, row),)), on_failure)

    # -- the whole ledger: delegated to postgres/maintenance.py -------------------------

    async def check(
        self, *, record: bool = False, quick_check: bool = True, clock: Clock | None = None
    ) -> IntegrityReport:
        """The integrity check on a pooled connection (`quick_check` is SQLite's alone)."""
        async with self._operator() as conn:
            report: IntegrityReport = await maintenance.check(
                conn, self.where, record=record, clock=clock or self._clock
            )
        return report

    async def backup(self, dest: Path) -> IntegrityReport:
        """A consistent copy of the ledger at `dest`, checked."""
        async with self._operator() as conn:
            report: IntegrityReport = await maintenance.backup(conn, self.where, dest)
        return report

    async def export(
        self, out: TextIO, fmt: Literal["csv", "jsonl"], chat_id: int | None = None
    ) -> int:
        """Every ledger row (of one chat) in id order; the number of rows written."""
        async with self._operator() as conn:
            count: int = await maintenance.export(conn, self.where, out, fmt, chat_id)
        return count

    async def rebuild_balances(self, *, apply: bool, actor: str) -> list[BalanceDifference]:
        """Recompute the cached balances from the ledger; with `apply`, repair them."""
        at = format_utc(self._clock.now())
        async with self._operator() as conn:
            found: list[BalanceDifference] = await maintenance.rebuild_balances(
                conn, self.where, apply=apply, actor=actor, at=at
            )
        return found


def _audit_rows(audit: AdminAction | None, at: str) -> tuple[Statement, ...]:
    return () if audit is None else ((s.INSERT_ADMIN_ACTION, audit_params(audit, at)),)


if TYPE_CHECKING:
    # mypy proves here that the PostgreSQL store implements the whole storage protocol.
    def _conforms(store: PostgresStore) -> LedgerStorage:
        return store
