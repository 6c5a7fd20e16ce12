"""Bus events in and out of the wired plugin: inbound rules, admin events, outages, announcing."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_app
from bot.registry import default_registry
from bot.testing import UpdateFactory
from plugins.gamification.bus.events import (
    Event,
    EventBus,
    EventHandler,
    InProcessBus,
    Subscription,
)
from plugins.gamification.bus.inbound import InboundEvents
from plugins.gamification.bus.relay import OutboxRelay
from tests.gamification.conftest import MakeHarness
from tests.support.telegram_harness import START, TelegramHarness

CHAT_ID = -100
CHAT = UpdateFactory.group(CHAT_ID, "Club")
ALICE = UpdateFactory.user(1, "Alice", "alice")
BOB = UpdateFactory.user(2, "Bob", "bob")
MOD = UpdateFactory.user(9, "Mod", "mod")
SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
FIXED = {"activity": {"points": {"text": 10}}}
# No cooldown, repeat or burst limits: many scored messages in a row, without moving time.
UNLIMITED = {
    **FIXED,
    "anti_abuse": {"cooldown_seconds": 0, "repeat_window_seconds": 0, "burst_messages": 1000},
}
INBOUND_LOG = "plugins.gamification.bus.inbound"
# Distinct real words: templated lines from many people would be copies of each other.
_NOTES_TEXT = """
apple river castle garden window yellow morning kitchen planet guitar summer pencil
forest bridge winter candle silver market island doctor rocket jacket button letter
monkey orange puzzle rabbit saddle tunnel violin wallet anchor basket
"""
NOTES = tuple(_NOTES_TEXT.split())


def note(n: int) -> str:
    """A sentence of its own for each n."""
    return " ".join(NOTES[(n * 7 + k * 5) % len(NOTES)] for k in range(6)) + f" {n}"


def bus_of(h: TelegramHarness) -> InProcessBus:
    bus = h.runtime.bus
    assert isinstance(bus, InProcessBus)
    return bus


def relay_of(h: TelegramHarness) -> OutboxRelay:
    assert h.runtime.relay is not None
    return h.runtime.relay


def inbound_of(h: TelegramHarness) -> InboundEvents:
    assert h.runtime.inbound is not None
    return h.runtime.inbound


def event(type_: str, id_: str, *, user: int | None = 1, **payload: Any) -> Event:
    return Event(
        id=id_,
        type=type_,
        occurred_at=START,
        chat_id=CHAT_ID,
        user_id=user,
        payload=payload,
    )


async def publish(h: TelegramHarness, *events: Event) -> None:
    """Another plugin publishes on the shared bus; wait until every subscriber handled it."""
    bus = bus_of(h)
    for item in events:
        await bus.publish(item)
    await bus.drain()
    assert h.runtime.inbound is not None
    # The inbound subscriber processes each event in a task of its own: wait for those too.
    await h.runtime.inbound.drain()


async def settle(h: TelegramHarness) -> None:
    """Relay what is committed, let the bus deliver it, post what the announcer holds."""
    await relay_of(h).run_once()
    await bus_of(h).drain()
    assert h.runtime.inbound is not None
    await h.runtime.inbound.drain()
    assert h.runtime.announcer is not None
    await h.runtime.announcer.flush()


def event_rows(h: TelegramHarness) -> list[tuple[Any, ...]]:
    """(amount, kind, idem_key, breakdown) of every transaction in commit order."""
    return h.rows("SELECT amount, kind, idem_key, breakdown FROM transactions ORDER BY id")


class Recorder:
    """A subscriber that records every event it sees, in arrival order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, item: Event) -> None:
        self.events.append(item)


class SwitchableBus:
    """An InProcessBus behind a switch: while `down` publish fails; `block` makes it hang."""

    def __init__(self, inner: InProcessBus) -> None:
        self.inner = inner
        self.down = False
        self.block = False
        self.attempts = 0
        self.entered = asyncio.Event()

    async def publish(self, item: Event) -> None:
        self.attempts += 1
        self.entered.set()
        if self.block:
            await asyncio.Event().wait()
        if self.down:
            raise ConnectionError("the broker is unreachable")
        await self.inner.publish(item)

    def subscribe(
        self, pattern: str, handler: EventHandler, *, name: str | None = None
    ) -> Subscription:
        return self.inner.subscribe(pattern, handler, name=name)

    async def close(self) -> None:
        await self.inner.close()


class BusHarness(TelegramHarness):
    """The harness with the bus passed to build_app, as a host sharing one bus would."""

    def __init__(self, database: Path, bus: EventBus, **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self.bus = bus

    async def start(self) -> BusHarness:
        assert self._app is None, "already started"
        self._app = await build_app(
            self.config,
            default_registry(),
            session=self.session,
            clock=self.clock,
            event_bus=self.bus,
        )
        return self


MakeBusHarness = Callable[..., Awaitable[tuple[BusHarness, SwitchableBus, Recorder]]]


@pytest.fixture
async def make_bus_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeBusHarness]:
    """A started BusHarness on a SwitchableBus whose inner bus a Recorder listens to."""
    monkeypatch.chdir(tmp_path)
    started: list[tuple[BusHarness, InProcessBus]] = []

    async def make(**kwargs: Any) -> tuple[BusHarness, SwitchableBus, Recorder]:
        inner = InProcessBus(timeout=2.0)
        recorder = Recorder()
        inner.subscribe("*", recorder, name="recorder")
        bus = SwitchableBus(inner)
        h = BusHarness(tmp_path / f"bus{len(started)}.sqlite3", bus, **kwargs)
        started.append((h, inner))
        await h.start()
        return h, bus, recorder

    yield make
    for h, inner in reversed(started):
        await h.close()
        # The host owns a bus it passes in: the plugin must not have closed it.
        assert not inner.closed
        await inner.close()
        h.assert_sent_html_valid()


# -- inbound events -----------------------------------------------------------------------


async def test_an_event_from_another_plugin_awards_once_however_often_published(
    harness: TelegramHarness,
) -> None:
    h = harness
    chapter = event("narrative.chapter_completed", "story-1", chapter=3)
    await publish(h, *[chapter] * 5)
    await asyncio.gather(*(bus_of(h).publish(chapter) for _ in range(5)))
    await bus_of(h).drain()
    await inbound_of(h).drain()

    ((amount, kind, key, breakdown),) = event_rows(h)
    assert (amount, kind, key) == (50, "event", "evt:story-1")
    assert json.loads(breakdown)["tag"] == "narrative.chapter_completed"
    assert h.transactions()[0][6] == "narrative.chapter_completed"
    assert await h.balance(CHAT_ID, 1) == 50
    assert inbound_of(h).counts == {"awarded": 1, "duplicate": 9}


async def test_concurrent_handling_of_one_event_awards_once(harness: TelegramHarness) -> None:
    h = harness
    won = event("game.won", "match-9")
    await asyncio.gather(*(inbound_of(h).handle(won) for _ in range(5)))
    await inbound_of(h).drain()
    assert [(amount, key) for amount, _, key, _ in event_rows(h)] == [(20, "evt:match-9")]
    assert inbound_of(h).counts == {"awarded": 1, "duplicate": 4}


async def test_unknown_event_types_are_ignored_and_counted(harness: TelegramHarness) -> None:
    h = harness
    await publish(h, event("game.lost", "a"), event("user.left", "b"), event("narrative.x", "c"))
    # Not subscribed at all: never reaches the plugin.
    await publish(h, event("shop.sold", "d"))
    assert h.tx_count() == 0
    assert inbound_of(h).counts == {"unknown": 3}


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (event("narrative.chapter_completed", "m1", user=None), "chat_id and user_id"),
        (event("admin.award", "m2", amount=10, reason="x"), "payload.actor_id"),
        (event("admin.award", "m3", amount="ten", actor_id=9), "payload.amount"),
        (event("admin.award", "m4", amount=2.5, actor_id=9), "payload.amount"),
        (event("admin.deduct", "m5", amount=True, actor_id=9), "payload.amount"),
        (event("admin.award", "m6", amount=10, actor_id="9"), "payload.actor_id"),
        (event("admin.award", "m7", user=None, amount=10, actor_id=9), "chat_id and user_id"),
        (event("admin.revert", "m8", actor_id=9), "payload.tx_id"),
        (event("admin.award", "m9", amount=10, actor_id=9, reason=5), "payload.reason"),
    ],
)
async def test_malformed_events_are_refused_with_one_log_line(
    harness: TelegramHarness, caplog: pytest.LogCaptureFixture, item: Event, why: str
) -> None:
    h = harness
    with caplog.at_level(logging.WARNING, logger=INBOUND_LOG):
        await publish(h, item)
    (record,) = [r for r in caplog.records if r.name == INBOUND_LOG]
    assert record.levelno == logging.WARNING
    assert item.id in record.getMessage()
    assert why in record.getMessage()
    assert "\n" not in record.getMessage()
    assert inbound_of(h).counts == {"malformed": 1}
    assert h.tx_count() == 0
    # The subscription survived: the next good event still counts.
    await publish(h, event("game.won", "good"))
    assert h.tx_count() == 1


# -- admin events -------------------------------------------------------------------------


async def test_admin_events_change_points_once_per_event_id(make_harness: MakeHarness) -> None:
    h = await make_harness(gamification={"admin": {"max_grant": 100}})
    grant = event("admin.award", "adm-1", amount=80, actor_id=9, reason="quiz winner")
    fine = event("admin.deduct", "adm-2", amount=30, actor_id=9, reason="spam")
    await publish(h, grant, grant, fine, fine)
    assert h.transactions() == [
        (1, CHAT_ID, 1, 80, "admin", 9, "quiz winner", None),
        (2, CHAT_ID, 1, -30, "admin", 9, "spam", None),
    ]
    undo = event("admin.revert", "adm-3", tx_id=2, actor_id=9, reason="appeal")
    await publish(h, undo, undo)
    assert h.transactions()[-1] == (3, CHAT_ID, 1, 30, "revert", 9, "appeal", 2)
    assert await h.balance(CHAT_ID, 1) == 80
    assert inbound_of(h).counts == {"awarded": 3, "duplicate": 3}

    # A second revert of the same transaction, under another id, is refused.
    await publish(h, event("admin.revert", "adm-4", tx_id=2, actor_id=9))
    assert inbound_of(h).counts["refused"] == 1
    assert h.tx_count() == 3
    assert (await h.services.engine.check()).ok


async def test_admin_events_respect_max_grant(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness(gamification={"admin": {"max_grant": 100}})
    with caplog.at_level(logging.WARNING, logger=INBOUND_LOG):
        await publish(
            h,
            event("admin.award", "big-1", amount=101, actor_id=9),
            event("admin.deduct", "big-2", amount=5000, actor_id=9),
        )
    assert inbound_of(h).counts == {"malformed": 2}
    assert len([r for r in caplog.records if r.name == INBOUND_LOG]) == 2
    assert h.tx_count() == 0
    await publish(h, event("admin.award", "ok", amount=100, actor_id=9))
    assert await h.balance(CHAT_ID, 1) == 100


async def test_admin_deduct_past_the_balance_needs_force(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness(gamification={"admin": {"max_grant": 1000}})
    await h.services.engine.award(CHAT_ID, 1, 10, key="setup")
    with caplog.at_level(logging.WARNING, logger=INBOUND_LOG):
        await publish(h, event("admin.deduct", "over", amount=110, actor_id=9, reason="spam"))
    assert inbound_of(h).counts == {"refused": 1}
    (record,) = [r for r in caplog.records if r.name == INBOUND_LOG]
    assert "The balance is 10; taking 110 would put it below zero." in record.getMessage()
    assert h.tx_count() == 1
    assert await h.balance(CHAT_ID, 1) == 10

    forced = event("admin.deduct", "forced", amount=110, actor_id=9, reason="spam", force=True)
    await publish(h, forced, forced)
    assert await h.balance(CHAT_ID, 1) == -100
    assert h.transactions()[-1][3:7] == (-110, "admin", 9, "spam")
    assert inbound_of(h).counts == {"refused": 1, "awarded": 1, "duplicate": 1}
    assert (await h.services.engine.check()).ok


@pytest.mark.parametrize("type_", ["admin.award", "admin.deduct"])
@pytest.mark.parametrize("amount", [0, -5, -50_000])
async def test_admin_events_refuse_amounts_that_are_not_positive(
    make_harness: MakeHarness, type_: str, amount: int
) -> None:
    h = await make_harness(gamification={"admin": {"max_grant": 100}})
    await h.services.engine.award(CHAT_ID, 1, 50, key="setup")
    await publish(h, event(type_, "neg", amount=amount, actor_id=9))
    # /award and /deduct refuse such amounts; the bus must not be a way around that (or
    # around max_grant: a deduct of -50,000 would be a grant of 50,000).
    assert h.tx_count() == 1
    assert await h.balance(CHAT_ID, 1) == 50
    assert inbound_of(h).counts["awarded"] == 0


async def test_an_admin_revert_event_is_scoped_to_its_chat(harness: TelegramHarness) -> None:
    h = harness
    await h.services.engine.award(-200, 1, 40, key="elsewhere")
    await publish(h, event("admin.revert", "r", tx_id=1, actor_id=9))
    assert h.tx_count() == 1
    assert inbound_of(h).counts == {"refused": 1}


# -- multipliers on events ----------------------------------------------------------------

MULTIPLIED = {
    "events": {"rules": {"narrative.chapter_completed": {"points": 10, "multiplier": "1.5"}}},
    "multipliers": {
        "windows": [{"name": "weekend", "factor": "2", "days": ["sat", "sun"]}],
        "chats": {str(CHAT_ID): "1.1"},
    },
}


async def test_event_multipliers_are_stored_and_shown_in_history(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification=MULTIPLIED)
    weekday = event("narrative.chapter_completed", "wed")
    weekend = weekday.model_copy(update={"id": "sat", "occurred_at": SATURDAY})
    # Processed on a Wednesday: the window follows when the event happened.
    await publish(h, weekday, weekend)
    other_chat = weekday.model_copy(update={"id": "other", "chat_id": -300})
    await publish(h, other_chat)

    breakdowns = [json.loads(row[3]) for row in event_rows(h)]
    assert breakdowns == [
        {
            "base": 10,
            "multipliers": [["narrative.chapter_completed", "1.5"], ["chat", "1.1"]],
            "result": 17,
            "tag": "narrative.chapter_completed",
        },
        {
            "base": 10,
            "multipliers": [
                ["narrative.chapter_completed", "1.5"],
                ["weekend", "2"],
                ["chat", "1.1"],
            ],
            "result": 33,
            "tag": "narrative.chapter_completed",
        },
        {
            "base": 10,
            "multipliers": [["narrative.chapter_completed", "1.5"]],
            "result": 15,
            "tag": "narrative.chapter_completed",
        },
    ]
    await h.say(CHAT, ALICE, "/history")
    text = h.last_text(CHAT_ID)
    assert "(10 x narrative.chapter_completed 1.5 x weekend 2 x chat 1.1 = 33)" in text
    assert "(10 x narrative.chapter_completed 1.5 x chat 1.1 = 17)" in text
    assert await h.balance(CHAT_ID, 1) == 50


# -- outages of the bus -------------------------------------------------------------------


async def test_a_bus_outage_never_stops_awarding_and_loses_nothing(
    make_bus_harness: MakeBusHarness,
) -> None:
    h, bus, recorder = await make_bus_harness(admins={CHAT_ID: {9}}, gamification=UNLIMITED)
    relay = relay_of(h)
    people = [UpdateFactory.user(100 + n, f"P{n}") for n in range(8)]
    bus.down = True

    async def burst(round_: int) -> None:
        h.clock.advance(1)  # apart from the last round, so no message is a repeat
        for n, person in enumerate(people):
            await h.say(CHAT, person, note(round_ * 10 + n))
        await inbound_of(h).handle(event("game.won", f"won-{round_}", user=100))
        await h.say(CHAT, MOD, f"/award 101 7 round {round_}")
        assert h.last_text(CHAT_ID).startswith("P1 +7 (#")

    await burst(1)
    for _ in range(10):
        if relay.breaker_state == "open":
            break
        await relay.run_once()
    assert relay.breaker_state == "open"
    assert relay.failures >= 5
    assert relay.delivered == 0
    (pending,) = h.rows("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")[0]
    assert relay.lag == pending > 0

    await burst(2)
    await relay.run_once()  # the open breaker lets nothing through, but sees the lag
    assert relay.lag > pending
    assert relay.breaker_state == "open"
    assert h.tx_count() == 2 * (len(people) + 2)
    assert await h.balance(CHAT_ID, 100) == 10 * 2 + 20 * 2
    assert await h.balance(CHAT_ID, 101) == 10 * 2 + 7 * 2
    assert recorder.events == []

    bus.down = False
    h.clock.advance(timedelta(seconds=11))
    for _ in range(20):
        await relay.run_once()
        if relay.lag == 0:
            break
    assert relay.lag == 0
    assert relay.breaker_state == "closed"
    await bus.inner.drain()

    outbox = [row[0] for row in h.rows("SELECT event_id FROM outbox ORDER BY id")]
    seen = list(dict.fromkeys(e.id for e in recorder.events))
    assert seen == outbox
    points = [
        int(e.id.removeprefix("tx:")) for e in recorder.events if e.type.startswith("points.")
    ]
    assert points == [row[0] for row in h.transactions()]
    assert all(a < b for a, b in itertools.pairwise(points))
    assert (await h.services.engine.check()).ok


async def test_awarding_never_waits_for_a_hanging_bus(make_bus_harness: MakeBusHarness) -> None:
    h, bus, _ = await make_bus_harness(gamification=UNLIMITED)
    bus.block = True
    engine = h.services.engine
    await engine.award(CHAT_ID, 1, 5, key="first")
    async with asyncio.timeout(5):
        await bus.entered.wait()  # the relay is now stuck inside publish
    assert relay_of(h).running
    stats = engine.store.stats
    batches, operations = stats.batches, stats.operations

    async def everything() -> list[Any]:
        awards = [engine.award(CHAT_ID, 1 + n % 10, 3, key=f"a{n}") for n in range(200)]
        return await asyncio.gather(*awards)

    # Only a guard against hanging: the assertions below are about structure, not speed.
    receipts = await asyncio.wait_for(everything(), timeout=30)
    assert len(receipts) == 200
    assert not any(r.duplicate for r in receipts)
    assert stats.operations - operations == 200
    assert stats.batches - batches <= 10  # grouped as usual, not one commit per award
    for n in range(20):
        await h.say(CHAT, UpdateFactory.user(300 + n, f"Q{n}"), note(n))
    assert h.tx_count() == 1 + 200 + 20
    assert bus.attempts >= 1
    assert relay_of(h).delivered == 0
    (pending,) = h.rows("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")[0]
    assert pending == 221


# -- announcements ------------------------------------------------------------------------

ANNOUNCED = {
    **FIXED,
    "events": {"rules": {"game.won": 150}},
    "progress": {
        "achievements": [
            {
                "id": "big",
                "title": "Big <Spender> & co",
                "description": "Earn 100 points.",
                "condition": {"type": "earned", "at_least": 100},
                "reward": 5,
            }
        ]
    },
}
ODD = UpdateFactory.user(5, "Al <b> & Co")


async def test_an_unlock_and_a_level_up_are_announced_in_one_message(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification=ANNOUNCED)
    await h.say(CHAT, ODD, "hello everyone, glad to be here")
    await h.say(CHAT, BOB, "good evening from the other side")
    await publish(h, event("game.won", "w1", user=5), event("game.won", "w2", user=2))
    await settle(h)

    (text,) = h.texts(CHAT_ID)
    assert sorted(text.split("\n")) == sorted(
        [
            "⬆️ Al &lt;b&gt; &amp; Co reached level <b>1</b>",
            "🏆 Al &lt;b&gt; &amp; Co unlocked <b>Big &lt;Spender&gt; &amp; co</b> (+5)",
            "⬆️ Bob reached level <b>1</b>",
            "🏆 Bob unlocked <b>Big &lt;Spender&gt; &amp; co</b> (+5)",
        ]
    )
    await settle(h)
    assert len(h.texts()) == 1
    assert await h.balance(CHAT_ID, 5) == 10 + 150 + 5


async def test_nothing_is_announced_when_announcements_are_off(
    make_harness: MakeHarness,
) -> None:
    progress = {**ANNOUNCED["progress"], "announce_achievements": False, "announce_levels": False}
    h = await make_harness(gamification={**ANNOUNCED, "progress": progress})
    await publish(h, event("game.won", "w1", user=5))
    await settle(h)
    assert h.session.sent == []
    types = {row[0] for row in h.rows("SELECT type FROM outbox")}
    assert {"achievement.unlocked", "level.reached"} <= types
    assert relay_of(h).lag == 0


# -- commands -----------------------------------------------------------------------------

SHOWN = {
    **FIXED,
    "progress": {
        "achievements": [
            {
                "id": "twenty",
                "title": "Twenty",
                "description": "Earn 20 points.",
                "condition": {"type": "earned", "at_least": 20},
            },
            {
                "id": "chatter",
                "title": "Chatter",
                "description": "Write 3 messages.",
                "condition": {"type": "activity", "kind": "text", "at_least": 3},
            },
            {
                "id": "secret",
                "title": "Secret",
                "description": "Found it.",
                "condition": {"type": "earned", "at_least": 10},
                "hidden": True,
            },
            {
                "id": "mystery",
                "title": "Mystery",
                "description": "Not yet.",
                "condition": {"type": "thanks_received", "at_least": 5},
                "hidden": True,
            },
        ]
    },
}


async def test_achievements_show_unlocked_progress_and_hide_hidden(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification=SHOWN)
    await h.say(CHAT, ALICE, "the first message of the day")
    h.clock.advance(61)
    await h.say(CHAT, ALICE, "another thought about lunch plans")
    await h.say(CHAT, ALICE, "/achievements")
    assert h.last_text(CHAT_ID) == (
        "<b>Achievements of Alice</b>\n"
        "✅ <b>Twenty</b>: Earn 20 points.\n"
        "▫️ Chatter: Write 3 messages. (2/3)\n"
        "✅ <b>Secret</b>: Found it.\n"
        "…and 1 hidden, revealed when unlocked."
    )
    await h.say(CHAT, BOB, "/achievements")
    text = h.last_text(CHAT_ID)
    assert "▫️ Twenty: Earn 20 points. (0/20)" in text
    assert "Secret" not in text
    assert "Mystery" not in text
    assert text.endswith("…and 2 hidden, revealed when unlocked.")


async def test_points_shows_level_and_streak(make_harness: MakeHarness) -> None:
    gamification = {"activity": {"points": {"text": 40}}, "multipliers": {"streak": {"3": "1.5"}}}
    h = await make_harness(gamification=gamification)
    mornings = (
        "good morning, who is reading tonight?",
        "finished the chapter about the lighthouse",
        "the epilogue answered everything, wow",
    )
    for text in mornings:
        await h.say(CHAT, ALICE, text)
        h.clock.advance(timedelta(days=1))
    h.clock.advance(timedelta(days=-1, hours=1))
    await h.say(CHAT, ALICE, "/points")
    assert h.last_text(CHAT_ID) == (
        "Alice: <b>140</b> points (rank #1), 140 earned in all.\n"
        "Level 1 (115 to level 2), streak 3 days (best 3)."
    )
    await h.say(CHAT, ALICE, "/history")
    assert "(40 x streak 3d 1.5 = 60)" in h.last_text(CHAT_ID)


async def test_reverting_the_message_that_unlocked_revokes_the_achievement(
    make_harness: MakeHarness,
) -> None:
    talker = {
        "id": "talker",
        "title": "Talker",
        "description": "Write 2 messages.",
        "condition": {"type": "activity", "kind": "text", "at_least": 2},
        "reward": 7,
    }
    h = await make_harness(
        admins={CHAT_ID: {9}}, gamification={**FIXED, "progress": {"achievements": [talker]}}
    )
    await h.say(CHAT, ALICE, "the first message of the day")
    h.clock.advance(61)
    await h.say(CHAT, ALICE, "another thought about lunch plans")
    assert [row[3:5] for row in h.transactions()] == [
        (10, "activity"),
        (10, "activity"),
        (7, "achievement"),
    ]
    await h.say(CHAT, ALICE, "/achievements")
    assert "✅ <b>Talker</b>" in h.last_text(CHAT_ID)

    await h.say(CHAT, MOD, "/revert 2 spam")
    assert h.last_text(CHAT_ID).startswith("Reverted #2 with #4: Alice -10.")
    assert [row[3:] for row in h.transactions()[3:]] == [
        (-10, "revert", 9, "spam", 2),
        (-7, "revert", None, "talker revoked", 3),
    ]
    assert h.rows("SELECT achievement, revoked_tx_id FROM unlocks") == [("talker", 4)]
    assert await h.balance(CHAT_ID, 1) == 10
    await h.say(CHAT, ALICE, "/achievements")
    text = h.last_text(CHAT_ID)
    assert "✅" not in text
    assert "▫️ Talker: Write 2 messages. (1/2)" in text
    await settle(h)
    revoked = [e for e in h.rows("SELECT type FROM outbox") if e[0] == "achievement.revoked"]
    assert len(revoked) == 1
    assert (await h.services.engine.check()).ok


async def test_the_revert_reply_states_the_balance_after_the_reward_is_taken_back(
    make_harness: MakeHarness,
) -> None:
    talker = {
        "id": "talker",
        "title": "Talker",
        "condition": {"type": "activity", "at_least": 2},
        "reward": 7,
    }
    h = await make_harness(
        admins={CHAT_ID: {9}}, gamification={**FIXED, "progress": {"achievements": [talker]}}
    )
    await h.say(CHAT, ALICE, "the first message of the day")
    h.clock.advance(61)
    await h.say(CHAT, ALICE, "another thought about lunch plans")
    await h.say(CHAT, MOD, "/revert 2 spam")
    # The revoked achievement's reward went back in the same commit: 10 is the balance.
    assert await h.balance(CHAT_ID, 1) == 10
    assert h.last_text(CHAT_ID) == "Reverted #2 with #4: Alice -10. Balance 10."
