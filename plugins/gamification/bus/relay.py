"""OutboxRelay: delivers committed outbox rows to the event bus, in commit order, at least once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from plugins.gamification.bus.events import (
    EVENT_TYPE_PATTERN,
    BusUnavailableError,
    Event,
    EventBus,
)
from plugins.gamification.domain.clock import Clock, format_utc
from plugins.gamification.domain.errors import GamificationError, TransientStorageError
from plugins.gamification.storage.protocol import LedgerStorage

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]

# Never spin: even a breaker about to half-open is waited for at least this long.
_MIN_PAUSE = 0.01


_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def row_to_event(row: Sequence[Any]) -> Event:
    """Build the Event of a pending outbox row (raises when malformed).

    Every row was written by this plugin's own writer, in the model's shape, so the few
    checks that matter are done here and pydantic's validation is skipped: at thousands
    of events a second it was the relay's largest cost.
    """
    event_id, kind, payload = row[1], row[2], json.loads(row[5])
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        raise ValueError(f"outbox row {row[0]} has no event id or type")
    if not _EVENT_TYPE.match(kind) or not isinstance(payload, dict):
        raise ValueError(f"outbox row {row[0]} ({event_id}) is not an event")
    occurred_at = datetime.fromisoformat(row[6])
    if occurred_at.tzinfo is None:
        raise ValueError(f"outbox row {row[0]} ({event_id}) has a time without a zone")
    return Event.model_construct(
        id=event_id,
        type=kind,
        chat_id=row[3],
        user_id=row[4],
        payload=payload,
        occurred_at=occurred_at,
    )


class OutboxRelay:
    """Publishes what the writer committed to the outbox, then marks it delivered.

    Rows go out in id order, which is commit order. A row is marked only after it and every
    row before it were published, so a crash re-publishes at most the unmarked tail:
    subscribers see each event at least once and must be idempotent on its id. A failing
    bus stops delivery at the failing row (order is never broken), retries with exponential
    backoff, and after `breaker_threshold` failures in a row the breaker opens for
    `breaker_cooldown` seconds, then lets one attempt through. The relay only reads the
    outbox and queues small updates, so a bus outage never blocks or rolls back awarding.
    """

    def __init__(
        self,
        store: LedgerStorage,
        bus: EventBus,
        *,
        clock: Clock,
        batch_size: int = 500,
        base_delay: float = 0.05,
        max_delay: float = 30.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 10.0,
        keep_delivered: int = 10_000,
        poll_interval: float = 1.0,
        prune_every: int = 1_000,
        publish_timeout: float = 5.0,
    ) -> None:
        if batch_size < 1 or breaker_threshold < 1 or prune_every < 1:
            raise ValueError("batch_size, breaker_threshold and prune_every must be at least 1")
        if keep_delivered < 1:
            # The newest row must survive pruning: without AUTOINCREMENT SQLite gives the next
            # row max(id) + 1, and an emptied table would reuse ids, breaking commit order.
            raise ValueError("keep_delivered must be at least 1")
        self._store = store
        self._bus = bus
        self._clock = clock
        self._batch_size = batch_size
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._threshold = breaker_threshold
        self._cooldown = timedelta(seconds=breaker_cooldown)
        self._keep = keep_delivered
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._open_until: datetime | None = None
        self._streak = 0
        self._running = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0
        self.failures = 0
        self.lag = 0
        self.last_error: str | None = None
        # Delivered rows are pruned once this many more went out, in one statement: a
        # prune after every small batch cost a read and a write per batch for a few rows.
        self._prune_every = prune_every
        self._unpruned = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def breaker_state(self) -> BreakerState:
        if self._open_until is None:
            return "closed"
        return "open" if self._clock.now() < self._open_until else "half_open"

    @property
    def consecutive_failures(self) -> int:
        return self._streak

    @property
    def retry_delay(self) -> float:
        """Seconds the background loop waits before its next attempt after a failure."""
        state = self.breaker_state
        if state == "open":
            assert self._open_until is not None
            return max((self._open_until - self._clock.now()).total_seconds(), 0.0)
        if state == "half_open" or not self._streak:
            return 0.0
        # The exponent is capped so a long outage cannot overflow the float.
        return min(self._base_delay * 2.0 ** min(self._streak - 1, 60), self._max_delay)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- delivery ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Deliver what is pending now; return how many events were published.

        Bus failures are recorded (failures, last_error, the breaker), never raised. A
        failing database raises its StorageError, as every other reader of the store does.
        """
        async with self._running:
            self.lag = await self._store.outbox_lag()
            total = 0
            while self.lag and self.breaker_state != "open":
                # Half-open lets exactly one event through to probe the bus.
                limit = 1 if self.breaker_state == "half_open" else self._batch_size
                rows = await self._store.outbox_pending(limit)
                if not rows:
                    self.lag = 0
                    break
                published, error = await self._publish(rows)
                # The invariant the at-least-once promise rests on: a row is marked only
                # after bus.publish returned for it (for NATS: JetStream acknowledged it).
                # A publish that raised, or a process killed before this line, leaves the
                # row pending; it is published again, and consumers dedupe by event id.
                if published:
                    await self._store.outbox_delivered(
                        rows[published - 1][0], format_utc(self._clock.now())
                    )
                    total += published
                    self.delivered += published
                    self.lag = max(self.lag - published, 0)
                    self._succeeded()
                if error is not None:
                    self._failed(rows[published], error)
                    break
                if len(rows) < limit:
                    break
            self._unpruned += total
            if self._unpruned >= self._prune_every:
                await self._prune()
                self._unpruned = 0
            return total

    async def _publish(self, rows: Sequence[Sequence[Any]]) -> tuple[int, Exception | None]:
        """Publish rows in order up to the first failure: (how many went out, the failure)."""
        loop = asyncio.get_running_loop()
        published = 0
        try:
            # One timeout moved forward before each publish bounds every publish alike; a
            # wait_for per event cost more than publishing to the in-process bus itself.
            async with asyncio.timeout(None) as deadline:
                for row in rows:
                    event = row_to_event(row)
                    deadline.reschedule(loop.time() + self._publish_timeout)
                    await self._bus.publish(event)
                    published += 1
        except Exception as exc:
            return published, exc
        return published, None

    def _succeeded(self) -> None:
        if self._open_until is not None:
            log.info("outbox relay: the event bus is back; breaker closed")
        self._open_until = None
        self._streak = 0

    def _failed(self, row: Sequence[Any], exc: Exception) -> None:
        self.failures += 1
        self._streak += 1
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.last_error = f"outbox row {row[0]} (event {row[1]}, {row[2]}): {detail}"
        # A bus that says it is unreachable has logged the outage itself, once; and a
        # breaker re-opened by a failed probe is the same outage: neither is a new warning.
        unavailable = isinstance(exc, BusUnavailableError)
        # The streak only resets on a success, so a failed half-open probe re-opens too.
        if self._streak >= self._threshold:
            self._open_until = self._clock.now() + self._cooldown
            first = self._streak == self._threshold
            log.log(
                logging.WARNING if first and not unavailable else logging.DEBUG,
                "outbox relay: breaker open for %.1fs after %d failures in a row; %s",
                self._cooldown.total_seconds(),
                self._streak,
                self.last_error,
            )
        else:
            log.log(
                logging.DEBUG if unavailable else logging.WARNING,
                "outbox relay: publish failed, retrying in %.2fs; %s",
                self.retry_delay,
                self.last_error,
            )

    async def _prune(self) -> None:
        await self._store.outbox_prune(self._keep)

    # -- background loop --------------------------------------------------------------------

    def notify(self) -> None:
        """Ask the loop to run soon, e.g. right after a commit wrote outbox rows.

        Cheap, never blocks, and safe from any thread.
        """
        loop = self._loop
        if loop is None:
            return
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        """Run the delivery loop in a background task until stop(); starting twice is a no-op."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Cancel the loop and wait for it; rows published but not yet marked go out again."""
        task, self._task = self._task, None
        if task is None:
            return
        # Cancelled again until it ends: on Python 3.11 wait_for() swallows a cancellation
        # that lands just as its inner future completes (here: the store confirming a write).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._publish_timeout + 1.0):
                while not task.done():
                    task.cancel()
                    await asyncio.wait([task], timeout=0.05)
        if not task.done():
            log.warning("outbox relay: the loop did not stop in time")
        elif not task.cancelled() and task.exception() is not None:
            log.error("outbox relay: the loop had failed: %r", task.exception())

    async def _run(self) -> None:
        errors = 0
        while True:
            # Cleared before the run, so a notify() that lands during it triggers another.
            self._wake.clear()
            try:
                await self.run_once()
            except GamificationError as exc:
                errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                # A lock or a full disk is logged once per outage by the store, not here.
                level = (
                    logging.DEBUG if isinstance(exc, TransientStorageError) else logging.WARNING
                )
                log.log(level, "outbox relay: the outbox could not be read or marked: %s", exc)
                await asyncio.sleep(self._backoff(errors))
                continue
            except Exception:
                errors += 1
                log.exception("outbox relay: unexpected failure; retrying")
                await asyncio.sleep(self._backoff(errors))
                continue
            errors = 0
            await self._pause()

    def _backoff(self, attempt: int) -> float:
        return min(self._base_delay * 2.0 ** min(attempt - 1, 60), self._max_delay)

    async def _pause(self) -> None:
        state = self.breaker_state
        if state == "open":
            # Polled, not slept through: the clock decides when the breaker half-opens.
            await asyncio.sleep(min(max(self.retry_delay, _MIN_PAUSE), self._poll_interval))
        elif state == "closed" and self._streak:
            # Not cut short by notify(): a stream of commits must not defeat the backoff.
            await asyncio.sleep(self.retry_delay)
        elif state == "half_open" and self.lag:
            return
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
