"""Every update and every bus event delivered 1 to 5 times, at once and across a restart.

Telegram redelivers updates (polling offsets, webhook retries) and the bus delivers at least
once. Whatever the number of copies, and however they interleave, each key must be in the
ledger exactly once, balances must be what one delivery earns, and the check clean.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram.types import Update

from bot.testing import UpdateFactory
from plugins.gamification.bus.events import Event, InProcessBus
from plugins.gamification.domain.activity import points_for
from plugins.gamification.domain.keys import admin_key, event_key, message_key, thanks_key
from tests.gamification.conftest import MakeHarness
from tests.reliability.conftest import Show
from tests.support.telegram_harness import START, TelegramHarness

CHAT_ID = -100
CHAT = UpdateFactory.group(CHAT_ID, "Club")
MOD = UpdateFactory.user(9, "Mod", "mod")
PEOPLE = [UpdateFactory.user(u, f"Person{u}", f"person{u}") for u in range(1, 7)]
TEXT_POINTS = (15, 25)
THANKS_POINTS = 5
EVENT_POINTS = {"game.won": 20, "narrative.chapter_completed": 50, "user.registered": 10}
CONFIG = {
    "activity": {"points": {"text": list(TEXT_POINTS)}},
    # Nothing may refuse a first delivery: only duplicates are under test here.
    "anti_abuse": {
        "cooldown_seconds": 0,
        "repeat_window_seconds": 0,
        "burst_messages": 1000,
        "daily_cap": 1_000_000,
    },
    "thanks": {"points": THANKS_POINTS, "pair_cooldown_seconds": 0, "daily_limit": 1000},
    "admin": {"max_grant": 1000},
}


@dataclass
class Plan:
    """What was sent, and what one delivery of each must leave in the ledger."""

    updates: list[Update] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # idem_key -> (user_id, amount)
    expected: dict[str, tuple[int, int]] = field(default_factory=dict)
    thanks: int = 0
    admin_commands: int = 0


def words() -> str:
    """Text no other message resembles, so the repeat filter never refuses a first copy."""
    return f"{uuid.uuid4().hex} {uuid.uuid4().hex}"


def plan_updates(h: TelegramHarness, plan: Plan, rng: random.Random, count: int) -> None:
    """Chat messages, thanks replies to them and admin awards, built but not fed yet."""
    sent: list[tuple[int, int]] = []  # (message id, author)
    thanked: set[tuple[int, int]] = set()
    for _ in range(count):
        roll = rng.random()
        author = rng.choice(PEOPLE)
        if sent and roll < 0.15:
            target_id, target = rng.choice(sent)
            pair = (author["id"], target)
            if target != author["id"] and pair not in thanked:
                # One thanks per pair: the pair cooldown is read from the ledger, and a clock
                # that stands still would count an earlier thanks as inside it.
                thanked.add(pair)
                update = h.factory.message(
                    CHAT, author, f"thanks {uuid.uuid4().hex}", reply_to=target_id
                )
                assert update.message is not None
                mid = update.message.message_id
                plan.updates.append(update)
                # A thanks earns the thanked person points, not its sender activity points.
                plan.expected[thanks_key(CHAT_ID, mid)] = (target, THANKS_POINTS)
                plan.thanks += 1
                continue
        if sent and roll < 0.25:
            target_id, target = rng.choice(sent)
            amount = rng.randint(1, 100)
            update = h.factory.message(CHAT, MOD, f"/award {amount} well done", reply_to=target_id)
            assert update.message is not None
            plan.updates.append(update)
            plan.expected[admin_key(CHAT_ID, update.message.message_id)] = (target, amount)
            plan.admin_commands += 1
            continue
        update = h.factory.message(CHAT, author, words())
        assert update.message is not None
        mid = update.message.message_id
        plan.updates.append(update)
        key = message_key(CHAT_ID, mid)
        plan.expected[key] = (author["id"], points_for(TEXT_POINTS, key))
        sent.append((mid, author["id"]))


def plan_events(plan: Plan, rng: random.Random, count: int) -> None:
    for i in range(count):
        user = rng.choice(PEOPLE)["id"]
        if rng.random() < 0.2:
            amount = rng.randint(1, 200)
            item = Event(
                id=f"grant-{i}-{uuid.uuid4().hex[:8]}", type="admin.award", occurred_at=START,
                chat_id=CHAT_ID, user_id=user,
                payload={"amount": amount, "actor_id": 9, "reason": "bus grant"},
            )  # fmt: skip
        else:
            kind, amount = rng.choice(list(EVENT_POINTS.items()))
            item = Event(
                id=f"ev-{i}-{uuid.uuid4().hex[:8]}", type=kind, occurred_at=START,
                chat_id=CHAT_ID, user_id=user,
            )  # fmt: skip
        plan.events.append(item)
        plan.expected[event_key(item.id)] = (user, amount)


@dataclass
class Deliveries:
    updates: int = 0
    events: int = 0


async def deliver(
    h: TelegramHarness, updates: list[Update], events: list[Event], rng: random.Random,
    tally: Deliveries,
) -> None:  # fmt: skip
    """Each update and event 1 to 5 times, all copies at once in a shuffled order."""
    bus = h.runtime.bus
    assert isinstance(bus, InProcessBus)
    calls: list[Any] = []
    for update in updates:
        copies = rng.randint(1, 5)
        tally.updates += copies
        calls += [h.feed(update) for _ in range(copies)]
    for item in events:
        copies = rng.randint(1, 5)
        tally.events += copies
        calls += [bus.publish(item) for _ in range(copies)]
    rng.shuffle(calls)
    await asyncio.wait_for(asyncio.gather(*calls), 120)
    await asyncio.wait_for(bus.drain(), 120)
    assert all(s.dropped == 0 and s.failed == 0 for s in bus.subscriptions), bus.subscriptions


def verify(h: TelegramHarness, plan: Plan) -> Counter[str]:
    """Exactly one transaction per key; balances are one delivery's worth; the check is clean."""
    rows = h.rows("SELECT idem_key, user_id, amount FROM transactions")
    per_key = Counter(key for key, _, _ in rows)
    assert [k for k, n in per_key.items() if n > 1] == []
    assert {key: (user, amount) for key, user, amount in rows} == plan.expected
    balances: Counter[int] = Counter()
    for user, amount in plan.expected.values():
        balances[user] += amount
    stored = dict(h.rows("SELECT user_id, balance FROM accounts WHERE chat_id = ?", (CHAT_ID,)))
    assert stored == {u: b for u, b in balances.items() if b}
    return per_key


async def run_duplicates(
    make_harness: MakeHarness, show: Show, updates: int, events: int, seed: int
) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, gamification=CONFIG)
    rng = random.Random(seed)
    plan = Plan()
    plan_updates(h, plan, rng, updates)
    plan_events(plan, rng, events)
    before = Deliveries()
    # The first half goes out before the restart, then everything once more after it.
    await deliver(h, plan.updates[: updates // 2], plan.events[: events // 2], rng, before)
    assert h.runtime.relay is not None
    await h.runtime.relay.run_once()
    await h.restart()
    after = Deliveries()
    await deliver(h, plan.updates, plan.events, rng, after)
    await h.restart()
    # A third pass on another restart: every copy now is a pure redelivery.
    again = Deliveries()
    await deliver(h, plan.updates, plan.events, rng, again)

    per_key = verify(h, plan)
    report = await h.services.engine.check()
    assert report.ok, report.to_text()
    # Side effects counted once too: one thanks reply per thanks, one audit row per command.
    sessions = [*h.past_sessions, h.session]
    thanks_replies = sum("(thanks from" in t for s in sessions for t in s.texts(CHAT_ID))
    assert thanks_replies == plan.thanks
    assert h.rows("SELECT COUNT(*) FROM admin_actions") == [(plan.admin_commands,)]
    deliveries = before.updates + after.updates + again.updates
    published = before.events + after.events + again.events
    show(
        f"duplicates: {len(plan.updates)} updates delivered {deliveries} times and"
        f" {len(plan.events)} bus events {published} times, concurrently and across 2"
        f" restarts -> {len(per_key)} transactions, 1 per key ({plan.thanks} thanks,"
        f" {plan.admin_commands} admin commands with 1 audit row each), balances exact,"
        " check clean"
    )


async def test_every_update_and_event_delivered_many_times_counts_once(
    make_harness: MakeHarness, show: Show
) -> None:
    await run_duplicates(make_harness, show, updates=300, events=100, seed=20_261_203)


@pytest.mark.soak
async def test_duplicates_soak(make_harness: MakeHarness, show: Show) -> None:
    # At most 150 events x 5 copies at once: each bus subscription queues up to 1,000.
    await run_duplicates(make_harness, show, updates=2000, events=150, seed=7_000_003)
