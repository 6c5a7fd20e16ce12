"""Fixtures shared by every test: real SQLite files in a temporary folder, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plugins.gamification import FakeClock, LedgerPolicy, PointsEngine
from tests.support.backends import BACKENDS, LedgerBackend, make_backend


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    # A Wednesday, so day, week and month windows all start on different days.
    return FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.fixture(params=sorted(BACKENDS))
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerBackend:
    """Each storage backend in turn, on a fresh ledger (for SQLite: the file at db_path).

    A test marked `only_backends(*names, reason=...)` is skipped on every other backend.
    """
    only = request.node.get_closest_marker("only_backends")
    if only is not None and request.param not in only.args:
        pytest.skip(f"{request.param}: {only.kwargs.get('reason', 'not for this backend')}")
    return make_backend(request.param, tmp_path)


@pytest.fixture
async def engine(ledger_backend: LedgerBackend, clock: FakeClock) -> AsyncIterator[PointsEngine]:
    """An engine on each backend: the ledger contract tests take it from here."""
    engine = await ledger_backend.open_engine(clock=clock, policy=LedgerPolicy(max_amount=10_000))
    yield engine
    await engine.close()
