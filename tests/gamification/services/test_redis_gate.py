"""Anti-abuse state shared through Redis: two instances give exactly the verdicts of one.

Each "instance" is a whole set of services (scoring, thanks, engagement, moderation) with its
own gate; the two Redis-backed ones share a ledger file and a key prefix on the test server,
and take turns with the scripted stream (tests/support/abuse_stream.py). The instance that
judges alone keeps its state in memory. Both sides run on one fake clock (the Redis side is
told to take its time from it); a separate test shows that in production the rules' time is
Redis's own clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from benchmarks.farming import sentence
from plugins.gamification import FakeClock
from plugins.gamification.domain.activity import ActivityFact, ThanksFact
from plugins.gamification.domain.anti_abuse import Refusal, Track
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.gate_codec import decode_recent
from plugins.gamification.domain.models import Receipt
from plugins.gamification.services.redis_gate import RedisGateState
from plugins.gamification.services.redis_keys import Lifetimes
from plugins.gamification.services.runtime import Services, open_services
from plugins.gamification.storage.options import DatabaseOptions
from tests.support.abuse_stream import START, Step, build_stream
from tests.support.redis import keys_under, redis_prefix, server_url

# The stream is judged by the shipped rules, with a day's cap it reaches.
RULES: dict[str, Any] = {
    "anti_abuse": {"daily_cap": 150, "engaged_share": 0.1},
    "progress": {"achievements": []},
}


def settings(prefix: str | None = None, **anti_abuse: Any) -> GamificationConfig:
    rules = {**RULES, "anti_abuse": {**RULES["anti_abuse"], **anti_abuse}}
    if prefix is not None:
        rules["anti_abuse"].update(backend="redis", redis_url=server_url(), key_prefix=prefix)
    return GamificationConfig.model_validate(rules)


async def instance(
    path: Path, config: GamificationConfig, clock: FakeClock, *, server_time: bool = False
) -> Services:
    services = await open_services(DatabaseOptions.of(path), config, clock=clock)
    state = services.gate_state
    if isinstance(state, RedisGateState):
        state.server_time = server_time
    return services


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_prefix() as made:
        yield made


def outcome(result: Receipt | Refusal | None) -> tuple[Any, ...]:
    if result is None:
        return ("nothing",)
    if isinstance(result, Refusal):
        return ("refused", result.value)
    tx = result.transaction
    factors = tuple((m.name, str(m.factor)) for m in tx.breakdown.multipliers)
    return ("awarded", tx.amount, factors, result.duplicate)


async def play(step: Step, services: Services, clock: FakeClock) -> tuple[Any, ...]:
    clock.set(step.at)
    if step.engaged is not None:
        chat, author, responder = step.engaged
        await services.gate_state.engaged(chat, author, services.today(), responder)
        return ("engaged",)
    if isinstance(step.fact, ThanksFact):
        return outcome(await services.thanks.thank(step.fact))
    assert isinstance(step.fact, ActivityFact)
    return outcome(await services.scoring.score_message(step.fact))


async def run(
    stream: Sequence[Step], instances: Sequence[Services], clock: FakeClock
) -> list[tuple[Any, ...]]:
    """Each step on the next instance in turn."""
    return [
        await play(step, instances[index % len(instances)], clock)
        for index, step in enumerate(stream)
    ]


async def test_two_instances_sharing_redis_give_the_verdicts_of_one(
    tmp_path: Path, prefix: str
) -> None:
    stream = build_stream()
    clock = FakeClock(START)
    alone = await instance(tmp_path / "alone.sqlite3", settings(), clock)
    shared = settings(prefix)
    first = await instance(tmp_path / "shared.sqlite3", shared, clock)
    second = await instance(tmp_path / "shared.sqlite3", shared, clock)
    try:
        expected = await run(stream, [alone], clock)
        clock.set(START)
        got = await run(stream, [first, second], clock)
        for state in (first.gate_state, second.gate_state):
            assert state.active == "redis"
            assert state.fallbacks == 0
        refusals = first.stats.refusals + second.stats.refusals
    finally:
        for services in (alone, first, second):
            await services.close()
    # The stream meets every rule it is built for, on the instance that judges alone.
    reasons = Counter(o[1] for o in expected if o[0] == "refused")
    for rule in ("repeat", "copy", "burst", "too_short", "cooldown", "letter_soup",
                 "daily_cap", "thanks_cooldown"):  # fmt: skip
        assert reasons[rule] > 0, f"the stream never met {rule}: {reasons}"
    assert sum(1 for o in expected if o[0] == "awarded" and o[3]) > 0  # redeliveries
    assert sum(1 for o in expected if o[0] == "awarded" and not o[3]) > 20
    assert any("short answer" in str(o) for o in expected)
    assert any("monologue" in str(o) for o in expected)
    assert any("engagement" in str(o) for o in expected)
    mismatches = [
        (index, step, a, b)
        for index, (step, a, b) in enumerate(zip(stream, expected, got, strict=True))
        if a != b
    ]
    assert not mismatches, f"first of {len(mismatches)} differences: {mismatches[0]}"
    assert refusals == alone.stats.refusals


async def test_concurrent_judgements_of_one_chat_on_two_instances_conflict_and_stay_exact(
    tmp_path: Path, prefix: str
) -> None:
    """Twenty messages of one person at once, ten on each instance: as if one at a time.
    Three pass the rate (cooldown_burst), five more meet the cooldown, the rest the burst."""
    clock = FakeClock(START)
    config = settings(prefix, engaged_share=0, monologue_factor=1)
    first = await instance(tmp_path / "ledger.sqlite3", config, clock)
    second = await instance(tmp_path / "ledger.sqlite3", config, clock)
    rng = random.Random(3)
    facts = [ActivityFact(-7, 1, 500 + n, "text", sentence(rng), START) for n in range(20)]
    try:
        verdicts = await asyncio.gather(
            *(
                (first if n % 2 else second).scoring.score_message(fact)
                for n, fact in enumerate(facts)
            )
        )
        conflicts = first.gate_state.conflicts + second.gate_state.conflicts
    finally:
        await first.close()
        await second.close()
    kinds = Counter(v.value if isinstance(v, Refusal) else "awarded" for v in verdicts)
    assert kinds == {"awarded": 3, "cooldown": 5, "burst": 12}
    assert conflicts > 0


async def test_the_rules_run_on_redis_time_so_skewed_clocks_agree(
    tmp_path: Path, prefix: str
) -> None:
    """Production: each instance's own clock is ignored by the rate rules. An instance an
    hour ahead still sees the cooldown another instance started a moment ago."""
    config = settings(prefix, engaged_share=0, monologue_factor=1, cooldown_burst=1)
    behind = FakeClock(datetime(2000, 1, 1, tzinfo=UTC))
    ahead = FakeClock(datetime(2000, 1, 1, 1, tzinfo=UTC))
    first = await instance(tmp_path / "ledger.sqlite3", config, behind, server_time=True)
    second = await instance(tmp_path / "ledger.sqlite3", config, ahead, server_time=True)
    client = Redis.from_url(server_url())
    try:
        before = await client.time()
        one = ActivityFact(-8, 1, 1, "text", "the first ordinary sentence of today", behind.now())
        two = ActivityFact(-8, 1, 2, "text", "and a second one a moment later here", ahead.now())
        assert isinstance(await first.scoring.score_message(one), Receipt)
        assert await second.scoring.score_message(two) is Refusal.COOLDOWN
        after = await client.time()
        stored = await client.get(f"{prefix}recent:-8:1")
    finally:
        await client.aclose()
        await first.close()
        await second.close()
    track = Track()
    decode_recent(stored[8:], track)
    low = before[0] + before[1] / 1e6
    high = after[0] + after[1] / 1e6
    assert all(low <= t <= high for t in track.seen), (low, list(track.seen), high)


async def test_every_key_has_a_lifetime_and_a_person_costs_a_bounded_few_kilobytes(
    tmp_path: Path, prefix: str
) -> None:
    clock = FakeClock(START)
    config = settings(prefix)
    services = await instance(tmp_path / "ledger.sqlite3", config, clock)
    try:
        await run(build_stream(seed=5, steps=300), [services], clock)
        # One person's long texts, and one chat's copyable messages, far past every cap.
        for n in range(400):
            clock.advance(61)
            text = f"{n} " + " ".join(f"word{(n * 7 + k) % 997}" for k in range(20))
            await services.scoring.score_message(
                ActivityFact(-9, 100 + n % 40, 10_000 + n, "text", text, clock.now())
            )
        await services.moderation.freeze(-9, 100, 1, "test")
        found = await keys_under(server_url(), prefix)
    finally:
        await services.close()
    life = Lifetimes.of(config.anti_abuse)
    assert found
    for key, info in found.items():
        assert 0 < info["ttl_ms"] <= max(life.recent, life.record, life.chat), (key, info)
    recent = [v for k, v in found.items() if ":recent:" in k]
    records = [v for k, v in found.items() if ":record:" in k]
    chats = [v for k, v in found.items() if ":chat:" in k]
    assert f"{prefix}frozen" in found
    assert all(v["ttl_ms"] <= life.recent for v in recent)
    assert all(v["ttl_ms"] <= life.chat for v in chats)
    # The bounds the README states, with the shipped settings.
    assert max(v["length"] for v in recent) <= 6_500
    assert max(v["length"] for v in records) <= 700
    assert max(v["memory"] for v in chats) <= 40_000
    logging.getLogger(__name__).info(
        "bytes: recent max %d, record max %d, chat max %d (MEMORY USAGE)",
        max(v["length"] for v in recent),
        max(v["length"] for v in records),
        max(v["memory"] for v in chats),
    )


async def test_a_freeze_on_one_instance_is_refused_on_the_other(
    tmp_path: Path, prefix: str
) -> None:
    clock = FakeClock(START)
    config = settings(prefix, engaged_share=0)
    first = await instance(tmp_path / "ledger.sqlite3", config, clock)
    second = await instance(tmp_path / "ledger.sqlite3", config, clock)
    try:
        assert await first.moderation.freeze(-5, 3, 9, "spam", audit=True)
        fact = ActivityFact(-5, 3, 77, "text", "a perfectly ordinary sentence here", START)
        assert await second.scoring.score_message(fact) is Refusal.FROZEN
        assert await second.moderation.unfreeze(-5, 3, 9)
        clock.advance(120)
        later = ActivityFact(-5, 3, 78, "text", "another ordinary sentence, later on", clock.now())
        assert isinstance(await first.scoring.score_message(later), Receipt)
    finally:
        await first.close()
        await second.close()


async def test_state_another_program_left_under_the_prefix_is_started_afresh(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis.from_url(server_url())
    try:
        await client.set(f"{prefix}recent:-4:1", b"12345678 not gate state", px=60_000)
        await client.hset(f"{prefix}chat:-4", mapping={"v": b"x" * 8, "p": b"\xff\xff"})
        await client.pexpire(f"{prefix}chat:-4", 60_000)
    finally:
        await client.aclose()
    clock = FakeClock(START)
    services = await instance(tmp_path / "ledger.sqlite3", settings(prefix), clock)
    try:
        with caplog.at_level(logging.WARNING):
            fact = ActivityFact(-4, 1, 1, "text", "a perfectly ordinary sentence here", START)
            assert isinstance(await services.scoring.score_message(fact), Receipt)
            fact = ActivityFact(-4, 1, 2, "text", "one more perfectly ordinary sentence", START)
            await services.scoring.score_message(fact)
    finally:
        await services.close()
    warnings = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1


async def test_an_unknown_day_and_a_later_day_start_the_record_again(
    tmp_path: Path, prefix: str
) -> None:
    """Past midnight the day's total is read from the ledger again, on either instance."""
    clock = FakeClock(START)
    config = settings(prefix, engaged_share=0, daily_cap=30, monologue_factor=1)
    first = await instance(tmp_path / "ledger.sqlite3", config, clock)
    second = await instance(tmp_path / "ledger.sqlite3", config, clock)
    try:
        results = []
        rng = random.Random(4)
        for n, services in enumerate([first, second, first, second]):
            clock.advance(70)
            fact = ActivityFact(-3, 1, n, "text", sentence(rng), clock.now())
            results.append(await services.scoring.score_message(fact))
        clock.set(START + timedelta(days=1))
        fact = ActivityFact(-3, 1, 9, "text", "a new day, a new ordinary sentence", clock.now())
        results.append(await second.scoring.score_message(fact))
    finally:
        await first.close()
        await second.close()
    kinds = [r.value if isinstance(r, Refusal) else r.transaction.amount for r in results]
    assert kinds[0] > 0
    assert "daily_cap" in kinds[1:4]
    assert isinstance(kinds[4], int)
    assert kinds[4] > 0
