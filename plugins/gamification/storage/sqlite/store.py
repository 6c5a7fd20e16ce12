"""LedgerStore: the single writer task with group commit, and the read connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO, TypeVar

import aiosqlite

from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.errors import (
    EngineClosedError,
    GamificationError,
)
from plugins.gamification.domain.models import AccountBalance, Transaction
from plugins.gamification.storage.batching import QueuedWrites
from plugins.gamification.storage.operations import (
    Operation,
    Outcome,
    SideWrite,
)
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.reading import (
    audit_params,
    known_person,
    outbox_params,
    progress_row,
    today_row,
)
from plugins.gamification.storage.rebuild import BalanceDifference
from plugins.gamification.storage.records import (
    AdminAction,
    AuditEntry,
    KnownPerson,
    OutboxEvent,
    OutboxRow,
    ProgressRow,
    TodayRow,
)
from plugins.gamification.storage.sqlite import files, maintenance, sidetables
from plugins.gamification.storage.sqlite import queries as q
from plugins.gamification.storage.sqlite.effects import INSERT_OUTBOX, Effects
from plugins.gamification.storage.sqlite.faults import storage_error
from plugins.gamification.storage.sqlite.integrity import IntegrityReport, run_check
from plugins.gamification.storage.sqlite.rows import (
    SELECT_HISTORY,
    SELECT_TX_BY_ID,
    SELECT_TX_BY_KEY,
    row_to_transaction,
)
from plugins.gamification.storage.sqlite.schema import ledger_version, migrate
from plugins.gamification.storage.sqlite.writer import BatchWriter

log = logging.getLogger(__name__)

T = TypeVar("T")
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class LedgerStore(QueuedWrites):
    """Owns the database: one write connection driven by one writer task, one reader.

    Every write is queued; the writer takes everything queued (up to `max_batch`) and
    applies it on the write connection's own thread as one transaction, so a batch costs a
    constant number of awaits however many operations it holds. Callers are resolved only
    after COMMIT returned, which with WAL and synchronous=FULL means the batch is on disk.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        write_timeout: float = 30.0,
        max_batch: int = 1024,
        max_queue: int = 100_000,
        effects: Effects | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._write_timeout = write_timeout
        self._writer = BatchWriter(self._clock.now, effects)
        self._write_conn: aiosqlite.Connection | None = None
        self._read_conn: aiosqlite.Connection | None = None
        self._queue_writes(
            self._commit,
            self.path,
            write_timeout=write_timeout,
            max_batch=max_batch,
            max_queue=max_queue,
        )

    async def open(self) -> LedgerStore:
        """Connect, migrate and start the writer; raises StorageError with one sentence."""
        files.check_ledger_path(self.path, writing=True)
        try:
            self._write_conn = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=self._busy_timeout
            )
            await self._on_thread(self._write_conn, self._prepare_writer)
            self._read_conn = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=self._busy_timeout
            )
            await self._read_conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            await self._close_connections()
            raise storage_error(exc, self.path) from exc
        except GamificationError:
            await self._close_connections()
            raise
        self._queue.start()
        return self

    def _prepare_writer(self, conn: sqlite3.Connection) -> None:
        # Before the first write: someone else's database is refused untouched.
        ledger_version(conn, self.path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)

    @staticmethod
    async def _on_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` with the raw sqlite3 connection on that connection's own thread.

        aiosqlite serialises every call through one thread per connection but exposes no
        public way to run a whole function there; a batch must not pay one thread round
        trip per statement, so this is the one place that reaches into it.
        """
        raw = conn._conn
        result: T = await conn._execute(fn, raw)
        return result

    # -- writing ------------------------------------------------------------------------

    async def execute(self, sql: str, *params: object) -> None:
        """Queue a write beside the ledger (same writer, same batches) and wait for COMMIT."""
        await self._queue.enqueue(SideWrite(((sql, params),)))

    def execute_later(
        self, sql: str, *params: object, on_failure: Callable[[], None] | None = None
    ) -> None:
        """Queue a write beside the ledger without waiting for it; a failure is logged
        (and reported to `on_failure`).

        For writes nobody waits on (the names of people seen). When the queue is full it
        is dropped with a log line rather than making the caller wait.
        """
        self._queue.enqueue_later(SideWrite(((sql, params),)), on_failure)

    async def _commit(self, ops: Sequence[Operation]) -> list[Outcome]:
        """One batch on the write connection's thread; a failed batch as one sentence."""
        assert self._write_conn is not None
        try:
            return await self._on_thread(
                self._write_conn, lambda raw: self._writer.apply(raw, ops)
            )
        except sqlite3.Error as exc:
            log.debug("ledger batch failed: %s", exc)
            raise storage_error(exc, self.path) from exc

    async def close(self) -> None:
        """Refuse new work, let the writer commit everything queued, close the files."""
        await self._queue.close()
        await self._close_connections()

    async def _close_connections(self) -> None:
        for conn in (self._read_conn, self._write_conn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.close()
        self._read_conn = self._write_conn = None

    # -- reading ------------------------------------------------------------------------

    async def fetchall(
        self, sql: str, params: tuple[object, ...] | dict[str, object]
    ) -> list[sqlite3.Row]:
        if self._read_conn is None:
            raise EngineClosedError("The points ledger is closed.")
        try:
            rows = await self._read_conn.execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path, writing=False) from exc
        return list(rows)

    async def balance(self, chat_id: int, user_id: int) -> AccountBalance:
        rows = await self.fetchall(q.SELECT_BALANCE, (chat_id, user_id))
        balance, earned, count = rows[0] if rows else (0, 0, 0)
        return AccountBalance(chat_id, user_id, balance, earned, count)

    async def history(
        self, chat_id: int, user_id: int, limit: int, before_seq: int | None = None
    ) -> list[Transaction]:
        rows = await self.fetchall(
            SELECT_HISTORY,
            (chat_id, user_id, before_seq if before_seq is not None else 2**62, limit),
        )
        return [row_to_transaction(r) for r in rows]

    async def transaction(self, tx_id: int) -> Transaction | None:
        rows = await self.fetchall(SELECT_TX_BY_ID, (tx_id,))
        return row_to_transaction(rows[0]) if rows else None

    async def transaction_by_key(self, key: str) -> Transaction | None:
        rows = await self.fetchall(SELECT_TX_BY_KEY, (key,))
        return row_to_transaction(rows[0][:-1]) if rows else None

    async def last_transaction_id(self) -> int:
        """The id of the newest transaction (0 for an empty ledger)."""
        return int((await self.fetchall(q.SELECT_LAST_ID, ()))[0][0])

    async def standings(
        self, chat_id: int, since: str | None, limit: int
    ) -> list[tuple[int, int]]:
        """(user_id, points) best first; all-time from balances, a period from the ledger."""
        if since is None:
            rows = await self.fetchall(q.STANDINGS_ALL, (chat_id, limit))
        else:
            rows = await self.fetchall(q.STANDINGS_SINCE, (chat_id, since, limit))
        return [(int(r[0]), int(r[1])) for r in rows]

    async def standing_of(
        self, chat_id: int, user_id: int, since: str | None
    ) -> tuple[int, int] | None:
        """(rank, points) of one user, or None when they have no points in the window."""
        sql = q.STANDING_OF_ALL if since is None else q.STANDING_OF_SINCE
        rows = await self.fetchall(sql, {"chat": chat_id, "since": since, "user": user_id})
        return (int(rows[0][1]), int(rows[0][0])) if rows else None

    async def progress(self, chat_id: int, user_id: int) -> ProgressRow:
        """Counters, streak and unlocked achievements of one account."""
        counters = await self.fetchall(q.SELECT_PROGRESS, (chat_id, user_id))
        streak = await self.fetchall(q.SELECT_STREAK, (chat_id, user_id))
        unlocked = await self.fetchall(q.SELECT_UNLOCKS, (chat_id, user_id))
        return progress_row(counters, streak, unlocked)

    async def today(self, chat_id: int, user_id: int) -> TodayRow | None:
        """The account's streak and today's activity points; None for a new account."""
        rows = await self.fetchall(sidetables.SELECT_TODAY, (chat_id, user_id))
        return today_row(rows[0]) if rows else None

    # -- the outbox -------------------------------------------------------------------

    async def outbox_lag(self) -> int:
        """How many committed events wait for delivery."""
        return int((await self.fetchall(q.COUNT_PENDING, ()))[0][0])

    async def outbox_pending(self, limit: int) -> list[OutboxRow]:
        """The oldest undelivered events, in commit order."""
        return [OutboxRow(*r) for r in await self.fetchall(q.SELECT_PENDING, (limit,))]

    async def outbox_delivered(self, up_to_id: int, at: str) -> None:
        """Mark every event up to `up_to_id` delivered at `at`."""
        await self.execute(q.MARK_DELIVERED, at, up_to_id)

    async def outbox_prune(self, keep: int) -> None:
        """Delete delivered events beyond the newest `keep` of them."""
        rows = await self.fetchall(q.SELECT_PRUNE_BOUND, (keep,))
        if rows:
            await self.execute(q.PRUNE_DELIVERED, rows[0][0])

    async def publish(self, event: OutboxEvent) -> None:
        await self.execute_all(self._outbox_row(event))

    @staticmethod
    def _outbox_row(event: OutboxEvent) -> tuple[str, tuple[object, ...]]:
        return INSERT_OUTBOX, outbox_params(event)

    # -- tables beside the ledger -------------------------------------------------------

    async def frozen_accounts(self) -> set[tuple[int, int]]:
        rows = await self.fetchall(sidetables.SELECT_FREEZES, ())
        return {(int(chat), int(user)) for chat, user in rows}

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
            (sidetables.INSERT_FREEZE, (chat_id, user_id, at, by, reason)),
            *self._audit_rows(audit, at),
        )

    async def unfreeze(
        self, chat_id: int, user_id: int, at: str, audit: AdminAction | None = None
    ) -> None:
        """Lift a freeze; with `audit`, its row commits with it."""
        await self.execute_all(
            (sidetables.DELETE_FREEZE, (chat_id, user_id)), *self._audit_rows(audit, at)
        )

    async def record_admin_action(self, action: AdminAction, at: str) -> None:
        await self.execute_all(*self._audit_rows(action, at))

    @staticmethod
    def _audit_rows(
        audit: AdminAction | None, at: str
    ) -> tuple[tuple[str, tuple[object, ...]], ...]:
        if audit is None:
            return ()
        return ((sidetables.INSERT_ADMIN_ACTION, audit_params(audit, at)),)

    async def record_suspicion(
        self, chat_id: int, user_id: int, reason: str, detail: str, at: str, event: OutboxEvent
    ) -> None:
        await self.execute_all(
            (sidetables.INSERT_SUSPICION, (chat_id, user_id, reason, detail, at)),
            self._outbox_row(event),
        )

    def remember_person_later(
        self, person: KnownPerson, at: str, on_failure: Callable[[], None] | None = None
    ) -> None:
        self.execute_later(
            sidetables.UPSERT_KNOWN_USER,
            person.user_id,
            person.username,
            person.full_name,
            int(person.is_bot),
            at,
            on_failure=on_failure,
        )

    async def known_person(self, user_id: int) -> KnownPerson | None:
        rows = await self.fetchall(sidetables.SELECT_KNOWN_USER, (user_id,))
        return known_person(rows[0]) if rows else None

    async def known_username(self, username: str) -> KnownPerson | None:
        """The person last seen with `username` (any case)."""
        rows = await self.fetchall(sidetables.SELECT_KNOWN_USERNAME, (username,))
        return known_person(rows[0]) if rows else None

    async def thanks_between(self, chat_id: int, receiver: int, giver: int, since: str) -> int:
        """Thanks `giver` gave `receiver` in the chat since `since`."""
        rows = await self.fetchall(sidetables.LAST_THANKS_PAIR, (chat_id, receiver, giver, since))
        return int(rows[0][0]) if rows else 0

    async def first_transaction_at(self, chat_id: int) -> str | None:
        rows = await self.fetchall(sidetables.FIRST_TRANSACTION_AT, (chat_id,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def last_admin_action(self, chat_id: int, action: str) -> str | None:
        rows = await self.fetchall(sidetables.LAST_ADMIN_ACTION, (chat_id, action))
        return str(rows[0][0]) if rows else None

    async def thanks_given(self, chat_id: int, giver: int, since: str) -> int:
        """Thanks `giver` gave anyone in the chat since `since`."""
        rows = await self.fetchall(sidetables.COUNT_THANKS_GIVEN, (chat_id, giver, since))
        return int(rows[0][0]) if rows else 0

    async def claim_job_run(
        self, job: str, slot: str, claimant: str, at: str, forget_before: str
    ) -> bool:
        # Through the writer like every write; the row read back after COMMIT names the
        # winner (the first INSERT of the slot; a later one did nothing).
        await self.execute_all(
            (sidetables.FORGET_JOB_RUNS, (forget_before,)),
            (sidetables.CLAIM_JOB_RUN, (job, slot, at, claimant)),
        )
        rows = await self.fetchall(sidetables.SELECT_JOB_RUN, (job, slot))
        return bool(rows) and rows[0][0] == claimant

    async def set_web_public(
        self, chat_id: int, public: bool, at: str, audit: AdminAction
    ) -> None:
        await self.execute_all(
            (sidetables.SET_WEB_PUBLIC, (chat_id, int(public), audit.actor_id, at)),
            *self._audit_rows(audit, at),
        )

    async def web_public(self, chat_id: int) -> bool:
        rows = await self.fetchall(sidetables.SELECT_WEB_PUBLIC, (chat_id,))
        return bool(rows and rows[0][0])

    async def chat_known(self, chat_id: int) -> bool:
        rows = await self.fetchall(sidetables.CHAT_KNOWN, (chat_id,))
        return bool(rows[0][0])

    async def audit_trail(self, chat_id: int, limit: int) -> list[AuditEntry]:
        rows = await self.fetchall(sidetables.SELECT_AUDIT_TRAIL, (chat_id, limit))
        return [AuditEntry(*row) for row in rows]

    async def amounts_since(self, chat_id: int, user_id: int, since: str) -> list[tuple[str, int]]:
        rows = await self.fetchall(sidetables.SELECT_AMOUNTS_SINCE, (chat_id, user_id, since))
        return [(str(at), int(amount)) for at, amount in rows]

    async def chat_language(self, chat_id: int) -> str | None:
        rows = await self.fetchall(sidetables.SELECT_CHAT_LANGUAGE, (chat_id,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def set_chat_language(
        self, chat_id: int, language: str | None, at: str, audit: AdminAction
    ) -> None:
        await self.execute_all(
            (sidetables.UPSERT_CHAT_LANGUAGE, (chat_id, language, at, audit.actor_id)),
            *self._audit_rows(audit, at),
        )

    async def member_days(self, chat_id: int, since: str, until: str) -> list[int]:
        rows = await self.fetchall(sidetables.MEMBER_DAYS, (chat_id, since, until))
        return [int(row[0]) for row in rows]

    async def scored_messages(self, chat_id: int, user_id: int, since: str) -> int:
        rows = await self.fetchall(sidetables.COUNT_SCORED_MESSAGES, (chat_id, user_id, since))
        return int(rows[0][0]) if rows else 0

    async def engaged_by(self, chat_id: int, user_id: int, since: str) -> list[tuple[int, int]]:
        rows = await self.fetchall(sidetables.ENGAGED_BY, (chat_id, user_id, since))
        return [(int(actor), int(count)) for actor, count in rows]

    async def engaged_pair(self, chat_id: int, author: int, responder: int, since: str) -> int:
        rows = await self.fetchall(
            sidetables.COUNT_ENGAGED_PAIR, (chat_id, author, responder, since)
        )
        return int(rows[0][0]) if rows else 0

    # -- the whole ledger ---------------------------------------------------------------

    async def check(
        self, *, record: bool = False, quick_check: bool = True, clock: Clock | None = None
    ) -> IntegrityReport:
        """The integrity check on a connection of its own, off the event loop."""
        return await asyncio.to_thread(
            run_check,
            self.path,
            record=record,
            quick_check=quick_check,
            clock=clock or self._clock,
        )

    async def backup(self, dest: Path) -> IntegrityReport:
        """An online, consistent copy at `dest`, checked."""
        return await asyncio.to_thread(maintenance.backup, self.path, dest)

    async def export(
        self, out: TextIO, fmt: Literal["csv", "jsonl"], chat_id: int | None = None
    ) -> int:
        """Every ledger row (of one chat) in id order; the number of rows written."""
        return await asyncio.to_thread(maintenance.export, self.path, out, fmt, chat_id)

    async def rebuild_balances(self, *, apply: bool, actor: str) -> list[BalanceDifference]:
        """Recompute the cached balances from the ledger; with `apply`, repair them."""
        return await asyncio.to_thread(
            maintenance.rebuild_balances, self.path, apply=apply, actor=actor, clock=self._clock
        )


if TYPE_CHECKING:
    # mypy proves here that the SQLite store implements the whole storage protocol.
    def _conforms(store: LedgerStore) -> LedgerStorage:
        return store
