"""`python -m bot run` killed with SIGKILL while it scores a stream of group messages.

The local Bot API server keeps serving every update from the offset the bot last sent, as
Telegram does. Whatever moment the kill lands on, each message ends up scored exactly once
after restarts: an update is confirmed only once handled, so none is lost, and one handed
out again is recognised by its idempotency key.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

from plugins.gamification.storage.sqlite.integrity import run_check
from tests.reliability.conftest import Show
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.live_bot import ROOT, TOKEN, WORDS, message, wait_for

MESSAGES = 280
KILLS = 6


def scored(db: Path) -> list[tuple[str, int]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT idem_key, COUNT(*) FROM transactions WHERE kind = 'activity' GROUP BY idem_key"
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


async def start(config: Path, cwd: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def test_killed_while_scoring_loses_no_message_and_scores_none_twice(
    tmp_path: Path, show: Show
) -> None:
    rng = random.Random(20261128)
    api = FakeBotAPI()
    url = await api.start()
    db = tmp_path / "bot.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\napi_server = "{url}"\n[storage]\ndatabase = "{db}"\n')
    in_flight_at_kill = []

    async def started() -> asyncio.subprocess.Process:
        """A bot process that has begun polling."""
        calls = len(api.sent("getUpdates"))
        process = await start(config, tmp_path)
        await wait_for(lambda: len(api.sent("getUpdates")) > calls, "the bot polling")
        return process

    def push(first: int, count: int) -> None:
        for n in range(first, first + count):
            person = {"id": 7_000 + n, "is_bot": False, "first_name": f"Person {n}"}
            # A sentence of each person's own: one template from many people is copying.
            words = random.Random(n).sample(WORDS, 10)
            text = f"Hello everyone, {' '.join(words)}"
            api.push("message", message(n + 1, person, text))

    try:
        wave = MESSAGES // (KILLS + 1)
        for kill in range(KILLS):
            process = await started()
            push(kill * wave, wave)
            # Somewhere while the wave is fetched, handled and committed.
            await asyncio.sleep(rng.uniform(0.0, 0.04))
            process.send_signal(signal.SIGKILL)
            await process.wait()
            in_flight_at_kill.append((kill + 1) * wave - len(scored(db)))
        process = await started()
        try:
            push(KILLS * wave, MESSAGES - KILLS * wave)
            await wait_for(lambda: len(scored(db)) == MESSAGES, "every message scored", 120)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 60) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    finally:
        await api.stop()
    rows = scored(db)
    assert len(rows) == MESSAGES
    assert all(count == 1 for _, count in rows)
    assert run_check(db).ok
    again = sum(1 for count in api.served.values() if count > 1)
    show(
        f"polling crash: {MESSAGES} messages, {KILLS} SIGKILLs (unscored at each kill:"
        f" {', '.join(map(str, in_flight_at_kill))}); {again} updates handed out again after"
        f" a kill; scored exactly once each: {len(rows)}; lost 0"
    )
