"""GroupCommitQueue: the queue in front of a ledger's single writer, and the writer task.

Every backend commits the same way: callers queue operations, one task takes everything
queued (up to `max_batch`) and hands it to the backend as one transaction, and each caller
is answered only after that COMMIT returned. The queue is bounded (backpressure with a
timeout), a watchdog fails any caller not answered within `write_timeout` (rule 6: every
wait ends), and close() commits what was accepted before it and refuses the rest. Only the
commit step itself differs between backends, so it is the one thing passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from plugins.gamification.domain.errors import (
    EngineClosedError,
    GamificationError,
    StorageError,
    TransientStorageError,
    WriteTimeoutError,
)
from plugins.gamification.domain.models import Receipt
from plugins.gamification.storage.health import StorageHealth, WriterStats
from plugins.gamification.storage.operations import (
    Operation,
    Outcome,
    Posting,
    Reversal,
    SideWrite,
)

log = logging.getLogger(__name__)

# Applies one batch as one transaction: an outcome per operation, in order. A failure of
# the whole batch is raised as a StorageError with the backend's one sentence.
Commit = Callable[[Sequence[Operation]], Awaitable[list[Outcome]]]


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


class GroupCommitQueue:
    """The bounded queue, the writer task that drains it in batches, and its watchdog."""

    def __init__(
        self,
        commit: Commit,
        health: StorageHealth,
        *,
        write_timeout: float,
        max_batch: int,
        max_queue: int,
        committed: Callable[[], None] | None = None,
        name: str = "ledger-writer",
    ) -> None:
        self._commit_batch = commit
        self._health = health
        self._write_timeout = write_timeout
        self._max_batch = max_batch
        self._committed = committed
        self._name = name
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._waiting: deque[_Pending] = deque()
        self._closing = False
        self._entering = 0
        self._entered = asyncio.Event()
        self._entered.set()
        self.stats = WriterStats()

    def start(self) -> None:
        """Start the writer task and the watchdog (once the backend is connected)."""
        self._task = asyncio.create_task(self._run(), name=self._name)
        self._watchdog = asyncio.create_task(self._watch(), name=f"{self._name}-watchdog")

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    # -- queueing -----------------------------------------------------------------------

    def submit(self, op: Posting | Reversal) -> Awaitable[Receipt]:
        """Queue one ledger operation; await the result to wait until its batch is committed.

        Not a coroutine: when the queue has room (nearly always) the caller awaits the
        operation's own future, without a coroutine frame per call on the hot path.
        """
        future = self._enqueue_nowait(op)
        # The writer answers a Posting or a Reversal with a Receipt (only a SideWrite
        # with None).
        return cast(Awaitable[Receipt], future if future is not None else self.enqueue(op))

    def enqueue_later(self, op: Operation, on_failure: Callable[[], None] | None = None) -> None:
        """Queue `op` without waiting for it; a failure is logged (and reported to
        `on_failure`). When the queue is full it is dropped with a log line rather than
        making the caller wait."""
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
            self._queue.put_nowait(_Pending(op, future, float("inf")))
        except asyncio.QueueFull:
            log.warning("the ledger queue is full; a background write was dropped")
            if on_failure is not None:
                on_failure()

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

    async def enqueue(self, op: Operation) -> Receipt | None:
        """Queue `op` and wait until its batch is committed (or failed)."""
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

    # -- the writer task ----------------------------------------------------------------

    async def _run(self) -> None:
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
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._commit_batch([p.op for p in batch])
        except StorageError as error:
            self.stats.failed_batches += 1
            if isinstance(error, TransientStorageError):
                self._health.failed(error)
                log.debug("ledger batch of %d failed: %s", len(batch), error)
            else:
                log.error("ledger batch of %d failed: %s", len(batch), error)
            self._fail(batch, error)
            return
        except Exception as exc:
            self.stats.failed_batches += 1
            log.exception("ledger batch of %d failed", len(batch))
            self._fail(batch, StorageError(f"The ledger failed: {exc}."))
            return
        if self._health.since is not None:
            self._health.recovered()
        if self._committed is not None:
            self._committed()
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

    @staticmethod
    def _fail(batch: list[_Pending], error: StorageError) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(error)

    async def close(self) -> None:
        """Refuse new work and let the writer commit everything queued before this."""
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


class QueuedWrites:
    """The writing half every store shares: the queue, its health and stats, `submit`.

    A store calls `_queue_writes` in its constructor with its own commit step, and starts
    the queue once connected.
    """

    on_commit: Callable[[], None] | None
    health: StorageHealth
    stats: WriterStats
    _queue: GroupCommitQueue

    def _queue_writes(
        self,
        commit: Commit,
        where: Path | str,
        *,
        write_timeout: float,
        max_batch: int,
        max_queue: int,
    ) -> None:
        # Called after every committed batch (the outbox relay's wake-up); must not block.
        self.on_commit = None
        self.health = StorageHealth(where)
        self._queue = GroupCommitQueue(
            commit,
            self.health,
            write_timeout=write_timeout,
            max_batch=max_batch,
            max_queue=max_queue,
            committed=self._committed,
        )
        self.stats = self._queue.stats

    def submit(self, op: Posting | Reversal) -> Awaitable[Receipt]:
        """Queue one ledger operation; await the result to wait until its batch is committed."""
        return self._queue.submit(op)

    async def execute_all(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """Queue writes beside the ledger (same writer, same batches); wait for COMMIT.

        Each SQL text is one of the store's statement constants, in its own dialect."""
        await self._queue.enqueue(SideWrite(statements))

    @property
    def queue_depth(self) -> int:
        return self._queue.depth

    def _committed(self) -> None:
        if self.on_commit is not None:
            self.on_commit()
