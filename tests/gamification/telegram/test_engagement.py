"""Engagement through the real Dispatcher, with the shipped defaults: replies and reactions
from members with history, reaction points, monologues, relative caps, thanks rules."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
from aiogram.types import Update

from benchmarks.farming import sentence
from plugins.gamification.domain.anti_abuse import Refusal
from tests.gamification.conftest import MakeHarness
from tests.support.telegram_harness import TelegramHarness

CHAT_ID = -100
CHAT = {"id": CHAT_ID, "type": "supergroup", "title": "Club"}
FIXED = {"activity": {"points": {"text": 10}}}
SENTENCES = (
    "good morning everyone, coffee is ready",
    "has anyone tried the new release yet?",
    "I think the meeting moved to friday",
    "the weather here is grey and rainy",
    "my cat knocked the plant off the shelf",
    "who wants to review my pull request",
    "lunch at the italian place sounds great",
    "the train was late again this morning",
    "finally fixed that flaky test suite",
    "reading a book about medieval castles",
    "anyone up for football on sunday?",
    "the new keyboard arrived, it is loud",
)
_updates = itertools.count(10_000)


def person(n: int) -> dict[str, Any]:
    return {"id": n, "is_bot": False, "first_name": f"P{n}"}


async def shipped(make_harness: MakeHarness, **gamification: Any) -> TelegramHarness:
    return await make_harness(gamification={**FIXED, **gamification}, shipped=True)


async def say(h: TelegramHarness, user: int, text: str, **kw: Any) -> int:
    update = await h.say(CHAT, person(user), text, **kw)
    assert update.message is not None
    h.clock.advance(61)
    return update.message.message_id


async def react(h: TelegramHarness, user: int, message_id: int, *, on: bool = True) -> None:
    emoji = [{"type": "emoji", "emoji": "👍"}] if on else []
    body = {
        "chat": CHAT, "message_id": message_id, "user": person(user),
        "date": int(h.clock.now().timestamp()), "old_reaction": [], "new_reaction": emoji,
    }  # fmt: skip
    await h.feed(Update.model_validate({"update_id": next(_updates), "message_reaction": body}))


def rows(h: TelegramHarness, prefix: str) -> list[tuple[Any, ...]]:
    return h.rows(
        "SELECT user_id, amount, actor_id, breakdown FROM transactions WHERE idem_key LIKE ?"
        " ORDER BY id",
        (f"{prefix}:%",),
    )


async def conversation(h: TelegramHarness) -> None:
    """Three members chat a little, so each has history and the room is lively."""
    for n, text in enumerate(SENTENCES[:6]):
        await say(h, 1 + n % 3, text)


async def test_a_reply_from_a_member_with_history_earns_the_engagement_bonus(
    make_harness: MakeHarness,
) -> None:
    h = await shipped(make_harness)
    await conversation(h)
    target = await say(h, 1, SENTENCES[6])
    await say(h, 2, "that sounds great, count me in", reply_to=target)
    await say(h, 3, "me too, see you there then", reply_to=target)  # engaged once only
    (bonus,) = rows(h, "eng")
    assert bonus[:3] == (1, 5, 2)
    assert '["engaged","0.5"]' in bonus[3]
    # A newcomer's reply engages nothing: no history of their own.
    target = await say(h, 1, SENTENCES[7])
    await say(h, 77, "first time here, hello to all of you", reply_to=target)
    assert len(rows(h, "eng")) == 1
    assert h.services.stats.refusals[Refusal.RESPONDER_INACTIVE] == 1


async def test_a_reaction_settles_into_points_and_a_removed_one_earns_nothing(
    make_harness: MakeHarness,
) -> None:
    h = await shipped(make_harness)
    await conversation(h)
    kept = await say(h, 1, SENTENCES[6])
    taken_back = await say(h, 2, SENTENCES[7])
    await react(h, 3, kept)
    await react(h, 3, taken_back)
    await react(h, 1, kept)  # the author's own reaction: nothing
    h.clock.advance(10)
    await react(h, 3, taken_back, on=False)  # before it settled
    h.clock.advance(120)
    await say(h, 3, SENTENCES[8])  # any later update settles what is due
    assert [r[:3] for r in rows(h, "rct")] == [(1, 1, 3)]
    assert [r[:3] for r in rows(h, "eng")] == [(1, 5, 3)]
    # Redelivered or repeated, a reaction never pays twice.
    await react(h, 3, kept)
    h.clock.advance(120)
    await say(h, 2, SENTENCES[9])
    assert len(rows(h, "rct")) == 1


async def test_a_monologue_to_an_empty_room_earns_a_quarter(make_harness: MakeHarness) -> None:
    h = await shipped(make_harness)
    await say(h, 1, SENTENCES[0])
    (row,) = h.rows("SELECT amount, breakdown FROM transactions")
    assert row[0] == 3
    assert '["monologue","0.25"]' in row[1]


async def test_a_script_nobody_answers_soon_earns_nothing(make_harness: MakeHarness) -> None:
    h = await shipped(make_harness)
    await conversation(h)
    rng = random.Random(5)
    for _ in range(40):  # ordinary-looking, each one new
        await say(h, 50, sentence(rng, 6, 12))
    earned = h.rows("SELECT SUM(amount) FROM transactions WHERE user_id = 50")[0][0]
    assert earned < 80  # the prior lets a handful of messages through, not 40
    assert h.services.stats.refusals[Refusal.NO_ENGAGEMENT] > 25


async def test_the_relative_cap_follows_the_chat(make_harness: MakeHarness) -> None:
    h = await shipped(make_harness, anti_abuse={"relative_cap": 1.0, "relative_cap_floor": 25})
    await conversation(h)
    h.clock.advance(86_400)  # the chat's member-days are from whole days before today
    h.services.engagement._caps.clear()
    cap = await h.services.engagement.chat_cap(CHAT_ID)
    days = h.rows("SELECT SUM(amount) FROM transactions WHERE kind = 'activity' GROUP BY user_id")
    assert cap == max(25, round(sorted(d for (d,) in days)[len(days) // 2]))


async def test_thanks_need_a_giver_with_activity_and_pairs_decay(
    make_harness: MakeHarness,
) -> None:
    h = await shipped(make_harness)
    target = await say(h, 1, SENTENCES[0])
    await say(h, 2, "thanks", reply_to=target)  # Bob has no scored messages yet
    assert h.services.stats.refusals[Refusal.THANKS_GIVER_INACTIVE] == 1
    for text in SENTENCES[1:9]:
        await say(h, 2, text)
        await say(h, 1, text + " indeed")
    target = await say(h, 1, SENTENCES[9])
    await say(h, 2, "thanks", reply_to=target)
    h.clock.advance(3600)
    target = await say(h, 2, SENTENCES[10])
    await say(h, 1, "thank you", reply_to=target)  # back the other way: halved
    amounts = [r[1] for r in rows(h, "thx")]
    assert amounts == [5, 3]
    assert '["pair x1","0.5"]' in rows(h, "thx")[1][3]


async def test_messages_waiting_for_the_relative_cap_share_one_read(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy chat's first messages of the hour all need the cap; the ledger is read once
    for them, and again only when the hour is over."""
    h = await shipped(make_harness)
    store = h.services.engine.store
    reads: list[int] = []
    member_days = store.member_days

    async def counted(chat_id: int, since: str, until: str) -> list[int]:
        reads.append(chat_id)
        await asyncio.sleep(0.01)  # long enough for every caller to arrive meanwhile
        return await member_days(chat_id, since, until)

    monkeypatch.setattr(store, "member_days", counted)
    engagement = h.services.engagement
    caps = await asyncio.gather(*(engagement.chat_cap(CHAT_ID) for _ in range(50)))
    assert reads == [CHAT_ID]
    assert set(caps) == {h.services.config.anti_abuse.relative_cap_floor}
    assert await engagement.chat_cap(CHAT_ID) == caps[0]
    assert reads == [CHAT_ID]
    h.clock.advance(3601)
    await engagement.chat_cap(CHAT_ID)
    assert reads == [CHAT_ID, CHAT_ID]


async def test_a_member_with_enough_history_is_not_read_again_for_each_answer(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await shipped(make_harness)
    for n in range(3):
        await say(h, 1, SENTENCES[n])
    store = h.services.engine.store
    reads: list[int] = []
    scored_messages = store.scored_messages

    async def counted(chat_id: int, user_id: int, since: str) -> int:
        reads.append(user_id)
        return await scored_messages(chat_id, user_id, since)

    monkeypatch.setattr(store, "scored_messages", counted)
    engagement = h.services.engagement
    assert h.services.config.engagement.min_history_messages <= 3
    assert await engagement.has_history(CHAT_ID, 1)
    assert await engagement.has_history(CHAT_ID, 1)
    assert reads == [1]  # three scored messages: enough, cached for a few minutes
    assert not await engagement.has_history(CHAT_ID, 2)
    assert not await engagement.has_history(CHAT_ID, 2)
    assert reads == [1, 2, 2]  # a newcomer is read each time: their history grows
    h.clock.advance(301)
    assert await engagement.has_history(CHAT_ID, 1)
    assert reads == [1, 2, 2, 1]
