"""Shared anti-abuse state with real processes' parts: Redis stopped and started under the
gate, and two bots behind the real Dispatcher scoring as one.

The fallback test runs its own redis-server on a free port (the machine's server is never
stopped), kills it in the middle of a stream and starts it again.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from benchmarks.farming import sentence
from bot.testing import UpdateFactory
from plugins.gamification import FakeClock
from plugins.gamification.domain.activity import ActivityFact, ThanksFact
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.ops.metrics import PointsCollector
from plugins.gamification.services.figures import read_figures
from plugins.gamification.services.redis_gate import RedisGateState
from plugins.gamification.services.runtime import Services, open_services
from plugins.gamification.storage.options import DatabaseOptions
from tests.gamification.conftest import MakeHarness
from tests.support.abuse_stream import START, Step, build_stream
from tests.support.redis import keys_under, redis_prefix, server_url, throwaway_redis, wait_until

GATE_LOG = "plugins.gamification.services.redis_gate"


class _Figures:
    """What PointsCollector reads, from the services alone."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def figures(self) -> Any:
        return read_figures(self.services)


async def _play(step: Step, services: Services, clock: FakeClock) -> str:
    clock.set(step.at)
    if step.engaged is not None:
        chat, author, responder = step.engaged
        await services.gate_state.engaged(chat, author, services.today(), responder)
        return "engaged"
    if isinstance(step.fact, ThanksFact):
        result: Any = await services.thanks.thank(step.fact)
    else:
        assert isinstance(step.fact, ActivityFact)
        result = await services.scoring.score_message(step.fact)
    return getattr(result, "value", "awarded")


async def test_redis_stopped_mid_stream_scoring_goes_on_and_returns_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stream = build_stream(seed=11, steps=240)
    clock = FakeClock(START)
    with throwaway_redis() as server:
        config = GamificationConfig.model_validate(
            {
                "anti_abuse": {
                    "backend": "redis",
                    "redis_url": server.url,
                    "key_prefix": "fallback:",
                    "redis_timeout_seconds": 0.2,
                    "redis_retry_seconds": 0.1,
                }
            }
        )
        services = await open_services(
            DatabaseOptions.of(tmp_path / "ledger.sqlite3"), config, clock=clock
        )
        state = services.gate_state
        assert isinstance(state, RedisGateState)
        state.server_time = False
        registry = CollectorRegistry()
        registry.register(PointsCollector(_Figures(services)))  # type: ignore[arg-type]
        try:
            with caplog.at_level(logging.INFO, logger=GATE_LOG):
                before = [await _play(step, services, clock) for step in stream[:80]]
                assert state.active == "redis"
                server.stop()
                during = [await _play(step, services, clock) for step in stream[80:160]]
                assert state.active == "memory"
                metrics = generate_latest(registry).decode()
                server.start()
                await wait_until(lambda: state.active == "redis")
                after = [await _play(step, services, clock) for step in stream[160:]]
            found = await keys_under(server.url, "fallback:")
        finally:
            await services.close()
    went = [r for r in caplog.records if r.name == GATE_LOG and "does not answer" in r.message]
    back = [r for r in caplog.records if r.name == GATE_LOG and "answers again" in r.message]
    assert len(went) == 1
    assert went[0].levelno == logging.WARNING
    assert len(back) == 1
    assert state.fallbacks == 1
    assert "gamification_anti_abuse_fallback_total 1.0" in metrics
    assert 'gamification_anti_abuse_backend{backend="memory"} 1.0' in metrics
    assert 'gamification_anti_abuse_backend{backend="redis"} 0.0' in metrics
    # Every step was judged in each phase, by the rules (memory remembers what it read).
    for phase in (before, during, after):
        counts = Counter(phase)
        assert counts["awarded"] > 5, counts
        assert sum(counts.values()) - counts["awarded"] - counts["engaged"] > 3, counts
    # Back on the new (empty) server: the state is written there again.
    assert any(":recent:" in key for key in found)


async def test_two_bots_on_one_redis_score_a_chat_through_the_dispatcher_as_one(
    tmp_path: Path, make_harness: MakeHarness
) -> None:
    """Real updates through each bot's Dispatcher, every other one to the other bot."""
    async with redis_prefix() as prefix:
        shared = {"backend": "redis", "redis_url": server_url(), "key_prefix": prefix}
        clock = FakeClock(START)
        alone = await make_harness(tmp_path / "alone.sqlite3", clock=clock)
        bots = [
            await make_harness(
                tmp_path / "shared.sqlite3", clock=clock, gamification={"anti_abuse": shared}
            )
            for _ in range(2)
        ]
        for bot in bots:
            assert bot.services.gate_state.backend == "redis"
            bot.services.gate_state.server_time = False  # type: ignore[attr-defined]
        updates = _conversation(clock)
        for step, (at, update) in enumerate(updates):
            clock.set(at)
            await alone.feed(update)
            await bots[step % 2].feed(update)
        for bot in bots:
            assert bot.services.gate_state.active == "redis"
        refusals = bots[0].services.stats.refusals + bots[1].services.stats.refusals
        assert refusals == alone.services.stats.refusals
        assert {"repeat", "burst", "too_short", "cooldown"} <= set(refusals)
        rows = "SELECT chat_id, user_id, amount, kind, reason, breakdown FROM transactions"
        expected = alone.rows(rows + " ORDER BY id")
        assert len(expected) > 15
        assert bots[0].rows(rows + " ORDER BY id") == expected


def _conversation(clock: FakeClock) -> list[tuple[Any, Any]]:
    """A group's morning as updates: talk, repeats, a burst, short replies, thanks, a photo
    sent twice, an update delivered twice."""
    rng = random.Random(8)
    factory = UpdateFactory(now=lambda: clock.now().timestamp())
    chat = UpdateFactory.group(-100, "Morning")
    people = [UpdateFactory.user(u, f"Person {u}") for u in (1, 2, 3, 4)]
    out: list[tuple[Any, Any]] = []
    t = START.timestamp()
    said: list[tuple[int, str, int]] = []
    for n in range(90):
        t += rng.choice((2, 5, 30, 70, 200))
        clock.set(START.fromtimestamp(t, START.tzinfo))
        who = rng.randrange(4)
        roll = rng.random()
        if roll < 0.5 or not said:
            text = sentence(rng)
            update = factory.message(chat, people[who], text)
        elif roll < 0.6:
            text = rng.choice([s for _, s, _ in said])
            update = factory.message(chat, people[who], text)
        elif roll < 0.7:
            _, _, target = said[-1]
            text = rng.choice(("ok", "yes!", "+", "thanks"))
            update = factory.message(chat, people[who], text, reply_to=target)
        elif roll < 0.75:
            for i in range(10):  # a burst
                at = START.fromtimestamp(t + i * 0.4, START.tzinfo)
                out.append((at, factory.message(chat, people[who], sentence(rng))))
            t += 5
            continue
        elif roll < 0.82:
            photo = {"photo": [{"file_id": "f", "file_unique_id": f"u{n % 3}", "width": 9,
                                "height": 9}]}  # fmt: skip
            update = factory.message(chat, people[who], content=photo)
            text = ""
        elif roll < 0.9:
            out.append(out[-1])  # delivered again
            continue
        else:
            text = rng.choice(("ok", "hm", "k"))
            update = factory.message(chat, people[who], text)
        assert update.message is not None
        said.append((who, text or "photo", update.message.message_id))
        out.append((START.fromtimestamp(t, START.tzinfo), update))
    return out
