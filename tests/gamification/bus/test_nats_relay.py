"""The outbox relay publishing to NATS: a row is marked only after JetStream acknowledged
it, a relay killed between publish and mark loses nothing and counts nothing twice, and
two instances' relays reading the same rows of a PostgreSQL outbox are deduplicated."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from plugins.gamification import FakeClock, PointsEngine
from plugins.gamification.bus.events import Event
from plugins.gamification.bus.nats import NatsBus, NatsOptions
from plugins.gamification.bus.relay import OutboxRelay
from plugins.gamification.storage.protocol import LedgerStorage
from tests.support.backends import PostgresBackend, SqliteBackend
from tests.support.nats import eventually, fresh_options, started, stream_state


class Killed(BaseException):
    """Stands in for the process dying: nothing in the relay may catch it."""


class Outbox:
    """The relay's view of a store, with the mark step held or killed on demand."""

    def __init__(self, store: LedgerStorage) -> None:
        self.store = store
        self.kill_on_mark = False
        self.hold_mark: asyncio.Event | None = None

    async def outbox_lag(self) -> int:
        return await self.store.outbox_lag()

    async def outbox_pending(self, limit: int) -> Any:
        return await self.store.outbox_pending(limit)

    async def outbox_delivered(self, up_to_id: int, at: str) -> None:
        if self.kill_on_mark:
            raise Killed
        if self.hold_mark is not None:
            await self.hold_mark.wait()
        await self.store.outbox_delivered(up_to_id, at)

    async def outbox_prune(self, keep: int) -> None:
        await self.store.outbox_prune(keep)


def relay(
    outbox: Outbox | LedgerStorage, bus: NatsBus, clock: FakeClock, batch_size: int = 500
) -> OutboxRelay:
    return OutboxRelay(cast(LedgerStorage, outbox), bus, clock=clock, batch_size=batch_size)


class Consumer:
    """Another service's consumer: counts deliveries, and deduplicates by event id."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()

    async def __call__(self, event: Event) -> None:
        self.deliveries[event.id] += 1

    @property
    def awards(self) -> set[str]:
        return set(self.deliveries)


async def award(engine: PointsEngine, first: int, count: int) -> list[str]:
    """`count` awards; the event ids of the outbox rows they wrote (points.awarded, and
    level.reached for some), in commit order."""
    await asyncio.gather(
        *(engine.award(-100, n % 7 + 1, 5, key=f"msg:{n}") for n in range(first, first + count))
    )
    rows = await engine.store.outbox_pending(10_000)
    return [row[1] for row in rows]


@pytest.fixture
async def options() -> AsyncIterator[NatsOptions]:
    async with fresh_options(duplicate_window=1.0) as options:
        yield options


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[PointsEngine]:
    engine = await SqliteBackend(tmp_path).open_engine(clock=clock)
    yield engine
    await engine.close()


async def test_rows_stay_pending_while_nats_does_not_acknowledge(
    engine: PointsEngine, clock: FakeClock
) -> None:
    ids = await award(engine, 0, 5)
    bus = NatsBus(NatsOptions(url="nats://127.0.0.1:1"))
    bus.start()
    try:
        relayed = relay(engine.store, bus, clock)
        assert await relayed.run_once() == 0
        assert relayed.failures == 1
        assert "not reachable" in (relayed.last_error or "")
        assert await engine.store.outbox_lag() == len(ids)
    finally:
        await bus.close()


@pytest.mark.parametrize("past_window", [False, True], ids=["within-window", "past-window"])
async def test_a_relay_killed_between_publish_and_mark_loses_and_doubles_nothing(
    engine: PointsEngine, clock: FakeClock, options: NatsOptions, past_window: bool
) -> None:
    ids = await award(engine, 0, 40)
    consumer = Consumer()
    async with started(options) as bus:
        bus.subscribe("*", consumer, name="another service")
        dying = Outbox(engine.store)
        dying.kill_on_mark = True
        with pytest.raises(Killed):
            await relay(dying, bus, clock).run_once()
        # Everything went out; nothing was marked.
        assert bus.published == len(ids)
        assert await engine.store.outbox_lag() == len(ids)
        await eventually(lambda: consumer.awards == set(ids))
        if past_window:
            await asyncio.sleep(options.duplicate_window + 0.3)

        # The next process's relay sends the unmarked rows again and drains the backlog.
        more = await award(engine, 40, 10)
        assert more[: len(ids)] == ids
        restarted = relay(engine.store, bus, clock)
        assert await restarted.run_once() == len(more)
        assert await engine.store.outbox_lag() == 0
        await eventually(lambda: consumer.awards == set(more))
        await asyncio.sleep(0.2)

    # Deduplicated by event id, every award is seen once.
    assert len(consumer.awards) == len(more) == 50
    copies = sum(consumer.deliveries.values()) - len(more)
    if past_window:
        # The server kept the copies; only the consumer's dedupe by id stops them counting.
        assert bus.duplicates == 0
        assert copies == len(ids)
    else:
        assert bus.duplicates == len(ids)
        assert copies == 0
        assert (await stream_state(options))[1] == more


async def test_two_instances_relays_on_one_postgres_outbox_publish_each_event_once(
    tmp_path: Path, clock: FakeClock, options: NatsOptions
) -> None:
    """Both relays read the same pending rows (no claiming: a row lock held across the
    publish would let the other relay skip ahead and break commit order). JetStream's
    dedupe by Nats-Msg-Id keeps one copy of each, in commit order."""
    backend = PostgresBackend(tmp_path)
    first = second = None
    try:
        first = await backend.open_engine(clock=clock)
        second = await backend.open_engine(clock=clock)
        consumer = Consumer()
        async with started(options) as bus_a, started(options) as bus_b:
            bus_a.subscribe("*", consumer, name="another service")
            # Deterministic overlap: A published everything and is about to mark it when
            # B reads the same rows, publishes them again and marks them.
            ids = await award(first, 0, 60)
            held = Outbox(first.store)
            held.hold_mark = asyncio.Event()
            relay_a = asyncio.create_task(relay(held, bus_a, clock).run_once())
            await eventually(lambda: bus_a.published == len(ids))
            assert await relay(second.store, bus_b, clock).run_once() == len(ids)
            held.hold_mark.set()
            assert await relay_a == len(ids)
            assert bus_b.duplicates == len(ids)

            # And racing freely, batch after batch.
            ids += await award(second, 60, 200)
            relays = [relay(e.store, b, clock, 20) for e, b in ((first, bus_a), (second, bus_b))]
            await asyncio.gather(*(each.run_once() for each in relays))
            assert await first.store.outbox_lag() == 0
            await eventually(lambda: consumer.awards == set(ids))
            await asyncio.sleep(0.2)
        assert sum(each.delivered for each in relays) >= len(ids) - 60
        assert (await stream_state(options))[1] == ids
        assert set(consumer.deliveries.values()) == {1}
    finally:
        for engine in (first, second):
            if engine is not None:
                await engine.close()
        backend.drop()
