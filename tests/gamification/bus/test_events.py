"""The in-process event bus: routing, per-subscriber order, isolation, overflow, close."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from plugins.gamification.bus.events import BusClosedError, Event, EventBus, InProcessBus
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.errors import GamificationError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event(type_: str = "game.round_won", n: int = 0, **kwargs: Any) -> Event:
    return Event(id=f"e{n}", type=type_, occurred_at=NOW, **kwargs)


class Recorder:
    """A handler that records what it saw, optionally yielding to the loop in between."""

    def __init__(self, *, yields: int = 0, seed: int = 0) -> None:
        self.seen: list[str] = []
        self._yields = yields
        self._random = random.Random(seed)
        self._changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        for _ in range(self._random.randint(0, self._yields)):
            await asyncio.sleep(0)
        self.seen.append(event.id)
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(2.0):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    bus = InProcessBus(queue_size=1000, timeout=2.0)
    yield bus
    await bus.close()


# -- the Event record ---------------------------------------------------------------------


def test_event_new_fills_id_and_time_from_the_clock() -> None:
    clock = FakeClock(NOW)
    first = Event.new("narrative.chapter_completed", chat_id=-100, user_id=7, clock=clock)
    second = Event.new("narrative.chapter_completed", payload={"chapter": 3}, clock=clock)

    assert first.occurred_at == NOW
    assert first.id != second.id
    assert len(first.id) == 32
    assert int(first.id, 16) >= 0
    assert (first.chat_id, first.user_id, first.payload) == (-100, 7, {})
    assert second.payload == {"chapter": 3}


@pytest.mark.parametrize(
    "type_",
    ["game.round_won", "narrative.chapter_completed", "a.b.c", "user.joined2", "admin.x_y"],
)
def test_event_accepts_dotted_lowercase_types(type_: str) -> None:
    assert event(type_).type == type_


@pytest.mark.parametrize(
    "type_",
    [
        "",
        "game",
        "Game.won",
        "game.Won",
        "game..won",
        ".game",
        "game.",
        "game.*",
        "game won.x",
        "1game.won",
        "game.won\n",
        "spiel.gewönnen",
        "a." + "b" * 200,
    ],
)
def test_event_refuses_malformed_types(type_: str) -> None:
    with pytest.raises(ValidationError):
        event(type_)


def test_event_refuses_a_naive_time() -> None:
    with pytest.raises(ValidationError):
        Event(id="e", type="game.won", occurred_at=datetime(2026, 1, 1))


def test_event_refuses_unknown_fields_and_bad_ids() -> None:
    with pytest.raises(ValidationError):
        Event(id="e", type="game.won", occurred_at=NOW, points=5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Event(id="", type="game.won", occurred_at=NOW)
    with pytest.raises(ValidationError):
        Event(id="x" * 201, type="game.won", occurred_at=NOW)


def test_event_is_frozen_and_payload_must_be_json() -> None:
    frozen = event()
    with pytest.raises(ValidationError):
        frozen.user_id = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event(payload={"when": object()})


def test_event_round_trips_through_json() -> None:
    original = event(payload={"score": 3, "tags": ["a", None], "nested": {"ok": True}})
    assert Event.model_validate_json(original.model_dump_json()) == original


def test_bus_closed_error_is_a_gamification_error() -> None:
    assert issubclass(BusClosedError, GamificationError)


# -- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "type_", "matches"),
    [
        ("game.round_won", "game.round_won", True),
        ("game.round_won", "game.round_lost", False),
        ("game.*", "game.round_won", True),
        ("game.*", "game.bonus.big", True),
        ("game.*", "gamer.round_won", False),
        ("game.*", "narrative.chapter_completed", False),
        ("narrative.*", "narrative.chapter_completed", True),
        ("*", "user.joined", True),
        ("*.joined", "user.joined", True),
        ("GAME.*", "game.round_won", False),
    ],
)
async def test_patterns_select_event_types(
    bus: InProcessBus, pattern: str, type_: str, matches: bool
) -> None:
    recorder = Recorder()
    bus.subscribe(pattern, recorder)

    await bus.publish(event(type_))
    await bus.drain()

    assert recorder.seen == (["e0"] if matches else [])
    assert bus.published == 1


async def test_in_process_bus_satisfies_the_protocol() -> None:
    bus: EventBus = InProcessBus()
    recorder = Recorder()
    subscription = bus.subscribe("*", recorder, name="all")
    await bus.publish(event())
    await bus.close()

    assert subscription.name == "all"
    assert recorder.seen == ["e0"]
    assert subscription.delivered == 1


async def test_each_subscriber_sees_publish_order_under_concurrency(bus: InProcessBus) -> None:
    recorders = [Recorder(yields=5, seed=seed) for seed in range(5)]
    for index, recorder in enumerate(recorders):
        bus.subscribe("game.*" if index % 2 else "*", recorder, name=f"r{index}")
    order: list[str] = []

    async def publisher(worker: int) -> None:
        rng = random.Random(worker)
        for n in range(100):
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            e = event("game.tick", worker * 1000 + n)
            # publish enqueues before it first awaits, so this is the order it enqueued in.
            order.append(e.id)
            await bus.publish(e)

    await asyncio.gather(*(publisher(w) for w in range(8)))
    await bus.drain()

    assert len(order) == 800
    assert order[:100] != [f"e{n}" for n in range(100)]  # the publishers really interleaved
    for recorder in recorders:
        assert recorder.seen == order


async def test_subscribers_run_concurrently(bus: InProcessBus) -> None:
    both_started = asyncio.Event()
    started: list[str] = []

    async def waits_for_the_other(name: str) -> None:
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 2.0)

    bus.subscribe("*", lambda e: waits_for_the_other("a"), name="a")
    bus.subscribe("*", lambda e: waits_for_the_other("b"), name="b")
    await bus.publish(event())
    await bus.drain()

    assert sorted(started) == ["a", "b"]
    assert all(s.delivered == 1 and s.failed == 0 for s in bus.subscriptions)


# -- isolation ----------------------------------------------------------------------------


async def test_a_raising_and_a_slow_subscriber_do_not_affect_a_fast_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InProcessBus(queue_size=3, timeout=2.0)
    release = asyncio.Event()

    async def raises(e: Event) -> None:
        if int(e.id[1:]) % 2:
            raise RuntimeError("boom")

    async def slow(e: Event) -> None:
        await release.wait()

    fast = Recorder()
    bad = bus.subscribe("*", raises, name="raises")
    stuck = bus.subscribe("*", slow, name="slow")
    good = bus.subscribe("*", fast, name="fast")

    with caplog.at_level(logging.INFO, logger="plugins.gamification.bus.events"):
        for n in range(10):
            await bus.publish(event(n=n))
            await asyncio.sleep(0)  # let the fast workers keep up with the publisher
        await fast.wait_for(10)

        assert fast.seen == [f"e{n}" for n in range(10)]
        assert (good.delivered, good.failed, good.dropped) == (10, 0, 0)
        assert (bad.delivered, bad.failed, bad.dropped) == (5, 5, 0)
        # The slow one holds one event and queues three; the rest were dropped for it alone.
        assert stuck.delivered == 0
        assert stuck.dropped == 6
        assert bus.published == 10

        release.set()
        await bus.drain()
        await bus.close()

    assert (stuck.delivered, stuck.dropped) == (4, 6)
    failures = [r for r in caplog.records if "failed on event" in r.getMessage()]
    assert len(failures) == 5
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in failures)
    assert "e1 (game.round_won): RuntimeError: boom" in failures[0].getMessage()
    # One warning when the slow subscriber started dropping, not one per dropped event.
    drops = [r for r in caplog.records if "dropping event" in r.getMessage()]
    assert len(drops) == 1
    assert "slow" in drops[0].getMessage()


async def test_dropping_resumes_when_the_subscriber_catches_up() -> None:
    small = InProcessBus(queue_size=2, timeout=2.0)
    recorder = Recorder()
    subscription = small.subscribe("*", recorder)

    for n in range(5):  # no await in between: the worker cannot take any yet
        await small.publish(event(n=n))
    await small.drain()
    for n in range(5, 7):
        await small.publish(event(n=n))
    await small.close()

    assert recorder.seen == ["e0", "e1", "e5", "e6"]
    assert (subscription.delivered, subscription.dropped) == (4, 3)


async def test_a_handler_cancelled_by_itself_does_not_stop_its_worker(bus: InProcessBus) -> None:
    seen: list[str] = []

    async def handler(e: Event) -> None:
        seen.append(e.id)
        if e.id == "e0":
            raise asyncio.CancelledError

    subscription = bus.subscribe("*", handler)
    await bus.publish(event(n=0))
    await bus.publish(event(n=1))
    await bus.drain()

    assert seen == ["e0", "e1"]
    assert (subscription.delivered, subscription.failed) == (1, 1)


async def test_a_handler_may_publish_and_drain_waits_for_that_too(bus: InProcessBus) -> None:
    final = Recorder()

    async def forward(e: Event) -> None:
        await asyncio.sleep(0)
        await bus.publish(event("narrative.step", int(e.id[1:]) + 100))

    bus.subscribe("narrative.step", final)
    bus.subscribe("game.*", forward)
    await bus.publish(event("game.round_won", 1))
    await bus.drain()

    assert final.seen == ["e101"]


# -- unsubscribe and close ----------------------------------------------------------------


async def test_unsubscribe_finishes_what_was_queued_and_then_stops(bus: InProcessBus) -> None:
    recorder = Recorder(yields=3)
    other = Recorder()
    subscription = bus.subscribe("*", recorder)
    bus.subscribe("*", other)
    for n in range(3):
        await bus.publish(event(n=n))

    await bus.unsubscribe(subscription)
    await bus.publish(event(n=3))
    await bus.drain()
    await bus.unsubscribe(subscription)  # a second time changes nothing

    assert recorder.seen == ["e0", "e1", "e2"]
    assert other.seen == ["e0", "e1", "e2", "e3"]
    assert not subscription.active
    assert subscription not in bus.subscriptions


async def test_a_later_subscription_gets_types_already_published(bus: InProcessBus) -> None:
    early, late, other = Recorder(), Recorder(), Recorder()
    bus.subscribe("game.*", early)
    await bus.publish(event(n=0))
    bus.subscribe("game.round_won", late)
    bus.subscribe("narrative.*", other)
    await bus.publish(event(n=1))
    await bus.drain()

    assert early.seen == ["e0", "e1"]
    assert late.seen == ["e1"]
    assert other.seen == []


async def test_many_distinct_event_types_all_reach_their_subscribers(
    bus: InProcessBus,
) -> None:
    # More distinct types than the bus remembers matches for: each still routes by glob.
    games, everything = Recorder(), Recorder()
    bus.subscribe("game.*", games)
    bus.subscribe("*", everything)
    types = [f"game.level_{n}" if n % 2 else f"user.step_{n}" for n in range(3_000)]
    for n, type_ in enumerate(types):
        await bus.publish(event(type_, n=n))
        if n % 500 == 499:
            await bus.drain()  # within the queues' bound: nothing is dropped
    await bus.drain()

    assert everything.seen == [f"e{n}" for n in range(3_000)]
    assert games.seen == [f"e{n}" for n in range(1, 3_000, 2)]


async def test_close_delivers_what_is_queued_then_refuses_events() -> None:
    bus = InProcessBus()
    recorder = Recorder(yields=3)
    bus.subscribe("*", recorder)
    for n in range(50):
        await bus.publish(event(n=n))

    await bus.close()
    await bus.close()  # idempotent

    assert recorder.seen == [f"e{n}" for n in range(50)]
    assert bus.closed
    with pytest.raises(BusClosedError):
        await bus.publish(event(n=99))
    with pytest.raises(BusClosedError):
        bus.subscribe("*", recorder)
    assert bus.published == 50


async def test_close_gives_up_on_a_stuck_subscriber_after_its_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InProcessBus(timeout=0.05)
    never = asyncio.Event()

    async def stuck(e: Event) -> None:
        await never.wait()

    subscription = bus.subscribe("*", stuck, name="stuck")
    for n in range(3):
        await bus.publish(event(n=n))

    with caplog.at_level(logging.WARNING, logger="plugins.gamification.bus.events"):
        await bus.close()

    # One was cut off in its handler and two never started: none is silently lost.
    assert (subscription.delivered, subscription.failed, subscription.dropped) == (0, 0, 3)
    assert any("2 events undelivered" in r.getMessage() for r in caplog.records)


async def test_subscribing_before_the_loop_runs_starts_the_worker_on_publish() -> None:
    recorder = Recorder()

    def subscribe_without_a_loop() -> InProcessBus:
        bus = InProcessBus()
        bus.subscribe("*", recorder)
        return bus

    bus = await asyncio.to_thread(subscribe_without_a_loop)
    await bus.publish(event())
    await bus.close()

    assert recorder.seen == ["e0"]


async def test_drain_times_out_on_a_stuck_subscriber() -> None:
    bus = InProcessBus(timeout=0.05)
    never = asyncio.Event()

    async def stuck(e: Event) -> None:
        await never.wait()

    bus.subscribe("*", stuck)
    await bus.publish(event())
    with pytest.raises(TimeoutError):
        await bus.drain()
    await bus.close()
