"""The outbox relay on a real SQLite file: order, at-least-once, outages, the breaker, pruning."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from plugins.gamification.bus.events import Event, EventHandler, InProcessBus, Subscription
from plugins.gamification.bus.relay import OutboxRelay
from plugins.gamification.domain.clock import FakeClock, format_utc
from plugins.gamification.storage.sqlite.store import LedgerStore

INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, type, chat_id, user_id, payload, occurred_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
COOLDOWN = 10.0


class Collector:
    """A subscriber that records event ids in arrival order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.ids.append(event.id)
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5.0):
            while len(self.ids) < count:
                self._changed.clear()
                await self._changed.wait()


class FlakyBus:
    """An InProcessBus behind a switch: while `down`, every publish fails before delivering."""

    def __init__(self, inner: InProcessBus) -> None:
        self.inner = inner
        self.down = False
        self.fail_once: set[str] = set()
        self.attempts = 0
        self._attempted = asyncio.Event()

    async def publish(self, event: Event) -> None:
        self.attempts += 1
        self._attempted.set()
        if self.down or event.id in self.fail_once:
            self.fail_once.discard(event.id)
            raise ConnectionError("the broker is unreachable")
        await self.inner.publish(event)

    def subscribe(
        self, pattern: str, handler: EventHandler, *, name: str | None = None
    ) -> Subscription:
        return self.inner.subscribe(pattern, handler, name=name)

    async def close(self) -> None:
        await self.inner.close()

    async def wait_for_attempts(self, count: int) -> None:
        async with asyncio.timeout(5.0):
            while self.attempts < count:
                self._attempted.clear()
                await self._attempted.wait()


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until the relay reaches a state; it exposes properties, like a health check reads."""
    async with asyncio.timeout(5.0):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


class Killed(BaseException):
    """Stands in for the process dying: nothing in the relay may catch it."""


class DyingBus(FlakyBus):
    """Publishes `survive` events, then dies on the next: hanging (to be cancelled) or raising."""

    def __init__(self, inner: InProcessBus, survive: int, *, hang: bool) -> None:
        super().__init__(inner)
        self.survive = survive
        self.hang = hang
        self.dying = asyncio.Event()

    async def publish(self, event: Event) -> None:
        if self.attempts == self.survive:
            self.dying.set()
            if self.hang:
                await asyncio.Event().wait()
            raise Killed
        await super().publish(event)


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[LedgerStore]:
    store = await LedgerStore(db_path, clock=clock).open()
    yield store
    await store.close()


@pytest.fixture
async def inner() -> AsyncIterator[InProcessBus]:
    bus = InProcessBus(timeout=2.0)
    yield bus
    await bus.close()


@pytest.fixture
def collector(inner: InProcessBus) -> Collector:
    collector = Collector()
    inner.subscribe("*", collector, name="collector")
    return collector


@pytest.fixture
def bus(inner: InProcessBus, collector: Collector) -> FlakyBus:
    return FlakyBus(inner)


async def commit(store: LedgerStore, clock: FakeClock, first: int, count: int) -> None:
    """Commit `count` outbox rows, as the writer would, in as few batches as the store makes."""
    await asyncio.gather(
        *(
            store.execute(
                INSERT_OUTBOX,
                f"ev-{n:04d}",
                "points.awarded" if n % 3 else "achievement.unlocked",
                -100,
                n,
                json.dumps({"amount": n, "why": "test"}),
                format_utc(clock.now()),
            )
            for n in range(first, first + count)
        )
    )


def outbox(path: Path) -> list[tuple[int, str, str | None]]:
    """(id, event_id, delivered_at) of every outbox row, read on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, event_id, delivered_at FROM outbox ORDER BY id").fetchall()
    finally:
        conn.close()


def committed(path: Path) -> list[str]:
    return [event_id for _, event_id, _ in outbox(path)]


def delivered(path: Path) -> list[str]:
    return [event_id for _, event_id, at in outbox(path) if at is not None]


def relay_for(store: LedgerStore, bus: FlakyBus, clock: FakeClock, **kwargs: Any) -> OutboxRelay:
    """A relay with test-sized delays; the breaker's cooldown runs on the fake clock."""
    options: dict[str, Any] = {
        "base_delay": 0.001,
        "max_delay": 0.01,
        "breaker_threshold": 3,
        "breaker_cooldown": COOLDOWN,
        "poll_interval": 0.01,
    }
    options.update(kwargs)
    return OutboxRelay(store, bus, clock=clock, **options)


# -- delivery -----------------------------------------------------------------------------


async def test_delivers_in_commit_order_and_marks_delivered(
    store: LedgerStore,
    clock: FakeClock,
    bus: FlakyBus,
    inner: InProcessBus,
    collector: Collector,
    db_path: Path,
) -> None:
    await commit(store, clock, 1, 50)
    relay = relay_for(store, bus, clock, batch_size=7)

    assert await relay.run_once() == 50
    await inner.drain()

    assert collector.ids == committed(db_path)
    assert len(collector.ids) == 50
    rows = outbox(db_path)
    assert all(at == format_utc(clock.now()) for _, _, at in rows)
    assert (relay.delivered, relay.failures, relay.lag, relay.breaker_state) == (
        50,
        0,
        0,
        "closed",
    )
    assert relay.last_error is None
    assert await relay.run_once() == 0
    assert bus.attempts == 50


async def test_events_carry_the_row_contents(
    store: LedgerStore, clock: FakeClock, inner: InProcessBus
) -> None:
    seen: list[Event] = []

    async def keep(event: Event) -> None:
        seen.append(event)

    inner.subscribe("achievement.*", keep)
    await commit(store, clock, 3, 1)
    await OutboxRelay(store, inner, clock=clock).run_once()
    await inner.drain()

    assert seen == [
        Event(
            id="ev-0003",
            type="achievement.unlocked",
            occurred_at=clock.now(),
            chat_id=-100,
            user_id=3,
            payload={"amount": 3, "why": "test"},
        )
    ]


async def test_a_failure_stops_at_that_row_and_marks_only_the_prefix(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, inner: InProcessBus, collector: Collector
) -> None:
    await commit(store, clock, 1, 10)
    bus.fail_once.add("ev-0006")
    relay = relay_for(store, bus, clock, batch_size=4)

    assert await relay.run_once() == 5
    assert delivered(store.path) == [f"ev-{n:04d}" for n in range(1, 6)]
    assert relay.lag == 5
    assert relay.consecutive_failures == 1
    assert relay.last_error is not None
    assert "ev-0006" in relay.last_error
    assert "ConnectionError: the broker is unreachable" in relay.last_error

    assert await relay.run_once() == 5
    await inner.drain()
    assert collector.ids == committed(store.path)
    assert (relay.failures, relay.consecutive_failures, relay.lag) == (1, 0, 0)


async def test_a_malformed_row_holds_delivery_without_losing_it(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, inner: InProcessBus, collector: Collector
) -> None:
    await commit(store, clock, 1, 2)
    await store.execute(INSERT_OUTBOX, "ev-bad", "Bad Type", None, None, "{}", "2026")
    await commit(store, clock, 4, 1)
    relay = relay_for(store, bus, clock)

    assert await relay.run_once() == 2
    await inner.drain()

    assert collector.ids == ["ev-0001", "ev-0002"]
    assert relay.last_error is not None
    assert "outbox row 3 (event ev-bad" in relay.last_error
    assert relay.lag == 2


# -- outages and the breaker --------------------------------------------------------------


async def test_an_outage_loses_nothing_and_the_breaker_opens_then_half_opens(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, inner: InProcessBus, collector: Collector
) -> None:
    await commit(store, clock, 1, 5)
    relay = relay_for(store, bus, clock, base_delay=0.05, max_delay=30.0)
    bus.down = True

    assert await relay.run_once() == 0
    assert (relay.breaker_state, relay.retry_delay) == ("closed", 0.05)
    assert await relay.run_once() == 0
    assert (relay.breaker_state, relay.retry_delay) == ("closed", 0.1)
    assert await relay.run_once() == 0
    assert relay.breaker_state == "open"
    assert relay.retry_delay == COOLDOWN
    assert (relay.failures, bus.attempts, relay.lag) == (3, 3, 5)

    # Awarding goes on during the outage; while open the relay does not even try.
    await commit(store, clock, 6, 3)
    assert await relay.run_once() == 0
    assert (bus.attempts, relay.lag) == (3, 8)
    clock.advance(COOLDOWN - 0.001)
    assert await relay.run_once() == 0
    assert bus.attempts == 3

    # Half-open lets one attempt through; failing it re-opens for a full cooldown.
    clock.advance(0.001)
    assert relay.breaker_state == "half_open"
    assert await relay.run_once() == 0
    assert bus.attempts == 4
    assert relay.breaker_state == "open"
    assert relay.retry_delay == COOLDOWN

    clock.advance(timedelta(seconds=COOLDOWN))
    bus.down = False
    assert await relay.run_once() == 8
    await inner.drain()

    assert collector.ids == committed(store.path)
    assert delivered(store.path) == committed(store.path)
    assert (relay.breaker_state, relay.consecutive_failures, relay.lag) == ("closed", 0, 0)
    assert (relay.failures, relay.delivered, bus.attempts) == (4, 8, 12)


async def test_backoff_doubles_up_to_the_cap(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus
) -> None:
    await commit(store, clock, 1, 1)
    relay = relay_for(store, bus, clock, base_delay=1.0, max_delay=5.0, breaker_threshold=100)
    bus.down = True
    delays = []
    for _ in range(6):
        await relay.run_once()
        delays.append(relay.retry_delay)

    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert relay.breaker_state == "closed"


async def test_the_loop_rides_out_an_outage(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, collector: Collector
) -> None:
    relay = relay_for(store, bus, clock)
    relay.start()
    try:
        bus.down = True
        await commit(store, clock, 1, 20)
        relay.notify()
        await eventually(lambda: relay.breaker_state == "open")

        # The fake clock stands still, so the breaker stays open and nothing is attempted
        # while more commits arrive.
        await commit(store, clock, 21, 10)
        relay.notify()
        await asyncio.sleep(0.05)
        assert (relay.breaker_state, bus.attempts, relay.failures) == ("open", 3, 3)
        clock.advance(COOLDOWN)
        bus.down = False
        await collector.wait_for(30)
    finally:
        await relay.stop()

    assert collector.ids == committed(store.path)
    assert bus.attempts == 33
    assert relay.breaker_state == "closed"
    assert not relay.running


async def test_a_hanging_bus_never_blocks_writes(
    store: LedgerStore, clock: FakeClock, inner: InProcessBus, collector: Collector
) -> None:
    class HangingBus(FlakyBus):
        async def publish(self, event: Event) -> None:
            self.attempts += 1
            self._attempted.set()
            await asyncio.Event().wait()

    hanging = HangingBus(inner)
    relay = relay_for(store, hanging, clock, publish_timeout=0.02)
    await commit(store, clock, 1, 3)
    relay.start()
    try:
        await hanging.wait_for_attempts(1)
        async with asyncio.timeout(5.0):
            await commit(store, clock, 4, 200)
        await eventually(lambda: relay.breaker_state == "open")
        assert hanging.attempts == 3
        assert relay.last_error is not None
        assert "TimeoutError" in relay.last_error
    finally:
        await relay.stop()

    assert len(committed(store.path)) == 203
    assert delivered(store.path) == []
    assert collector.ids == []


# -- crashes ------------------------------------------------------------------------------


@pytest.mark.parametrize("survive", [0, 1, 9, 10, 11, 23, 34])
@pytest.mark.parametrize("hang", [True, False], ids=["cancelled", "raised"])
async def test_a_relay_killed_mid_delivery_delivers_everything_after_restart(
    store: LedgerStore,
    clock: FakeClock,
    inner: InProcessBus,
    collector: Collector,
    survive: int,
    hang: bool,
) -> None:
    await commit(store, clock, 1, 35)
    dying = DyingBus(inner, survive, hang=hang)
    first = relay_for(store, dying, clock, batch_size=10)
    if hang:
        first.start()
        await asyncio.wait_for(dying.dying.wait(), 5.0)
        await first.stop()
    else:
        with pytest.raises(Killed):
            await first.run_once()
    await inner.drain()
    before_restart = list(collector.ids)
    marked = delivered(store.path)

    # Whole batches published before the kill were marked; the rest of the batch was not.
    assert len(before_restart) == survive
    assert marked == before_restart[: survive // 10 * 10]

    second = relay_for(store, FlakyBus(inner), clock, batch_size=10)
    assert await second.run_once() == 35 - len(marked)
    await inner.drain()

    expected = committed(store.path)
    assert delivered(store.path) == expected
    assert collector.ids == before_restart + expected[len(marked) :]
    assert list(dict.fromkeys(collector.ids)) == expected
    duplicates = [i for i in set(collector.ids) if collector.ids.count(i) > 1]
    assert sorted(duplicates) == sorted(set(before_restart) - set(marked))


# -- housekeeping -------------------------------------------------------------------------


async def test_pruning_keeps_only_the_newest_delivered_rows(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, inner: InProcessBus, collector: Collector
) -> None:
    relay = relay_for(store, bus, clock, keep_delivered=3, batch_size=4, prune_every=1)
    await commit(store, clock, 1, 10)
    assert await relay.run_once() == 10
    assert [row[0] for row in outbox(store.path)] == [8, 9, 10]

    bus.down = True
    await commit(store, clock, 11, 4)
    await relay.run_once()
    # Undelivered rows are never pruned, and ids keep growing past the pruned ones.
    assert [(row[0], row[2] is not None) for row in outbox(store.path)] == [
        (8, True),
        (9, True),
        (10, True),
        (11, False),
        (12, False),
        (13, False),
        (14, False),
    ]

    bus.down = False
    assert await relay.run_once() == 4
    await inner.drain()
    assert [row[0] for row in outbox(store.path)] == [12, 13, 14]
    assert collector.ids == [f"ev-{n:04d}" for n in range(1, 15)]


async def test_pruning_waits_for_prune_every_deliveries(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, inner: InProcessBus, collector: Collector
) -> None:
    relay = relay_for(store, bus, clock, keep_delivered=2, batch_size=3, prune_every=5)
    await commit(store, clock, 1, 4)
    assert await relay.run_once() == 4
    # Four delivered since the last prune: all of them are still there.
    assert [row[0] for row in outbox(store.path)] == [1, 2, 3, 4]

    await commit(store, clock, 5, 3)
    assert await relay.run_once() == 3
    # Seven delivered: pruned down to the newest two, and the count starts again.
    assert [row[0] for row in outbox(store.path)] == [6, 7]

    await commit(store, clock, 8, 4)
    assert await relay.run_once() == 4
    assert [row[0] for row in outbox(store.path)] == [6, 7, 8, 9, 10, 11]
    await inner.drain()
    assert collector.ids == [f"ev-{n:04d}" for n in range(1, 12)]


async def test_keep_delivered_must_keep_at_least_the_newest_row(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus
) -> None:
    with pytest.raises(ValueError, match="keep_delivered"):
        OutboxRelay(store, bus, clock=clock, keep_delivered=0)
    with pytest.raises(ValueError, match="prune_every"):
        OutboxRelay(store, bus, clock=clock, prune_every=0)


async def test_lag_counts_undelivered_rows_as_last_seen(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus
) -> None:
    relay = relay_for(store, bus, clock, batch_size=3)
    assert relay.lag == 0
    await commit(store, clock, 1, 7)
    assert relay.lag == 0  # not seen yet

    bus.down = True
    await relay.run_once()
    assert relay.lag == 7

    bus.fail_once.add("ev-0005")
    bus.down = False
    assert await relay.run_once() == 4
    assert relay.lag == 3
    assert await relay.run_once() == 3
    assert relay.lag == 0


async def test_notify_wakes_the_loop_and_stop_is_clean(
    store: LedgerStore, clock: FakeClock, bus: FlakyBus, collector: Collector
) -> None:
    relay = relay_for(store, bus, clock, poll_interval=60.0)
    relay.notify()  # before start: harmless
    relay.start()
    relay.start()  # a second start does not start a second loop
    assert relay.running
    await commit(store, clock, 1, 5)
    relay.notify()
    await collector.wait_for(5)
    # Published is not yet marked: run_once waits for the batch in progress (one lock).
    await relay.run_once()
    await relay.stop()
    await relay.stop()

    assert collector.ids == committed(store.path)
    assert not relay.running
    assert relay.delivered == 5


async def test_stop_ends_the_loop_even_when_a_cancellation_is_swallowed(
    store: LedgerStore, clock: FakeClock, inner: InProcessBus
) -> None:
    class StubbornBus(FlakyBus):
        """Swallows the first cancellation, as wait_for() on Python 3.11 sometimes does."""

        async def publish(self, event: Event) -> None:
            self.attempts += 1
            self._attempted.set()
            if self.attempts == 1:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
            await self.inner.publish(event)

    stubborn = StubbornBus(inner)
    relay = relay_for(store, stubborn, clock, poll_interval=60.0)
    await commit(store, clock, 1, 3)
    relay.start()
    await stubborn.wait_for_attempts(1)
    await relay.stop()

    assert not relay.running
    assert relay.breaker_state == "closed"
