"""NATS stopped and started again under awarding: awarding never waits for it, events wait
in the outbox, and afterwards every one of them is in the stream, once, in commit order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plugins.gamification.bus.nats import NatsBus
from tests.support.nats import (
    eventually,
    nats_options,
    stream_state,
    throwaway_server,
    until,
    with_nats,
)
from tests.support.telegram_harness import TelegramHarness

CHAT_ID = -100
# Past the relay's breaker cooldown; the breaker runs on the bot's (fake) clock.
COOLDOWN = 60.0


async def test_nats_down_and_back_loses_no_event_and_never_blocks_awarding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with throwaway_server() as server:
        await server.stop()  # away before the bot even starts
        options = nats_options(url=server.url)
        h = TelegramHarness(tmp_path / "bot.sqlite3")
        h.config = with_nats(h.config, options)
        async with asyncio.timeout(10):
            await h.start()
        try:
            engine = h.services.engine
            relay = h.runtime.relay
            bus = h.runtime.bus
            assert relay is not None
            assert isinstance(bus, NatsBus)
            awarded = 0

            async def award(count: int) -> None:
                nonlocal awarded
                for _ in range(count):
                    async with asyncio.timeout(5):  # never waits for NATS
                        await engine.award(CHAT_ID, awarded % 5 + 1, 3, key=f"msg:{awarded}")
                    awarded += 1

            def outbox() -> list[str]:
                return [row[0] for row in h.rows("SELECT event_id FROM outbox ORDER BY id")]

            async def drained() -> bool:
                # Time passes for the relay's breaker, which may have opened just now.
                h.clock.advance(COOLDOWN)
                return await engine.store.outbox_lag() == 0

            await award(30)
            await relay.run_once()
            assert relay.delivered == 0
            assert await engine.store.outbox_lag() == len(outbox()) >= 30

            await server.start()
            await until(drained, within=20)
            first = outbox()
            assert (await stream_state(options))[1] == first

            # Stopped in the middle of awarding, started again. Awarding goes on
            # while the server shuts down and for a while after it is gone, so
            # some events are bound to wait in the outbox however fast the
            # relay was before.
            server_gone = asyncio.Event()

            async def load() -> None:
                while not server_gone.is_set():
                    await award(1)
                    await asyncio.sleep(0)
                await award(30)

            loading = asyncio.create_task(load())
            await eventually(lambda: awarded >= 45)
            await server.stop()
            server_gone.set()
            await loading
            total = awarded
            assert total >= 75
            assert await engine.store.outbox_lag() > 0
            await server.start()
            await until(drained, within=20)
            everything = outbox()
            assert len(everything) >= total
            count, ids = await stream_state(options)
            assert ids == everything  # all arrived, none twice, in commit order
            assert count == len(everything)
            assert h.tx_count() == total
        finally:
            await h.close()
