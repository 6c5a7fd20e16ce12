"""The PostgreSQL batch writer gives exactly what the SQLite writer gives.

The same batches (awards, duplicates, conflicts, refusals, audits, reverts that revoke
achievements and their rewards, streaks over days) go through both writers with the same
clock; every outcome and every row of every table the writer touches must be equal, hashes
included. Then several connections write the same accounts at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.models import Receipt, TxKind
from plugins.gamification.storage.operations import Operation, Reversal
from plugins.gamification.storage.postgres.connect import connect
from plugins.gamification.storage.postgres.writer import PgBatchWriter
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.storage.sqlite import schema as sqlite_schema
from plugins.gamification.storage.sqlite.integrity import check_ledger
from plugins.gamification.storage.sqlite.writer import BatchWriter
from tests.support.postgres import fresh_database
from tests.support.postings import CHAT, effects, post

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with fresh_database("gamif_w") as dsn:
        yield dsn


BATCHES: list[list[Operation]] = [
    [
        post(1, 30, "m1"),
        post(1, 30, "m2"),  # 60 earned: first_steps unlocks, with a reward
        post(2, 1200, "m3"),  # centurion and first_steps at once
        post(1, 30, "m1"),  # the same request again: a duplicate
        post(1, 31, "m1"),  # the same key, other content: a conflict
        post(3, -5, "d1", TxKind.ADMIN),  # an overdraft
        post(3, 0, "z1"),  # zero
        post(3, 7, "t1", TxKind.THANKS, actor_id=1),
        post(
            3,
            20,
            "a1",
            TxKind.ADMIN,
            actor_id=9,
            reason="help",
            audit=AuditNote("award", "20 for help"),
        ),
    ],
    [
        Reversal(2, "r1", 9, "mistake", CHAT, AuditNote("revert", "#2")),  # revokes + compensates
        Reversal(2, "r2", 9, "again"),  # already reverted
        Reversal(999, "r3", 9, "nothing"),
        Reversal(2, "r1", 9, "mistake", CHAT, AuditNote("revert", "#2")),  # duplicate
        post(2, -100, "d2", TxKind.ADMIN, actor_id=9),
    ],
    [post(1, 5, "m4"), post(4, 5, "m5"), post(2, 3, "m6", TxKind.EVENT, tag="quiz")],
    [post(1, 5, "m7"), post(4, 5, "m8")],
    [post(1, 1000, "m9")],  # centurion for 1
    # A reward reverted by hand, then its cause (nothing left to compensate); then a cause
    # whose reward itself unlocked an achievement with a reward: both levels undone.
    [
        Reversal(20, "r4", 9, "reward back"),
        Reversal(19, "r5", 9, "cause back"),
        Reversal(15, "r6", 9, "streak back"),
    ],
]

TABLES = {
    "transactions": "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key,"
    " request_hash, actor_id, reason, breakdown, created_at, reverts_id, prev_hash, hash"
    " FROM transactions ORDER BY id",
    "accounts": "SELECT chat_id, user_id, balance, earned, seq, head_hash, updated_at,"
    " streak_day, streak_length, streak_best, achievements, activity_day, activity_today"
    " FROM accounts ORDER BY chat_id, user_id",
    "outbox": "SELECT id, event_id, type, chat_id, user_id, payload, occurred_at FROM outbox"
    " ORDER BY id",
    "progress": "SELECT chat_id, user_id, name, value FROM progress ORDER BY 1, 2, 3",
    "unlocks": "SELECT chat_id, user_id, achievement, unlocked_at, cause_tx_id, reward_tx_id,"
    " revoked_tx_id FROM unlocks ORDER BY 1, 2, 3",
    "admin_actions": "SELECT id, chat_id, actor_id, action, target_id, detail, created_at"
    " FROM admin_actions ORDER BY id",
}


def summary(outcome: object) -> object:
    if isinstance(outcome, Receipt):
        return ("receipt", outcome.duplicate, outcome.transaction)
    if isinstance(outcome, GamificationError):
        return (type(outcome).__name__, str(outcome))
    return outcome


def moments() -> Iterator[datetime]:
    for day in range(len(BATCHES)):
        yield START + timedelta(days=day, minutes=day)


def sqlite_run(folder: Path) -> tuple[list[list[object]], dict[str, list[tuple[Any, ...]]]]:
    conn = sqlite3.connect(folder / "ledger.sqlite3", isolation_level=None)
    sqlite_schema.migrate(conn)
    clock = moments()
    writer = BatchWriter(lambda: next(clock), effects())
    outcomes = [[summary(o) for o in writer.apply(conn, batch)] for batch in BATCHES]
    rows = {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}
    assert check_ledger(conn).ok
    conn.close()
    return outcomes, rows


async def test_same_outcomes_and_rows_as_sqlite(pg_dsn: str, tmp_path: Path) -> None:
    expected_outcomes, expected_rows = sqlite_run(tmp_path)
    clock = moments()
    writer = PgBatchWriter(lambda: next(clock), effects())
    conn = await connect(pg_dsn)
    try:
        outcomes = [[summary(o) for o in await writer.apply(conn, batch)] for batch in BATCHES]
        rows = {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in TABLES.items()}
    finally:
        await conn.close()
    assert outcomes == expected_outcomes
    for name, expected in expected_rows.items():
        assert rows[name] == expected, name
    # The batches exercised what they are meant to.
    kinds = [row[2] for row in rows["outbox"]]
    assert {"achievement.unlocked", "level.reached", "points.reverted"} <= set(kinds)
    assert kinds.count("achievement.revoked") >= 4
    assert any(row[2] == "thanks_received" for row in rows["progress"])
    assert len(rows["admin_actions"]) == 2


async def test_writers_of_several_connections_keep_chains_linear(pg_dsn: str) -> None:
    """Four connections award to the same ten accounts at once: ids follow commit order,
    every chain is linear, every balance is its sum, and no caller sees a lock error."""
    writers = [PgBatchWriter(lambda: datetime.now(UTC), effects()) for _ in range(4)]
    conns = [await connect(pg_dsn) for _ in writers]

    async def work(index: int) -> int:
        done = 0
        for batch in range(15):
            ops: list[Operation] = [
                post(user, 3, f"c{index}:{batch}:{user}") for user in range(10)
            ]
            for outcome in await writers[index].apply(conns[index], ops):
                assert isinstance(outcome, Receipt)
                assert not outcome.duplicate
                done += 1
        return done

    try:
        assert sum(await asyncio.gather(*(work(i) for i in range(4)))) == 600
        conn = conns[0]
        rows = await conn.fetch(
            "SELECT id, user_id, seq, amount, balance_after FROM transactions ORDER BY id"
        )
        assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
        seen: dict[int, tuple[int, int]] = {}
        for _id, user, seq, amount, after in rows:
            last_seq, last_balance = seen.get(user, (0, 0))
            assert (seq, after) == (last_seq + 1, last_balance + amount)
            seen[user] = (seq, after)
        balances = {r[0]: r[1] for r in await conn.fetch("SELECT user_id, balance FROM accounts")}
        assert balances == {user: balance for user, (_s, balance) in seen.items()}
    finally:
        for conn in conns:
            await conn.close()
