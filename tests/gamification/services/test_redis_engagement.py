"""The engagement book shared through Redis: replies and reactions handled by another
instance than the one that saw the message earn exactly what one instance would give.

One instance keeps everything in memory; two others share a ledger file and a key prefix on
the test server and take turns, step by step, with a scripted chat of messages, replies and
reactions added and taken back (some before they settle, some after). Their ledgers must be
equal row for row (amounts, keys, breakdowns, hashes) and the engagement records the gate
keeps must be the same.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from benchmarks.farming import sentence
from plugins.gamification import FakeClock
from plugins.gamification.domain.activity import ActivityFact, ReactionFact
from plugins.gamification.domain.anti_abuse import Track
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.engagement_codec import MAX_REACTORS
from plugins.gamification.domain.gate_codec import decode_record
from plugins.gamification.domain.models import Breakdown, Receipt
from plugins.gamification.services.redis_gate import RedisGateState
from plugins.gamification.services.redis_keys import BookLifetimes
from plugins.gamification.services.runtime import Services, open_services
from plugins.gamification.storage.options import DatabaseOptions
from tests.support.abuse_stream import START
from tests.support.redis import keys_under, redis_prefix, server_url, throwaway_redis, wait_until

GATE_LOG = "plugins.gamification.services.redis_gate"

CHATS = (-3001, -3002)
PEOPLE = range(1, 7)
RULES: dict[str, Any] = {
    "anti_abuse": {"daily_cap": 400, "engaged_share": 0.1},
    "progress": {"achievements": []},
}


def settings(prefix: str | None = None, **sections: dict[str, Any]) -> GamificationConfig:
    rules: dict[str, Any] = {**RULES, "anti_abuse": dict(RULES["anti_abuse"])}
    for name, values in sections.items():
        rules[name] = {**rules.get(name, {}), **values}
    if prefix is not None:
        rules["anti_abuse"].update(backend="redis", redis_url=server_url(), key_prefix=prefix)
    return GamificationConfig.model_validate(rules)


async def instance(path: Path, config: GamificationConfig, clock: FakeClock) -> Services:
    services = await open_services(DatabaseOptions.of(path), config, clock=clock)
    if isinstance(services.gate_state, RedisGateState):
        services.gate_state.server_time = False  # one fake clock for both backends
    return services


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_prefix() as made:
        yield made


@dataclass(frozen=True, slots=True)
class Step:
    """A message (perhaps a reply) to score, or a reaction added or taken back."""

    at: datetime
    message: ActivityFact | None = None
    reaction: ReactionFact | None = None


def build_stream(seed: int = 15, steps: int = 360) -> list[Step]:
    """Everyone speaks a few times first (history of their own), then the chat goes on:
    messages, replies to recent and to old messages, reactions (on one's own message too,
    again on the same message, taken back before and after they settle)."""
    rng = random.Random(seed)
    out: list[Step] = []
    t = 0.0
    ids = dict.fromkeys(CHATS, 0)
    recent: dict[int, list[tuple[int, int]]] = {chat: [] for chat in CHATS}
    reactions: list[tuple[int, int, int]] = []

    def message(chat: int, user: int, reply: tuple[int, int] | None = None) -> Step:
        ids[chat] += 1
        at = START + timedelta(seconds=t)
        text = rng.choice(("yes, exactly", "+1 agreed")) if reply and rng.random() < 0.3 else ""
        fact = ActivityFact(
            chat, user, ids[chat], "text", text or sentence(rng), at,
            reply_to_message=reply[1] if reply else None,
            reply_to_user=reply[0] if reply else None,
        )  # fmt: skip
        recent[chat].append((user, ids[chat]))
        return Step(at, message=fact)

    for user in PEOPLE:
        for chat in CHATS:
            for _ in range(3):
                t += rng.uniform(70, 200)
                out.append(message(chat, user))
    while len(out) < steps:
        t += rng.uniform(3, 90) if rng.random() < 0.9 else rng.uniform(1800, 8 * 3600)
        chat, user = rng.choice(CHATS), rng.choice(PEOPLE)
        roll = rng.random()
        at = START + timedelta(seconds=t)
        if roll < 0.3:
            out.append(message(chat, user))
        elif roll < 0.5:
            target = rng.choice(recent[chat][-12:] + recent[chat][:3])  # mostly recent
            out.append(message(chat, user, reply=target))
        elif roll < 0.85:
            _, target_id = rng.choice(recent[chat][-15:])
            reactions.append((chat, user, target_id))
            out.append(Step(at, reaction=ReactionFact(chat, user, target_id, True, at)))
        elif reactions:
            chat, user, target_id = rng.choice(reactions[-6:])
            out.append(Step(at, reaction=ReactionFact(chat, user, target_id, False, at)))
    return out


async def play(step: Step, services: Services, clock: FakeClock) -> str:
    """What the Telegram layer does with the update, on `services`."""
    clock.set(step.at)
    if step.reaction is not None:
        await services.engagement.reacted(step.reaction)
        return "reaction"
    fact = step.message
    assert fact is not None
    result = await services.scoring.score_message(fact)
    if fact.reply_to_message is not None:
        await services.engagement.replied(
            fact.chat_id, fact.user_id, fact.reply_to_message, fact.sent_at
        )
    return str(getattr(result, "value", None) or getattr(result, "transaction", None))


async def run(stream: Sequence[Step], instances: Sequence[Services], clock: FakeClock) -> None:
    for index, step in enumerate(stream):
        await play(step, instances[index % len(instances)], clock)
    # Whatever is still pending settles at the next update, wherever it arrives.
    clock.advance(3600)
    await instances[-1].engagement.settle()


def ledger_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id,"
            " reason, breakdown, created_at, hash FROM transactions ORDER BY id"
        ).fetchall()


async def redis_records(prefix: str) -> dict[tuple[int, int], tuple[int, set[int]]]:
    client = Redis.from_url(server_url())
    out = {}
    try:
        for chat in CHATS:
            for user in PEOPLE:
                value = await client.get(f"{prefix}record:{chat}:{user}")
                track = Track()
                if value:
                    decode_record(value[9:], track)
                out[(chat, user)] = (track.engaged, track.responders)
    finally:
        await client.aclose()
    return out


async def test_replies_and_reactions_across_two_instances_earn_what_one_gives(
    tmp_path: Path, prefix: str
) -> None:
    stream = build_stream()
    clock = FakeClock(START)
    alone = await instance(tmp_path / "alone.sqlite3", settings(), clock)
    shared = settings(prefix)
    first = await instance(tmp_path / "shared.sqlite3", shared, clock)
    second = await instance(tmp_path / "shared.sqlite3", shared, clock)
    try:
        await run(stream, [alone], clock)
        expected_records = {
            (chat, user): (
                alone.gate.track(chat, user).engaged,
                alone.gate.track(chat, user).responders,
            )
            for chat in CHATS
            for user in PEOPLE
        }
        clock.set(START)
        await run(stream, [first, second], clock)
        for state in (first.gate_state, second.gate_state):
            assert state.active == "redis"
            assert state.fallbacks == 0
        records = await redis_records(prefix)
    finally:
        for services in (alone, first, second):
            await services.close()
    expected = ledger_rows(tmp_path / "alone.sqlite3")
    got = ledger_rows(tmp_path / "shared.sqlite3")
    tags = [Breakdown.from_json(row[9]).tag for row in expected]
    # The stream earns every kind of engagement on the instance that judges alone.
    assert tags.count("engagement") > 10, tags.count("engagement")
    assert tags.count("reaction") > 10, tags.count("reaction")
    assert len(got) == len(expected)
    for index, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert a == b, f"row {index} differs: {a} != {b}"
    assert sum(engaged for engaged, _ in expected_records.values()) > 10
    assert records == expected_records


async def test_a_reaction_taken_back_on_another_instance_earns_nothing(
    tmp_path: Path, prefix: str
) -> None:
    clock = FakeClock(START)
    config = settings(prefix, engagement={"min_history_messages": 0})
    first = await instance(tmp_path / "ledger.sqlite3", config, clock)
    second = await instance(tmp_path / "ledger.sqlite3", config, clock)
    try:
        texts = ("a perfectly ordinary sentence to react to", "and something else entirely later")
        for n, services in ((1, first), (2, second)):
            fact = ActivityFact(-6, 1, n, "text", texts[n - 1], clock.now())
            assert isinstance(await services.scoring.score_message(fact), Receipt)
            clock.advance(120)
        now = clock.now()
        await first.engagement.reacted(ReactionFact(-6, 2, 1, True, now))
        await second.engagement.reacted(ReactionFact(-6, 2, 1, False, now))  # taken back
        await second.engagement.reacted(ReactionFact(-6, 3, 2, True, now))  # stays
        await first.engagement.reacted(ReactionFact(-6, 3, 2, True, now))  # again: once
        clock.advance(61)
        await first.engagement.settle()
        await second.engagement.settle()
    finally:
        await first.close()
        await second.close()
    rows = ledger_rows(tmp_path / "ledger.sqlite3")
    keys = sorted(
        r[6] for r in rows if Breakdown.from_json(r[9]).tag in ("engagement", "reaction")
    )
    assert keys == ["eng:-6:2", "rct:-6:2:3"], keys


async def test_book_keys_have_lifetimes_and_a_chat_is_bounded(tmp_path: Path, prefix: str) -> None:
    clock = FakeClock(START)
    config = settings(prefix, engagement={"tracked_messages": 100, "min_history_messages": 0})
    services = await instance(tmp_path / "ledger.sqlite3", config, clock)
    try:
        await run(build_stream(seed=4, steps=200), [services], clock)
        # One chat far past its bound, and one message with more reactors than it keeps.
        for n in range(160):
            clock.advance(1)
            fact = ActivityFact(-7, 1 + n % 5, n + 1, "photo", "", clock.now(), media_id=str(n))
            services.engagement.book.posted(-7, n + 1, fact.user_id, fact.sent_at.timestamp(), 2)
            await services.engagement.posted_shared(fact, 2)
        for reactor in range(100, 100 + MAX_REACTORS + 20):
            await services.engagement.reacted(ReactionFact(-7, reactor, 160, True, clock.now()))
        found = await keys_under(server_url(), prefix)
        client = Redis.from_url(server_url())
        try:
            remembered = await client.hlen(f"{prefix}book:-7")
            indexed = await client.zcard(f"{prefix}booked:-7")
            crowded = (await client.hget(f"{prefix}book:-7", "160")).decode()
            per_message = await client.memory_usage(f"{prefix}book:-7", samples=0)
        finally:
            await client.aclose()
    finally:
        await services.close()
    life = BookLifetimes.of(config.engagement, config.reactions)
    book = {k: v for k, v in found.items() if any(f":{n}:" in k for n in ("book", "booked"))}
    givers = {k: v for k, v in found.items() if ":giver:" in k}
    assert book
    assert givers
    assert f"{prefix}pending" in found
    for key, info in [*book.items(), (f"{prefix}pending", found[f"{prefix}pending"])]:
        assert 0 < info["ttl_ms"] <= life.book, (key, info)
    for key, info in givers.items():
        assert 0 < info["ttl_ms"] <= life.giver, (key, info)
        assert info["length"] <= 600, (key, info)
    assert remembered == indexed == 100
    assert len(crowded.split(" ")[4].split(",")) == MAX_REACTORS
    assert len(crowded) <= 40 + 11 * MAX_REACTORS
    assert per_message < 100 * 60 + 11 * MAX_REACTORS + 2_000, per_message


async def test_redis_stopped_the_book_goes_on_in_memory_and_shares_again_when_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(START)
    with throwaway_redis() as server:
        config = GamificationConfig.model_validate(
            {
                **RULES,
                "engagement": {"min_history_messages": 0},
                "anti_abuse": {
                    **RULES["anti_abuse"],
                    "backend": "redis",
                    "redis_url": server.url,
                    "key_prefix": "book-fallback:",
                    "redis_timeout_seconds": 0.2,
                    "redis_retry_seconds": 0.1,
                },
            }
        )
        first = await instance(tmp_path / "ledger.sqlite3", config, clock)
        second = await instance(tmp_path / "ledger.sqlite3", config, clock)
        texts = iter(sentence(random.Random(n)) for n in range(10))

        async def say(services: Services, message_id: int) -> None:
            clock.advance(300)
            fact = ActivityFact(-9, 1, message_id, "text", next(texts), clock.now())
            assert isinstance(await services.scoring.score_message(fact), Receipt)

        async def reply(services: Services, user: int, message_id: int) -> None:
            clock.advance(5)
            await services.engagement.replied(-9, user, message_id, clock.now())

        try:
            with caplog.at_level(logging.INFO, logger=GATE_LOG):
                await say(first, 1)
                await reply(second, 2, 1)  # shared: engages message 1
                server.stop()
                await say(first, 2)  # the gate falls back; the book remembers in memory
                await first.engagement.reacted(ReactionFact(-9, 3, 2, True, clock.now()))
                await reply(second, 2, 2)  # the other instance's memory never saw it
                clock.advance(61)
                await first.engagement.settle()  # the reaction settles in memory
                for services in (first, second):
                    assert services.gate_state.active == "memory"
                server.start()
                await wait_until(
                    lambda: all(s.gate_state.active == "redis" for s in (first, second))
                )
                await say(first, 3)
                await reply(second, 4, 3)  # shared again
        finally:
            await first.close()
            await second.close()
    went = [r for r in caplog.records if r.name == GATE_LOG and "does not answer" in r.message]
    assert len(went) == 2  # one warning per instance
    assert all(s.gate_state.fallbacks == 1 for s in (first, second))
    rows = ledger_rows(tmp_path / "ledger.sqlite3")
    keys = sorted(
        r[6] for r in rows if Breakdown.from_json(r[9]).tag in ("engagement", "reaction")
    )
    # Message 2 engaged by the reaction settled in the first instance's memory (bonus and
    # points); the reply on the second, which never saw message 2, earned nothing.
    assert keys == ["eng:-9:1", "eng:-9:2", "eng:-9:3", "rct:-9:2:3"], keys
