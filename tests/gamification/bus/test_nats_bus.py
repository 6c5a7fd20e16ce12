"""The event bus on NATS JetStream: the EventBus contract, dedupe by event id, durable
consumers shared by instances, acknowledgement only after the handler returned."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import nats
import pytest

from plugins.gamification.bus.events import (
    BusClosedError,
    BusUnavailableError,
    Event,
    EventBus,
    InProcessBus,
    redelivers,
)
from plugins.gamification.bus.nats import (
    MSG_ID,
    NatsBus,
    NatsOptions,
    durable_name,
    filter_subject,
    redact,
)
from tests.support.nats import eventually, fresh_options, started, stream_state, until

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event(type_: str = "game.won", n: int = 0, **kwargs: Any) -> Event:
    return Event(id=f"e{n}", type=type_, occurred_at=NOW, chat_id=-100, user_id=n, **kwargs)


class Recorder:
    """A handler recording the ids it saw, in the order its calls started."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.ids: list[str] = []

    async def __call__(self, item: Event) -> None:
        self.ids.append(item.id)


@pytest.fixture
async def options() -> AsyncIterator[NatsOptions]:
    async with fresh_options() as options:
        yield options


@pytest.fixture
async def bus(options: NatsOptions) -> AsyncIterator[NatsBus]:
    async with started(options) as bus:
        yield bus


# -- names (no server) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        ("game.won", "bot.events.game.won"),
        ("game.*", "bot.events.game.>"),
        ("*", "bot.events.>"),
        ("game.round_*", "bot.events.game.>"),
        ("*.won", "bot.events.>"),
        ("a.b.c", "bot.events.a.b.c"),
        ("Game.won", "bot.events.>"),
    ],
)
def test_a_glob_becomes_a_filter_subject_no_narrower_than_it(pattern: str, subject: str) -> None:
    assert filter_subject("bot.events", pattern) == subject


def test_durable_names_are_valid_for_nats_and_never_collide() -> None:
    assert durable_name("bot", "inbound") == "bot_inbound"
    first = durable_name("bot", "gamification.inbound game.*")
    second = durable_name("bot", "gamification.inbound game_")
    assert first.startswith("bot_gamification_inbound_game_")
    assert first != second
    assert all(ch.isalnum() or ch in "_-" for ch in first + second)
    assert durable_name("bot", "gamification.inbound game.*") == first  # stable across runs


def test_options_refuse_what_nats_would_and_urls_hide_passwords() -> None:
    with pytest.raises(ValueError, match="stream"):
        NatsOptions(stream="a.b")
    with pytest.raises(ValueError, match="subject prefix"):
        NatsOptions(subject_prefix="bot.*")
    with pytest.raises(ValueError, match="duplicate window"):
        NatsOptions(duplicate_window=7200, max_age=3600)
    assert NatsOptions(url="nats://a:1, nats://b:2").servers == ["nats://a:1", "nats://b:2"]
    assert redact("nats://bot:secret@host:4222") == "nats://bot:***@host:4222"


async def test_the_nats_bus_satisfies_the_protocol_and_redelivers() -> None:
    bus: EventBus = NatsBus()
    assert redelivers(bus)
    assert not redelivers(InProcessBus())
    await bus.close()
    with pytest.raises(BusClosedError):
        await bus.publish(event())
    with pytest.raises(BusClosedError):
        bus.subscribe("*", Recorder())


async def test_publish_fails_at_once_while_nats_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = NatsBus(NatsOptions(url="nats://127.0.0.1:1"))
    bus.subscribe("game.*", Recorder(), name="inbound")
    with caplog.at_level(logging.WARNING, logger="plugins.gamification.bus"):
        bus.start()
        with pytest.raises(BusUnavailableError, match="not reachable"):
            await bus.publish(event())
        await eventually(lambda: bool(caplog.records))
        await asyncio.sleep(1.2)  # more attempts to connect: still the one warning
        await bus.close()
    (warning,) = caplog.records
    assert "not reachable" in warning.getMessage()


# -- the contract on a real server --------------------------------------------------------


async def test_an_event_round_trips_with_every_field(bus: NatsBus) -> None:
    got: list[Event] = []

    async def keep(item: Event) -> None:
        got.append(item)

    bus.subscribe("game.*", keep, name="keep")
    sent = event(n=7, payload={"match": "m-1", "score": [3, 1], "ok": True})
    await bus.publish(sent)
    await eventually(lambda: len(got) == 1)
    assert got == [sent]
    assert bus.published == 1


async def test_patterns_select_event_types(bus: NatsBus) -> None:
    patterns = ["game.*", "narrative.chapter_completed", "*", "game.round_*"]
    recorders = {pattern: Recorder() for pattern in patterns}
    for pattern, recorder in recorders.items():
        bus.subscribe(pattern, recorder, name=pattern)
    types = ["game.won", "game.round_won", "narrative.chapter_completed", "narrative.x", "a.b.c"]
    for n, type_ in enumerate(types):
        await bus.publish(event(type_, n))
    await eventually(lambda: len(recorders["*"].ids) == len(types))
    await eventually(lambda: len(recorders["game.*"].ids) == 2)
    await asyncio.sleep(0.2)  # nothing more arrives where it does not belong
    assert recorders["game.*"].ids == ["e0", "e1"]
    assert recorders["narrative.chapter_completed"].ids == ["e2"]
    assert recorders["game.round_*"].ids == ["e1"]
    assert recorders["*"].ids == ["e0", "e1", "e2", "e3", "e4"]


async def test_handlers_start_in_publish_order(bus: NatsBus) -> None:
    recorder = Recorder()
    bus.subscribe("game.*", recorder, name="ordered")
    for n in range(60):
        await bus.publish(event(n=n))
    await eventually(lambda: len(recorder.ids) == 60)
    assert recorder.ids == [f"e{n}" for n in range(60)]


async def test_a_second_publish_of_an_event_id_is_dropped_by_the_server(
    bus: NatsBus, options: NatsOptions
) -> None:
    recorder = Recorder()
    bus.subscribe("*", recorder, name="all")
    for _ in range(3):
        await bus.publish(event(n=1))
    await bus.publish(event(n=2))
    await eventually(lambda: len(recorder.ids) == 2)
    await asyncio.sleep(0.2)
    assert bus.duplicates == 2
    assert recorder.ids == ["e1", "e2"]
    assert await stream_state(options) == (2, ["e1", "e2"])


async def test_a_failing_handler_gets_the_event_again_until_it_succeeds(bus: NatsBus) -> None:
    calls: Counter[str] = Counter()

    async def flaky(item: Event) -> None:
        calls[item.id] += 1
        if calls[item.id] < 3:
            raise RuntimeError("the ledger is busy")

    subscription = bus.subscribe("game.*", flaky, name="flaky")
    await bus.publish(event(n=1))
    await eventually(lambda: subscription.delivered == 1)
    assert calls == {"e1": 3}
    assert subscription.failed == 2


async def test_a_message_that_is_not_an_event_is_dropped_with_one_line(
    bus: NatsBus, options: NatsOptions, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    subscription = bus.subscribe("game.*", recorder, name="strict")
    client = await nats.connect(options.url)
    try:
        js = client.jetstream()
        with caplog.at_level(logging.WARNING, logger="plugins.gamification.bus"):
            await js.publish(f"{options.subject_prefix}.game.won", b"not json")
            bad = {"id": "x", "type": "game.won", "occurred_at": NOW.isoformat(), "extra": 1}
            await js.publish(f"{options.subject_prefix}.game.won", json.dumps(bad).encode())
            await bus.publish(event(n=3))
            await eventually(lambda: recorder.ids == ["e3"])
    finally:
        await client.close()
    assert subscription.failed == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert all("is not an event" in line for line in lines)


async def test_subscription_names_must_be_unique_per_bus(bus: NatsBus) -> None:
    bus.subscribe("game.*", Recorder(), name="inbound")
    with pytest.raises(ValueError, match="exists already"):
        bus.subscribe("user.*", Recorder(), name="inbound")


async def test_an_event_is_acknowledged_only_after_its_handler_returned(
    bus: NatsBus, options: NatsOptions
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    done: list[str] = []

    async def slow(item: Event) -> None:
        entered.set()
        await release.wait()
        done.append(item.id)

    bus.subscribe("game.*", slow, name="slow")
    await bus.publish(event(n=1))
    async with asyncio.timeout(10):
        await entered.wait()
    (consumer,) = bus.consumers
    client = await nats.connect(options.url)
    try:
        js = client.jetstream()
        info = await js.consumer_info(options.stream, consumer.durable)
        assert (info.num_ack_pending, info.ack_floor and info.ack_floor.stream_seq) == (1, 0)
        release.set()
        await eventually(lambda: done == ["e1"])

        async def pending() -> int:
            return (await js.consumer_info(options.stream, consumer.durable)).num_ack_pending or 0

        async with asyncio.timeout(5):
            while await pending():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await client.close()


# -- several instances --------------------------------------------------------------------


async def test_instances_share_a_durable_consumer_each_event_handled_once(
    options: NatsOptions,
) -> None:
    options = NatsOptions(**{**_fields(options), "batch": 4})
    a, b = Recorder("a"), Recorder("b")

    def slowly(recorder: Recorder) -> Any:
        async def handle(item: Event) -> None:
            await asyncio.sleep(0.005)
            await recorder(item)

        return handle

    async with started(options) as first, started(options) as second:
        first.subscribe("game.*", slowly(a), name="inbound")
        second.subscribe("game.*", slowly(b), name="inbound")
        await asyncio.gather(*(c.bound.wait() for c in (*first.consumers, *second.consumers)))
        for n in range(200):
            await first.publish(event(n=n))
        await eventually(lambda: len(a.ids) + len(b.ids) >= 200)
        await asyncio.sleep(0.3)
    assert sorted(a.ids + b.ids) == sorted(f"e{n}" for n in range(200))
    assert not set(a.ids) & set(b.ids)
    assert a.ids, "both instances took a share"
    assert b.ids, "both instances took a share"


async def test_a_failure_on_one_instance_is_handled_by_another(options: NatsOptions) -> None:
    handled: list[tuple[str, str]] = []

    async def failing(item: Event) -> None:
        raise RuntimeError("this instance's ledger is down")

    async def working(item: Event) -> None:
        handled.append(("b", item.id))

    async with started(options) as first:
        subscription = first.subscribe("game.*", failing, name="inbound")
        await first.consumers[0].bound.wait()
        await first.publish(event(n=1))
        await eventually(lambda: subscription.failed >= 1)
        async with started(options) as second:
            second.subscribe("game.*", working, name="inbound")
            await eventually(lambda: handled == [("b", "e1")])


async def test_an_instance_dying_mid_handler_lets_another_take_the_event(
    options: NatsOptions,
) -> None:
    options = NatsOptions(**{**_fields(options), "ack_wait": 1.0, "close_timeout": 0.2})
    entered = asyncio.Event()
    handled: list[str] = []

    async def hang(item: Event) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def work(item: Event) -> None:
        handled.append(item.id)

    dying = NatsBus(options)
    dying.subscribe("game.*", hang, name="inbound")
    dying.start()
    async with started(options) as survivor:
        await survivor.publish(event(n=1))
        async with asyncio.timeout(10):
            await entered.wait()
        # The process dies: its connection goes, with no acknowledgement of any kind.
        assert dying._client is not None
        await dying._client.close()
        survivor.subscribe("game.*", work, name="inbound")
        await eventually(lambda: handled == ["e1"])
    await dying.close()


def _fields(options: NatsOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in NatsOptions.__dataclass_fields__}


async def test_publishing_with_a_message_id_header_is_what_dedupes(options: NatsOptions) -> None:
    """What another service does (examples/publish_game_won.py): the header decides."""
    async with started(options):
        client = await nats.connect(options.url)
        try:
            js = client.jetstream()
            body = event(n=5).model_dump_json().encode()
            subject = f"{options.subject_prefix}.game.won"
            first = await js.publish(subject, body, headers={MSG_ID: "e5"})
            again = await js.publish(subject, body, headers={MSG_ID: "e5"})
            unmarked = await js.publish(subject, body)
        finally:
            await client.close()
    assert (first.duplicate, again.duplicate, unmarked.duplicate) == (None, True, None)
    assert again.seq == first.seq
    assert (await stream_state(options))[1] == ["e5", "e5"]


# -- the stream -----------------------------------------------------------------------------


async def test_instances_starting_together_all_find_the_stream_ready(
    options: NatsOptions,
) -> None:
    buses = [NatsBus(options) for _ in range(4)]
    for each in buses:
        each.start()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(each.wait_ready() for each in buses))
        for n, each in enumerate(buses):
            await each.publish(event(n=n))
    finally:
        await asyncio.gather(*(each.close() for each in buses))
    assert (await stream_state(options))[0] == 4


async def test_an_existing_stream_is_brought_up_to_date_keeping_its_other_subjects(
    options: NatsOptions,
) -> None:
    client = await nats.connect(options.url)
    try:
        js = client.jetstream()
        await js.add_stream(
            name=options.stream, subjects=["elsewhere.>"], duplicate_window=10, max_age=3600
        )
        async with started(options) as bus:
            await bus.publish(event())
        config = (await js.stream_info(options.stream)).config
    finally:
        await client.close()
    assert sorted(config.subjects or []) == sorted(["elsewhere.>", f"{options.subject_prefix}.>"])
    assert (config.duplicate_window, config.max_age) == (options.duplicate_window, options.max_age)


async def test_a_stream_and_consumer_deleted_under_the_bus_are_made_again(
    options: NatsOptions,
) -> None:
    """As after a server that lost its store: the bus notices, sets both up again, and
    events flow (an idle consumer asks after itself every `poll` seconds)."""
    recorder = Recorder()
    async with started(options) as bus:
        bus.subscribe("game.*", recorder, name="inbound")
        await bus.publish(event(n=1))
        await eventually(lambda: recorder.ids == ["e1"])
        client = await nats.connect(options.url)
        try:
            await client.jetstream().delete_stream(options.stream)
        finally:
            await client.close()

        async def republished() -> bool:
            try:
                await bus.publish(event(n=2))
            except BusUnavailableError:
                await asyncio.sleep(0.1)
                return False
            return True

        await until(republished)
        await eventually(lambda: recorder.ids == ["e1", "e2"])
