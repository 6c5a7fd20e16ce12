"""LedgerStore: the single writer task with group commit, and the read connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO, TypeVar, cast

import aiosqlite

from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.errors import (
    EngineClosedError,
    GamificationError,
    StorageError,
    TransientStorageError,
    WriteTimeoutError,
)
from plugins.gamification.domain.models import AccountBalance, Receipt, Transaction
from plugins.gamification.storage.health import StorageHealth, WriterStats
from plugins.gamification.storage.operations import (
    Operation,
    Outcome,
    Posting,
    Reversal,
    SideWrite,
)
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.rebuild import BalanceDifference
from plugins.gamification.storage.records import (
    AdminAction,
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
    row_to_transaction,
)
from plugins.gamification.storage.sqlite.schema import ledger_version, migrate
from plugins.gamification.storage.sqlite.writer import BatchWriter

log = logging.getLogger(__name__)

T = TypeVar("T")
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def _log_failure(future: asyncio.Future[Receipt | None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if isinstance(error, TransientStorageError):
        # The outage is logged once by StorageHealth, not once per write it failed.
        log.debug("a background write failed: %s", error)
    elif error is not None:
        log.warning("a background write failed: %s", error)


@dataclass(slots=True)
class _Pending:
    op: Operation
    future: asyncio.Future[Receipt | None]
    deadline: float


class LedgerStore:
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
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(max_queue)
        self._writer = BatchWriter(self._clock.now, effects)
        self._write_conn: aiosqlite.Connection | None = None
        self._read_conn: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._waiting: deque[_Pending] = deque()
        self._closing = False
        # Called after every committed batch (the outbox relay's wake-up); must not block.
        self.on_commit: Callable[[], None] | None = None
        self._entering = 0
        self._entered = asyncio.Event()
        self._entered.set()
        self.stats = WriterStats()
        self.health = StorageHealth(self.path)

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
        self._task = asyncio.create_task(self._run(), name="ledger-writer")
        self._watchdog = asyncio.create_task(self._watch(), name="ledger-writer-watchdog")
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

    def submit(self, op: Posting | Reversal) -> Awaitable[Receipt]:
        """Queue one ledger operation; await the result to wait until its batch is committed.

        Not a coroutine: when the queue has room (nearly always) the caller awaits the
        operation's own future, without a coroutine frame per call on the hot path.
        """
        future = self._enqueue_nowait(op)
        # The writer answers a Posting or a Reversal with a Receipt (only a SideWrite
        # with None).
        return cast(Awaitable[Receipt], future if future is not None else self._enqueue(op))

    async def execute(self, sql: str, *params: object) -> None:
        """Queue a write beside the ledger (same writer, same batches) and wait for COMMIT."""
        await self._enqueue(SideWrite(((sql, params),)))

    def execute_later(
        self, sql: str, *params: object, on_failure: Callable[[], None] | None = None
    ) -> None:
        """Queue a write beside the ledger without waiting for it; a failure is logged
        (and reported to `on_failure`).

        For writes nobody waits on (the names of people seen). When the queue is full it
        is dropped with a log line rather than making the caller wait.
        """
        if self._closing or self._task is None:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt | None] = loop.create_future()
        future.add_done_callback(_log_failure)
        if on_failure is not None:
            future.add_done_callback(
                lambda done: on_failure() if not done.cancelled() and done.exception() else None
            )
        try:
            self._queue.put_nowait(_Pending(SideWrite(((sql, params),)), future, float("inf")))
        except asyncio.QueueFull:
            log.warning("the ledger queue is full; a background write was dropped")
            if on_failure is not None:
                on_failure()

    async def execute_all(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """Like `execute`, for several statements that must commit together."""
        await self._enqueue(SideWrite(statements))

    def _enqueue_nowait(self, op: Operation) -> asyncio.Future[Receipt | None] | None:
        """Queue `op` and return its future, or None when the queue is full."""
        if self._closing or self._task is None:
            raise EngineClosedError("The points ledger is closed and accepts no more changes.")
        if self._queue.full():
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt | None] = loop.create_future()
        pending = _Pending(op, future, loop.time() + self._write_timeout)
        self._queue.put_nowait(pending)
        self._waiting.append(pending)
        return future

    async def _enqueue(self, op: Operation) -> Receipt | None:
        future = self._enqueue_nowait(op)
        if future is None:
            # The queue is full: wait for room, but not forever. close() waits for every
            # submit accepted before it to be queued, so its stop marker lands behind them
            # and the writer commits them all.
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            pending = _Pending(op, future, loop.time() + self._write_timeout)
            self._entering += 1
            self._entered.clear()
            try:
                async with asyncio.timeout(self._write_timeout):
                    await self._queue.put(pending)
            except TimeoutError:
                raise WriteTimeoutError("The points ledger is overloaded; try again.") from None
            finally:
                self._entering -= 1
                if self._entering == 0:
                    self._entered.set()
            self._waiting.append(pending)
        # No per-call timer or shield on this hot path: the watchdog fails a future that
        # waits longer than write_timeout, and a caller cancelled here only cancels its own
        # future, which the writer then skips; its operation still commits with the batch.
        return await future

    async def _watch(self) -> None:
        """Fail every submit not confirmed within write_timeout (rule 6: every wait ends)."""
        loop = asyncio.get_running_loop()
        waiting = self._waiting
        while True:
            await asyncio.sleep(min(1.0, self._write_timeout / 4))
            now = loop.time()
            while waiting and (waiting[0].future.done() or waiting[0].deadline <= now):
                pending = waiting.popleft()
                if not pending.future.done():
                    pending.future.set_exception(
                        WriteTimeoutError(
                            "The points ledger did not confirm the change in time;"
                            " it may still be recorded."
                        )
                    )

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        assert self._write_conn is not None
        conn = self._write_conn
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._commit(conn, batch)

    async def _commit(self, conn: aiosqlite.Connection, batch: list[_Pending]) -> None:
        ops = [p.op for p in batch]
        try:
            outcomes: list[Outcome] = await self._on_thread(
                conn, lambda raw: self._writer.apply(raw, ops)
            )
        except sqlite3.Error as exc:
            self.stats.failed_batches += 1
            error = storage_error(exc, self.path)
            if isinstance(error, TransientStorageError):
                self.health.failed(error)
                log.debug("ledger batch of %d failed: %s", len(batch), exc)
            else:
                log.error("ledger batch of %d failed: %s", len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        except Exception as exc:
            self.stats.failed_batches += 1
            log.exception("ledger batch of %d failed", len(batch))
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StorageError(f"The ledger failed: {exc}."))
            return
        if self.health.since is not None:
            self.health.recovered()
        if self.on_commit is not None:
            self.on_commit()
        stats = self.stats
        stats.batches += 1
        stats.operations += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, GamificationError):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    async def close(self) -> None:
        """Refuse new work, let the writer commit everything queued, close the files."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            await self._entered.wait()
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        self._waiting.clear()
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
        day, length, best = streak[0] if streak else (None, 0, 0)
        return ProgressRow(
            counters={str(name): int(value) for name, value in counters},
            streak_day=date.fromisoformat(day) if day is not None else None,
            streak_length=int(length),
            streak_best=int(best),
            unlocked={str(a): str(at) for a, at in unlocked},
        )

    async def today(self, chat_id: int, user_id: int) -> TodayRow | None:
        """The account's streak and today's activity points; None for a new account."""
        rows = await self.fetchall(sidetables.SELECT_TODAY, (chat_id, user_id))
        if not rows:
            return None
        streak_day, length, activity_day, activity_today = rows[0]
        return TodayRow(
            date.fromisoformat(streak_day) if streak_day is not None else None,
            int(length),
            activity_day,
            int(activity_today),
        )

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
        return INSERT_OUTBOX, (
            event.event_id,
            event.type,
            event.chat_id,
            event.user_id,
            event.payload,
            event.occurred_at,
        )

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
        return (
            (
                sidetables.INSERT_ADMIN_ACTION,
                (audit.chat_id, audit.actor_id, audit.action, audit.target_id, audit.detail, at),
            ),
        )

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
        return KnownPerson(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3])) if rows else None

    async def known_username(self, username: str) -> KnownPerson | None:
        """The person last seen with `username` (any case)."""
        rows = await self.fetchall(sidetables.SELECT_KNOWN_USERNAME, (username,))
        return KnownPerson(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3])) if rows else None

    async def thanks_between(self, chat_id: int, receiver: int, giver: int, since: str) -> int:
        """Thanks `giver` gave `receiver` in the chat since `since`."""
        rows = await self.fetchall(sidetables.LAST_THANKS_PAIR, (chat_id, receiver, giver, since))
        return int(rows[0][0]) if rows else 0

    async def thanks_given(self, chat_id: int, giver: int, since: str) -> int:
        """Thanks `giver` gave anyone in the chat since `since`."""
        rows = await self.fetchall(sidetables.COUNT_THANKS_GIVEN, (chat_id, giver, since))
        return int(rows[0][0]) if rows else 0

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
