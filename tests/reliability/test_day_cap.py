"""Two processes awarding to the same accounts with a day's cap, on PostgreSQL and on one
SQLite file: the ledger decides the cap under the account's lock, so together they grant
exactly what one process would (14 awards of 7 under a cap of 100), never more."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.gamification import PointsEngine
from tests.support import postgres

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("cap_worker.py")
CHAT = -100_6060


@pytest.fixture(params=["postgresql", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    async with postgres.fresh_database("gamif_cap") as url:
        yield url


async def run_worker(ledger: str, run_id: str, count: int) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), ledger, run_id, str(count),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode().splitlines()


async def test_two_processes_never_pass_a_day_cap_together(ledger: str) -> None:
    # Made first, so the two workers do not race to create the schema.
    engine = await PointsEngine.open(ledger)
    await engine.close()
    first, second = await asyncio.gather(
        run_worker(ledger, "one", 20), run_worker(ledger, "two", 20)
    )
    lines = first + second
    granted = Counter(line.split()[2] for line in lines if line.startswith("A "))
    capped = Counter(line.split()[2] for line in lines if line.startswith("C "))
    assert granted == {"1": 14, "2": 14, "3": 14}, lines[:20]
    assert sum(capped.values()) == 120 - 42
    engine = await PointsEngine.open(ledger)
    try:
        for user in (1, 2, 3):
            assert (await engine.balance(CHAT, user)).balance == 98
        assert (await engine.check()).ok
    finally:
        await engine.close()
