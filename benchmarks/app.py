"""End to end through the app build_app makes: group messages through the real Dispatcher
(beside a bare Dispatcher with a no-op handler fed the same updates) and bus events turned
into awards. The one bench module that touches aiogram.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message, Update

from benchmarks.farming import sentence
from benchmarks.ledger import frozen_inputs
from benchmarks.rows import account_of
from bot.app import App, build_app
from bot.config import AppConfig, PluginsSettings, StorageSettings
from bot.plugins import PluginRegistry
from bot.registry import shipped_plugins
from bot.testing import RecordingSession, UpdateFactory
from plugins.gamification.bus.events import Event, InProcessBus
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.services.runtime import Services
from plugins.gamification.telegram.runtime import Runtime

START = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
CHATS = 10
# aiogram's polling hands each getUpdates batch (up to 100 updates) to as many tasks.
WIDTH = 100
# How many published events may be not yet awarded: the bus queue of a subscription holds
# 1,000 and a publisher that outruns it loses events rather than waiting, so with at most
# this many outstanding none is ever dropped, however the subscriber schedules its work.
BUS_WINDOW = 1_000
EVENT_TYPE = "game.won"


def default_config(database: Path) -> AppConfig:
    """The built-in defaults (no file, no environment) on `database`, synchronous=FULL."""
    plugins = shipped_plugins()
    return AppConfig().model_copy(
        update={
            "storage": StorageSettings(database=database, synchronous="FULL"),
            "plugins": PluginsSettings(enabled=tuple(plugin.name for plugin in plugins)),
            "plugin_sections": {plugin.name: plugin.config_model() for plugin in plugins},
            "source": "bench defaults",
        }
    )


@asynccontextmanager
async def running_app(database: Path, clock: FakeClock) -> AsyncIterator[App]:
    session = RecordingSession(now=lambda: clock.now().timestamp())
    app = await build_app(
        default_config(database), PluginRegistry(shipped_plugins()), session=session, clock=clock
    )
    try:
        yield app
    finally:
        await app.close()


def services_of(app: App) -> Services:
    services = app.dispatcher.workflow_data["gamification"]
    assert isinstance(services, Services)
    return services


# -- messages -----------------------------------------------------------------------------


def _words(rng: random.Random, count: int) -> str:
    """A sentence of real words: random letters would be refused as letter soup."""
    return sentence(rng, count, count)


# Rounds of messages per day: five messages of about 20 points each stay under the default
# daily cap of a chat without history (`relative_cap_floor`, 200 points).
ROUNDS_A_DAY = 5
STEP = 61.0  # seconds between rounds of one day: past the default 60 s cooldown


def round_time(number: int) -> datetime:
    """When round `number` is sent: ROUNDS_A_DAY rounds STEP seconds apart each day."""
    day, within = divmod(number, ROUNDS_A_DAY)
    return START + timedelta(days=day, seconds=within * STEP)


def message_rounds(bot: Bot, users: int, rounds: int) -> list[list[Update]]:
    """`rounds` lists of updates, each with one text message from every user, dated by
    `round_time` and mounted on `bot` as polling would deliver them.

    A conversation, not a row of monologues: from the second round on, half of each chat's
    members answer (reply to) the previous round's message of another member, a different
    one each time, and every member is answered every other round. So everyone keeps the
    engagement record that full points need (`[gamification.anti_abuse] engaged_share`),
    and each answer is engagement that the bot also handles (and pays its bonus for).
    The first round of a day answers nothing (yesterday's messages are past the window).
    """
    rng = random.Random(20260311)
    stamp = START.timestamp()
    factory = UpdateFactory(now=lambda: stamp)
    chats = [UpdateFactory.group(-1_002_000_000_000 - n, f"bench chat {n}") for n in range(CHATS)]
    people = [UpdateFactory.user(200_000 + n, f"user{n}", f"user{n}") for n in range(users)]
    # Member m of chat c is person c + CHATS * m.
    members = max(1, users // CHATS)
    previous: dict[int, int] = {}  # person -> their message id of the round before
    result = []
    for round_number in range(rounds):
        stamp = round_time(round_number).timestamp()
        answering = round_number % ROUNDS_A_DAY != 0
        updates, sent = [], {}
        for n, person in enumerate(people):
            chat, m = n % CHATS, n // CHATS
            reply_to = None
            if answering and members > 1 and (m + round_number) % 2 == 0:
                # An odd distance reaches the other half; it moves on every two rounds.
                distance = 2 * ((round_number // 2) % max(1, members // 2)) + 1
                target = chat + CHATS * ((m + distance) % members)
                reply_to = previous.get(target)
            update = factory.message(chats[chat], person, _words(rng, 8), reply_to=reply_to)
            assert update.message is not None
            sent[n] = update.message.message_id
            updates.append(update)
        previous = sent
        # A polled update arrives bound to its bot; an unbound one costs feed_update a JSON
        # round trip, which polling never pays.
        result.append(
            [Update.model_validate(u.model_dump(), context={"bot": bot}) for u in updates]
        )
    return result


@dataclass(frozen=True, slots=True)
class Took:
    """Wall-clock seconds, and CPU seconds of the whole process (every thread)."""

    seconds: float
    cpu: float

    def __add__(self, other: Took) -> Took:
        return Took(self.seconds + other.seconds, self.cpu + other.cpu)


async def feed(dispatcher: Dispatcher, bot: Bot, updates: Sequence[Update]) -> Took:
    """Time to handle every update with WIDTH of them in flight."""
    pending = iter(updates)

    async def worker() -> None:
        for update in pending:
            await dispatcher.feed_update(bot, update)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WIDTH)))
    return Took(time.perf_counter() - started, time.process_time() - cpu)


def noop_dispatcher() -> Dispatcher:
    """aiogram's own ceiling: a bare Dispatcher whose one message handler does nothing."""

    async def on_message(message: Message) -> None:
        return None

    router = Router(name="bench.noop")
    router.message.register(on_message)
    dispatcher = Dispatcher(name="bench.noop")
    dispatcher.include_router(router)
    return dispatcher


@dataclass(frozen=True, slots=True)
class EndToEnd:
    messages: int
    users: int
    seconds: float
    noop_seconds: float
    scored: int
    refused: dict[str, int]
    first_sight_rate: float
    # CPU seconds of every thread of the process over the same messages.
    cpu_seconds: float
    noop_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def noop_rate(self) -> float:
        return self.messages / self.noop_seconds

    @property
    def cpu_per_message(self) -> float:
        return self.cpu_seconds / self.messages

    @property
    def noop_cpu_per_message(self) -> float:
        return self.noop_cpu_seconds / self.messages

    def ceiling(self, cores: int) -> float:
        """The best share of the no-op rate the same CPU work per message could reach,
        were it spread perfectly over `cores` cores."""
        return cores / self.cpu_per_message / self.noop_rate


async def end_to_end(database: Path, messages: int, users: int) -> EndToEnd:
    """Messages from `users` people, every one scoring: each round has one message per person,
    and the clock moves past the cooldown between rounds. Round 0, in which each person is
    first seen (remembered, their daily total and streak read), is a warm-up, timed apart."""
    rounds = max(1, -(-messages // users))
    quiet = logging.getLogger("aiogram.event")
    level = quiet.level
    # aiogram logs one INFO line per update; that would time the terminal, not the bot.
    quiet.setLevel(logging.WARNING)
    clock = FakeClock(START)
    try:
        async with running_app(database, clock) as app:
            services = services_of(app)
            plan = message_rounds(app.bot, users, rounds + 1)
            timed = [u for updates in plan[1:] for u in updates]
            noop = noop_dispatcher()
            with frozen_inputs():
                # First, while the app is idle: nothing of ours runs in the background yet.
                await feed(noop, app.bot, plan[0])
                noop_took = await feed(noop, app.bot, timed)
                first_sight = await feed(app.dispatcher, app.bot, plan[0])
                awards, refusals = services.stats.awards, services.stats.refusals.copy()
                took = Took(0.0, 0.0)
                for number, updates in enumerate(plan[1:], 1):
                    clock.set(round_time(number))
                    took += await feed(app.dispatcher, app.bot, updates)
            scored = services.stats.awards - awards
            refused = dict(services.stats.refusals - refusals)
    finally:
        quiet.setLevel(level)
    return EndToEnd(
        len(timed),
        users,
        took.seconds,
        noop_took.seconds,
        scored,
        refused,
        users / first_sight.seconds,
        took.cpu,
        noop_took.cpu,
    )


# -- bus events ---------------------------------------------------------------------------


async def poll_until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, checking every millisecond.

    The inbound counts have no notification to wait on; a 1 ms poll is far below the length
    of a run and costs the loop next to nothing.
    """
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.001)


@dataclass(frozen=True, slots=True)
class Inbound:
    events: int
    seconds: float
    outcomes: dict[str, int]
    dropped: int

    @property
    def rate(self) -> float:
        return self.outcomes.get("awarded", 0) / self.seconds


async def inbound(database: Path, count: int, accounts: int) -> Inbound:
    """Publish `count` EVENT_TYPE events with distinct ids on the plugin's own bus; seconds
    from the first publish until the last one is awarded (committed)."""
    clock = FakeClock(START)
    async with running_app(database, clock) as app:
        runtime = app.dispatcher.workflow_data["gamification_runtime"]
        assert isinstance(runtime, Runtime)
        bus, handler = runtime.bus, runtime.inbound
        assert bus is not None, "the plugin wires its bus"
        assert handler is not None, "the plugin subscribes its inbound handler"
        warm = min(200, count)
        events = [
            Event(id=f"bench-{n}", type=EVENT_TYPE, occurred_at=START, chat_id=chat, user_id=user)
            for n in range(count + warm)
            for chat, user in (account_of(n, accounts),)
        ]

        def done() -> int:
            return sum(handler.counts.values())

        async def publish(batch: Sequence[Event]) -> float:
            base = done()
            started = time.perf_counter()
            published = 0

            def room() -> bool:
                return published - (done() - base) < BUS_WINDOW

            for event in batch:
                await poll_until(room)
                await bus.publish(event)
                published += 1
            await poll_until(lambda: done() - base >= len(batch))
            return time.perf_counter() - started

        with frozen_inputs():
            await publish(events[:warm])
            before = handler.counts.copy()
            seconds = await publish(events[warm:])
        outcomes = dict(handler.counts - before)
        subscriptions = bus.subscriptions if isinstance(bus, InProcessBus) else ()
        dropped = sum(s.dropped for s in subscriptions)
    return Inbound(count, seconds, outcomes, dropped)
