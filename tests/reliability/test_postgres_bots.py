"""Two `python -m bot run` processes scoring into one PostgreSQL ledger, one of them killed.

Each process polls a local Bot API server of its own, and both servers hand out the same
group messages (as two bots in one group both see every message). One process is killed
with SIGKILL again and again while the other keeps running. Whatever the moments, every
message ends up in the shared ledger exactly once: both processes' awards for a message
carry the same idempotency key, the ledger's unique index and account locks decide between
them, and an unconfirmed update comes again after a restart.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import asyncpg

from tests.reliability.conftest import Show
from tests.support.cli import bot
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.live_bot import ROOT, TOKEN, WORDS, message, wait_for
from tests.support.postgres import fresh_database

MESSAGES = 160
KILLS = 3


async def scored(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT idem_key, COUNT(*) FROM transactions WHERE kind = 'activity' GROUP BY idem_key"
        )
    finally:
        await conn.close()
    return {row[0]: row[1] for row in rows}


async def start(config: Path, cwd: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    with log.open("ab") as errors:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config),
            cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip


async def test_two_bots_on_one_postgresql_ledger_count_each_message_once_under_kill(
    tmp_path: Path, show: Show
) -> None:
    rng = random.Random(20261205)
    async with fresh_database("gamif_bots") as dsn:
        apis = [FakeBotAPI(), FakeBotAPI()]
        configs = []
        for n, api in enumerate(apis):
            url = await api.start()
            config = tmp_path / f"config{n}.toml"
            config.write_text(f'[bot]\napi_server = "{url}"\n[storage]\nurl = "{dsn}"\n')
            configs.append(config)
        latest: dict[str, int] = {}

        async def started(n: int) -> asyncio.subprocess.Process:
            calls = len(apis[n].sent("getUpdates"))
            process = await start(configs[n], tmp_path, tmp_path / f"bot{n}.log")
            await wait_for(lambda: len(apis[n].sent("getUpdates")) > calls, f"bot {n} polling")
            return process

        def push(first: int, count: int) -> None:
            for i in range(first, first + count):
                person = {"id": 8_000 + i, "is_bot": False, "first_name": f"Person {i}"}
                text = f"Hello everyone, {' '.join(random.Random(i).sample(WORDS, 10))}"
                for api in apis:
                    api.push("message", message(i + 1, person, text))

        steady = await started(1)
        victim: asyncio.subprocess.Process | None = None
        try:
            wave = MESSAGES // (KILLS + 1)
            for kill in range(KILLS):
                victim = await started(0)
                push(kill * wave, wave)
                await asyncio.sleep(rng.uniform(0.0, 0.15))
                victim.send_signal(signal.SIGKILL)
                await victim.wait()
            victim = await started(0)
            push(KILLS * wave, MESSAGES - KILLS * wave)

            async def count() -> None:
                while len(latest) < MESSAGES:
                    latest.update(await scored(dsn))
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(count(), 120)
            # Both bots confirm every update: neither is left holding one back.
            await wait_for(
                lambda: all(api.confirmed() > len(api.served) for api in apis),
                "both bots confirming every update",
            )
            for process in (victim, steady):
                process.send_signal(signal.SIGTERM)
            for process in (victim, steady):
                assert await asyncio.wait_for(process.wait(), 60) == 0
            assert "Traceback" not in (tmp_path / "bot1.log").read_text()
        finally:
            for process in (victim, steady):
                if process is not None and process.returncode is None:
                    process.kill()
                    await process.wait()
            for api in apis:
                await api.stop()
        final = await scored(dsn)
        checked = await asyncio.to_thread(bot, "check", "--db", dsn, "--no-record", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(final) == MESSAGES
    assert set(final.values()) == {1}
    again = sum(1 for c in apis[0].served.values() if c > 1)
    show(
        f"two bots on one PostgreSQL ledger: {MESSAGES} messages seen by both, {KILLS}"
        f" SIGKILLs of one; {again} updates handed to it again; each scored once: {len(final)}"
    )
