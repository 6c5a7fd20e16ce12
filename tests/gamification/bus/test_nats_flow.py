"""The whole bot with `[events] bus = "nats"`: another service's game.won (published by the
example script) becomes points exactly once, the bot's own events reach NATS, two bot
instances share the work, and a bot whose NATS is away starts and scores all the same."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from plugins.gamification.bus.events import Event
from plugins.gamification.bus.nats import MSG_ID, NatsBus, NatsOptions, subject_of
from plugins.gamification.domain.errors import DatabaseLockedError
from tests.support.nats import eventually, fresh_options, stream_state, until, with_nats
from tests.support.telegram_harness import START, TelegramHarness

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "publish_game_won.py"
CHAT_ID = -100
GAME_WON_POINTS = 20  # the default [gamification.events.rules] for game.won

MakeBot = Callable[..., Awaitable[TelegramHarness]]


async def run_example(options: NatsOptions, *args: str) -> tuple[int | None, str]:
    """The example, as the other service runs it: its own process, only nats-py."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *("--url", options.url, "--subject-prefix", options.subject_prefix, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode()


def bus_of(h: TelegramHarness) -> NatsBus:
    bus = h.runtime.bus
    assert isinstance(bus, NatsBus)
    return bus


@pytest.fixture
async def options() -> AsyncIterator[NatsOptions]:
    async with fresh_options() as options:
        yield options


@pytest.fixture
async def make_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeBot]:
    """`await make_bot(options)`: a started bot on a ledger of its own, on that NATS."""
    monkeypatch.chdir(tmp_path)
    bots: list[TelegramHarness] = []

    async def make(
        options: NatsOptions, storage: dict[str, Any] | None = None, **kwargs: Any
    ) -> TelegramHarness:
        h = TelegramHarness(tmp_path / f"bot{len(bots)}.sqlite3", **kwargs)
        h.config = with_nats(h.config, options)
        if storage:
            h.config = h.config.model_copy(
                update={"storage": h.config.storage.model_copy(update=storage)}
            )
        bots.append(h)
        return await h.start()

    yield make
    for h in reversed(bots):
        await h.close()
        h.assert_sent_html_valid()


async def test_a_game_won_from_another_service_becomes_points_exactly_once(
    make_bot: MakeBot, options: NatsOptions
) -> None:
    h = await make_bot(options)
    async with asyncio.timeout(10):
        await bus_of(h).wait_ready()
    match = ("--chat", str(CHAT_ID), "--user", "1", "--match", "m-7")

    code, output = await run_example(options, *match)
    assert code == 0, output
    assert "game.won:m-7: stored" in output
    code, output = await run_example(options, *match)
    assert code == 0, output
    assert "duplicate" in output  # within the window, JetStream dropped it

    async def awarded() -> bool:
        return await h.balance(CHAT_ID, 1) == GAME_WON_POINTS

    await until(awarded)
    # Past the window (here: the same message under another message id), the copy is
    # delivered; the ledger knows the event id and counts it once.
    client = await nats.connect(options.url)
    try:
        js = client.jetstream()
        stored = await js.get_msg(options.stream, 1)
        assert stored.data is not None
        await js.publish(
            subject_of(options.subject_prefix, "game.won"),
            stored.data,
            headers={MSG_ID: "a-copy-after-the-window"},
        )
    finally:
        await client.close()
    inbound = h.runtime.inbound
    assert inbound is not None
    await eventually(lambda: inbound.counts["duplicate"] == 1)
    assert await h.balance(CHAT_ID, 1) == GAME_WON_POINTS
    assert h.tx_count() == 1
    assert inbound.counts["awarded"] == 1

    # The bot's own events (this award's points.awarded) went out on NATS too.
    relay = h.runtime.relay
    assert relay is not None
    await relay.run_once()
    _, ids = await stream_state(options)
    assert ids.count("game.won:m-7") == 2
    assert "tx:1" in ids


async def test_the_example_says_in_one_line_when_there_is_no_stream(
    options: NatsOptions,
) -> None:
    code, output = await run_example(options, "--chat", "1", "--user", "2", "--match", "x")
    assert code == 1
    assert output.strip().startswith("No stream takes")
    assert "Traceback" not in output


async def test_the_example_says_in_one_line_when_nats_is_unreachable() -> None:
    away = NatsOptions(url="nats://127.0.0.1:1")
    code, output = await run_example(away, "--chat", "1", "--user", "2", "--match", "x")
    assert code == 1
    (line,) = output.strip().splitlines()
    assert line.startswith("NATS at nats://127.0.0.1:1 is not reachable: ")


async def test_two_bot_instances_share_inbound_events_and_announcements(
    make_bot: MakeBot, options: NatsOptions
) -> None:
    first, second = await make_bot(options), await make_bot(options)
    for h in (first, second):
        async with asyncio.timeout(10):
            await bus_of(h).wait_ready()
    wins = [
        Event(id=f"win-{n}", type="game.won", occurred_at=START, chat_id=CHAT_ID, user_id=n)
        for n in range(1, 31)
    ]
    level = Event(
        id="lvl-1",
        type="level.reached",
        occurred_at=START,
        chat_id=CHAT_ID,
        user_id=1,
        payload={"level": 2},
    )
    for item in [*wins, level]:
        await bus_of(first).publish(item)

    # Each event is handled by exactly one instance: one transaction per win across them.
    def awarded() -> int:
        return sum(
            h.runtime.inbound.counts["awarded"] for h in (first, second) if h.runtime.inbound
        )

    await eventually(lambda: awarded() == len(wins))
    await asyncio.sleep(0.2)
    assert awarded() == len(wins)
    assert first.tx_count() + second.tx_count() == len(wins)

    async def announced() -> bool:
        for h in (first, second):
            assert h.runtime.announcer is not None
            await h.runtime.announcer.flush()
        return bool(first.texts(CHAT_ID) + second.texts(CHAT_ID))

    await until(announced)
    await asyncio.sleep(0.2)
    for h in (first, second):
        assert h.runtime.announcer is not None
        await h.runtime.announcer.flush()
    (text,) = first.texts(CHAT_ID) + second.texts(CHAT_ID)
    assert "reached level <b>2</b>" in text


async def test_the_bot_starts_and_scores_while_nats_is_unreachable(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    away = NatsOptions(url="nats://127.0.0.1:1")
    with caplog.at_level(logging.WARNING, logger="plugins.gamification"):
        async with asyncio.timeout(10):
            h = await make_bot(away)
            receipt = await h.services.engine.award(CHAT_ID, 1, 5, key="msg:1")
        relay = h.runtime.relay
        assert relay is not None
        assert await relay.run_once() == 0
        assert relay.lag == 1
        assert not receipt.duplicate
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "not reachable" in warnings[0]


async def test_an_event_that_meets_a_locked_ledger_comes_back_and_counts_once(
    make_bot: MakeBot, options: NatsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No retrying in place: a write that meets the lock hands the event back at once.
    h = await make_bot(options, storage={"retry_seconds": 0})
    engine = h.services.engine
    real_award = engine.award
    calls = 0

    async def locked_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DatabaseLockedError("another process holds the ledger")
        return await real_award(*args, **kwargs)

    monkeypatch.setattr(engine, "award", locked_once)
    win = Event(id="win-1", type="game.won", occurred_at=START, chat_id=CHAT_ID, user_id=1)
    bad = Event(id="bad-1", type="game.won", occurred_at=START, chat_id=CHAT_ID)
    async with asyncio.timeout(10):
        await bus_of(h).wait_ready()
    await bus_of(h).publish(bad)
    await bus_of(h).publish(win)
    inbound = h.runtime.inbound
    assert inbound is not None

    async def awarded() -> bool:
        return await h.balance(CHAT_ID, 1) == GAME_WON_POINTS

    await until(awarded)
    assert calls == 2
    assert inbound.counts == {"malformed": 1, "deferred": 1, "awarded": 1}
    assert inbound.parked == 0  # the broker held it, not this process
    assert h.tx_count() == 1
