"""What the chat pages read and write, on both backends: whether a chat's pages are public
(with its audit row), whether the ledger knows a chat, the audit trail by chat, and an
account's amounts since a moment (the profile's chart)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from plugins.gamification import FakeClock, LedgerPolicy, PointsEngine
from plugins.gamification.domain.keys import message_key
from plugins.gamification.services.web_access import WebAccess
from plugins.gamification.storage.records import AdminAction
from tests.support.backends import LedgerBackend, make_backend

CHAT, OTHER, ALICE, BOB = -100, -200, 1, 2


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    """Both backends (the plugin's tests default to SQLite alone): these are new SQL."""
    backend = make_backend(request.param, tmp_path)
    yield backend
    backend.drop()


@pytest.fixture
async def engine(ledger_backend: LedgerBackend, clock: FakeClock) -> AsyncIterator[PointsEngine]:
    engine = await ledger_backend.open_engine(
        clock=clock, policy=LedgerPolicy(timezone="Europe/Madrid")
    )
    yield engine
    await engine.close()


async def test_pages_are_private_until_an_admin_makes_them_public(engine: PointsEngine) -> None:
    access = WebAccess(engine)
    assert not await access.is_public(CHAT)
    assert await access.set_public(CHAT, True, 9)
    assert not await access.set_public(CHAT, True, 9)  # no change, no second audit row
    assert await access.is_public(CHAT)
    assert not await access.is_public(OTHER)
    assert await access.set_public(CHAT, False, 8)
    assert not await access.is_public(CHAT)
    trail = await engine.store.audit_trail(CHAT, 10)
    assert [(e.actor_id, e.action, e.detail) for e in trail] == [
        (8, "web", "public off"),
        (9, "web", "public on"),
    ]
    assert trail[0].id > trail[1].id


async def test_the_audit_trail_is_the_chats_own_newest_first_and_bounded(
    engine: PointsEngine,
) -> None:
    store = engine.store
    for i in range(5):
        await store.record_admin_action(AdminAction(CHAT, 9, "freeze", ALICE, f"#{i}"), f"t{i}")
    await store.record_admin_action(AdminAction(OTHER, 9, "freeze", BOB, "other"), "t9")
    trail = await store.audit_trail(CHAT, 3)
    assert [e.detail for e in trail] == ["#4", "#3", "#2"]
    assert trail[0].target_id == ALICE
    assert trail[0].created_at == "t4"
    assert await store.audit_trail(-300, 3) == []


async def test_a_chat_is_known_once_it_has_an_account(engine: PointsEngine) -> None:
    assert not await engine.store.chat_known(CHAT)
    await engine.award(CHAT, ALICE, 5, key=message_key(CHAT, 1))
    assert await engine.store.chat_known(CHAT)
    assert not await engine.store.chat_known(OTHER)


async def test_daily_points_are_summed_per_local_day(
    engine: PointsEngine, clock: FakeClock
) -> None:
    # The clock starts at 12:00 UTC (13:00 in Madrid) on a Wednesday.
    today = clock.now().date()
    await engine.award(CHAT, ALICE, 5, key=message_key(CHAT, 1))
    await engine.award(CHAT, BOB, 50, key=message_key(CHAT, 2))
    clock.advance(10 * 3600 + 30 * 60)  # 23:30 local, 22:30 UTC: still today in Madrid
    await engine.award(CHAT, ALICE, 7, key=message_key(CHAT, 3))
    clock.advance(3600)  # 00:30 local tomorrow, 23:30 UTC today
    await engine.deduct(CHAT, ALICE, 2, key=message_key(CHAT, 4))
    series = await engine.daily_points(CHAT, ALICE, 90)
    assert len(series) == 90
    assert series[-1] == (today + timedelta(days=1), -2)
    assert series[-2] == (today, 12)
    assert sum(points for _, points in series) == 10
    assert series[0][0] == today + timedelta(days=1) - timedelta(days=89)
    assert await engine.daily_points(CHAT, BOB, 1) == [(today + timedelta(days=1), 0)]
    rows = await engine.store.amounts_since(CHAT, ALICE, "2000-01-01T00:00:00.000000Z")
    assert [amount for _, amount in rows] == [5, 7, -2]
    assert isinstance(series[0][0], date)
