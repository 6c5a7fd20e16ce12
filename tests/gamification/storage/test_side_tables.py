"""The storage protocol's named reads and writes beside the ledger: people, suspicions,
events, and the counts the thanks and engagement rules read."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from plugins.gamification import FakeClock, PointsEngine, TxKind
from plugins.gamification.domain.keys import engagement_key, message_key, thanks_key
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import KnownPerson, OutboxEvent
from plugins.gamification.storage.sqlite import sidetables

CHAT, ALICE, BOB, CAROL = -100, 1, 2, 3
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SINCE = "2026-03-01T00:00:00.000000Z"


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[PointsEngine]:
    engine = await PointsEngine.open(tmp_path / "ledger.sqlite3", clock=FakeClock(NOW))
    try:
        yield engine
    finally:
        await engine.close()


def event(event_id: str) -> OutboxEvent:
    return OutboxEvent(event_id, "abuse.suspected", CHAT, ALICE, '{"reason":"burst"}', SINCE)


async def test_a_suspicion_and_its_event_commit_together(
    engine: PointsEngine, tmp_path: Path
) -> None:
    store: LedgerStorage = engine.store
    await store.record_suspicion(CHAT, ALICE, "burst", "message 5", SINCE, event("ev-1"))
    assert query(tmp_path / "ledger.sqlite3", "SELECT user_id, reason FROM suspicions") == [
        (ALICE, "burst")
    ]
    [row] = await store.outbox_pending(10)
    assert (row.event_id, row.type, row.user_id) == ("ev-1", "abuse.suspected", ALICE)


async def test_a_published_event_waits_in_the_outbox_once(engine: PointsEngine) -> None:
    await engine.store.publish(event("ev-2"))
    await engine.store.publish(event("ev-2"))  # the same event again is a no-op
    assert [row.event_id for row in await engine.store.outbox_pending(10)] == ["ev-2"]


async def test_a_person_remembered_in_the_background_is_found_by_id_and_username(
    engine: PointsEngine,
) -> None:
    failed: list[int] = []
    engine.store.remember_person_later(
        KnownPerson(BOB, "Bobby", "Bob B", False), SINCE, on_failure=lambda: failed.append(1)
    )
    engine.store.remember_person_later(KnownPerson(BOB, "bob2", "Bob", False), NOW.isoformat())
    # The writer commits the background writes with the next batch.
    await engine.store.publish(event("flush"))
    await asyncio.sleep(0)
    assert await engine.store.known_person(BOB) == KnownPerson(BOB, "bob2", "Bob", False)
    assert await engine.store.known_username("BOB2") == KnownPerson(BOB, "bob2", "Bob", False)
    assert await engine.store.known_username("Bobby") is None
    assert await engine.store.known_person(CAROL) is None
    assert not failed


async def test_the_engagement_counts_read_the_ledger(engine: PointsEngine) -> None:
    for message in (1, 2, 3):
        await engine.award(CHAT, ALICE, 10, key=message_key(CHAT, message))
    await engine.award(CHAT, BOB, 4, key=message_key(CHAT, 4))
    await engine.award(CHAT, ALICE, 5, key=engagement_key(CHAT, 1), actor_id=BOB)
    await engine.award(CHAT, ALICE, 5, key=engagement_key(CHAT, 2), actor_id=BOB)
    await engine.award(CHAT, ALICE, 5, key=engagement_key(CHAT, 3), actor_id=CAROL)
    await engine.award(CHAT, BOB, 7, key=thanks_key(CHAT, 9), kind=TxKind.THANKS, actor_id=ALICE)
    store: LedgerStorage = engine.store
    assert await store.scored_messages(CHAT, ALICE, SINCE) == 3
    assert await store.scored_messages(CHAT, ALICE, "2026-03-03T00:00:00.000000Z") == 0
    assert sorted(await store.engaged_by(CHAT, ALICE, SINCE)) == [(BOB, 2), (CAROL, 1)]
    assert await store.engaged_pair(CHAT, ALICE, BOB, SINCE) == 2
    assert await store.engaged_pair(CHAT, BOB, ALICE, SINCE) == 0
    until = "2026-03-03T00:00:00.000000Z"
    assert sorted(await store.member_days(CHAT, SINCE, until)) == [4, 45]
    assert await store.member_days(CHAT, until, "2026-03-04T00:00:00.000000Z") == []
    assert await store.thanks_between(CHAT, BOB, ALICE, SINCE) == 1
    assert await store.thanks_given(CHAT, ALICE, SINCE) == 1


@pytest.mark.parametrize(
    "sql",
    [
        sidetables.COUNT_SCORED_MESSAGES,
        sidetables.ENGAGED_BY,
        sidetables.COUNT_ENGAGED_PAIR,
    ],
)
async def test_one_persons_activity_is_read_through_their_own_rows(
    engine: PointsEngine, tmp_path: Path, sql: str
) -> None:
    """The reads every answer and every new day make must not scan the chat: in a busy
    chat that is every recent row, milliseconds per read. The planner sees many other
    people's rows in the chat here (statistics gathered as on a ledger in use)."""
    for n in range(300):
        await engine.award(CHAT, 1000 + n % 60, 10, key=message_key(CHAT, n))
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    try:
        conn.execute("ANALYZE")
        arguments = (CHAT, ALICE, BOB, SINCE) if sql.count("?") == 4 else (CHAT, ALICE, SINCE)
        plan = " ".join(
            str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, arguments)
        )
    finally:
        conn.close()
    assert "transactions_account_activity (chat_id=? AND user_id=?" in plan, plan
