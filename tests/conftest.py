"""Fixtures shared by every test: real SQLite files in a temporary folder, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plugins.gamification import FakeClock, LedgerPolicy, PointsEngine


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    # A Wednesday, so day, week and month windows all start on different days.
    return FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.fixture
async def engine(db_path: Path, clock: FakeClock) -> AsyncIterator[PointsEngine]:
    engine = await PointsEngine.open(db_path, clock=clock, policy=LedgerPolicy(max_amount=10_000))
    yield engine
    await engine.close()
