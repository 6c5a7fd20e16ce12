"""Fixtures shared by every test: real SQLite files in a temporary folder, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plugins.gamification import FakeClock, LedgerPolicy, PointsEngine
from tests.support.backends import LedgerBackend, make_backend


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    # A Wednesday, so day, week and month windows all start on different days.
    return FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    """Each storage backend in turn, on a fresh ledger (for SQLite: the file at db_path;
    for PostgreSQL: a database of its own, dropped afterwards).

    A test marked `only_backends(*names, reason=...)` is skipped on every other backend.
    Without a reachable PostgreSQL server its runs skip with the reason (and fail where
    GAMIFICATION_REQUIRE_SERVICES=1, as in CI).
    """
    only = request.node.get_closest_marker("only_backends")
    if only is not None and request.param not in only.args:
        pytest.skip(f"{request.param}: {only.kwargs.get('reason', 'not for this backend')}")
    backend = make_backend(request.param, tmp_path)
    yield backend
    backend.drop()


@pytest.fixture
async def engine(ledger_backend: LedgerBackend, clock: FakeClock) -> AsyncIterator[PointsEngine]:
    """An engine on each backend: the ledger contract tests take it from here."""
    engine = await ledger_backend.open_engine(clock=clock, policy=LedgerPolicy(max_amount=10_000))
    yield engine
    await engine.close()
