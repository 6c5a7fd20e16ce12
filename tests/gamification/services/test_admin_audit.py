"""An admin change and its audit row commit in one ledger transaction, or neither does.

The failure is real: a trigger on admin_actions makes SQLite refuse the audit row after the
ledger row was written in the same transaction, as a full table or a bug in the audit write
would.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.testing import UpdateFactory
from plugins.gamification import PointsEngine, StorageError
from plugins.gamification.storage.records import AuditNote
from tests.gamification.conftest import MakeHarness

CHAT_ID = -100
CHAT = UpdateFactory.group(CHAT_ID, "Club")
BOB = UpdateFactory.user(2, "Bob", "bob")
MOD = UpdateFactory.user(9, "Mod", "mod")
FIXED = {"activity": {"points": {"text": 10}}}


def outsider(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def break_audit(path: Path) -> None:
    outsider(
        path,
        "CREATE TRIGGER no_audit BEFORE INSERT ON admin_actions"
        " BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END",
    )


def mend_audit(path: Path) -> None:
    outsider(path, "DROP TRIGGER no_audit")


def audit_rows(path: Path) -> list[tuple[Any, ...]]:
    return outsider(path, "SELECT chat_id, actor_id, action, target_id, detail FROM admin_actions")


async def test_an_adjustment_whose_audit_row_fails_is_not_committed(
    engine: PointsEngine, db_path: Path
) -> None:
    await engine.award(1, 2, 100, key="seed")
    break_audit(db_path)
    note = AuditNote("deduct", "-30 spam")
    with pytest.raises(StorageError):
        await engine.adjust(1, 2, -30, key="adm:1", actor_id=9, reason="spam", audit=note)
    assert (await engine.balance(1, 2)).balance == 100
    assert outsider(db_path, "SELECT COUNT(*) FROM transactions WHERE idem_key = 'adm:1'") == [
        (0,)
    ]
    assert audit_rows(db_path) == []

    mend_audit(db_path)
    first = await engine.adjust(1, 2, -30, key="adm:1", actor_id=9, reason="spam", audit=note)
    again = await engine.adjust(1, 2, -30, key="adm:1", actor_id=9, reason="spam", audit=note)
    assert not first.duplicate
    assert again.duplicate
    assert again.transaction == first.transaction
    assert (await engine.balance(1, 2)).balance == 70
    # A repeat of the key returns the first receipt and writes no second audit row.
    assert audit_rows(db_path) == [(1, 9, "deduct", 2, "-30 spam")]
    assert (await engine.check()).ok


async def test_a_revert_whose_audit_row_fails_is_not_committed(
    engine: PointsEngine, db_path: Path
) -> None:
    original = (await engine.award(1, 2, 100, key="seed")).transaction
    break_audit(db_path)
    note = AuditNote("revert", f"#{original.id} oops")
    with pytest.raises(StorageError):
        await engine.revert(original.id, key="adm:2", actor_id=9, reason="oops", audit=note)
    assert (await engine.balance(1, 2)).balance == 100
    assert audit_rows(db_path) == []

    mend_audit(db_path)
    await engine.revert(original.id, key="adm:2", actor_id=9, reason="oops", audit=note)
    repeat = await engine.revert(original.id, key="adm:2", actor_id=9, reason="oops", audit=note)
    assert repeat.duplicate
    assert (await engine.balance(1, 2)).balance == 0
    assert audit_rows(db_path) == [(1, 9, "revert", 2, f"#{original.id} oops")]


async def test_an_audited_change_in_a_batch_fails_alone(
    engine: PointsEngine, db_path: Path
) -> None:
    """The audit failure undoes its own operation only; the batch's others commit."""
    break_audit(db_path)
    results = await asyncio.gather(
        engine.award(1, 3, 10, key="plain:1"),
        engine.adjust(1, 2, 5, key="adm:3", actor_id=9, reason="", audit=AuditNote("award", "5")),
        engine.award(1, 4, 10, key="plain:2"),
        return_exceptions=True,
    )
    assert isinstance(results[1], StorageError)
    assert [(await engine.balance(1, u)).balance for u in (2, 3, 4)] == [0, 10, 10]
    assert (await engine.check()).ok


@pytest.mark.parametrize(
    ("command", "action"),
    [("/award @bob 50 great talk", "award"), ("/deduct @bob 5 spam", "deduct")],
)
async def test_admin_command_commits_change_and_audit_row_together(
    make_harness: MakeHarness, command: str, action: str
) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, gamification=FIXED)
    await h.say(CHAT, BOB, "hello everyone, good morning")
    before = h.tx_count()
    break_audit(h.database)
    update = h.factory.message(CHAT, MOD, command)
    await h.feed(update)
    assert h.tx_count() == before, "the change committed without its audit row"
    assert audit_rows(h.database) == []
    assert await h.balance(CHAT_ID, 2) == 10

    # Delivered again once the fault is gone: recorded once, audited once.
    mend_audit(h.database)
    await h.feed(update, update)
    assert h.tx_count() == before + 1
    delta = "50 great talk" if action == "award" else "-5 spam"
    assert audit_rows(h.database) == [(CHAT_ID, 9, action, 2, delta)]


async def test_freeze_and_its_audit_row_commit_together(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, gamification=FIXED)
    await h.say(CHAT, BOB, "hello everyone, good morning")
    break_audit(h.database)
    await h.say(CHAT, MOD, "/freeze @bob spam")
    assert h.rows("SELECT COUNT(*) FROM freezes") == [(0,)]
    assert not h.services.moderation.is_frozen(CHAT_ID, 2)

    mend_audit(h.database)
    await h.say(CHAT, MOD, "/freeze @bob spam")
    assert h.rows("SELECT chat_id, user_id FROM freezes") == [(CHAT_ID, 2)]
    assert h.services.moderation.is_frozen(CHAT_ID, 2)
    break_audit(h.database)
    await h.say(CHAT, MOD, "/unfreeze @bob")
    assert h.rows("SELECT COUNT(*) FROM freezes") == [(1,)], "unfrozen without an audit row"
    mend_audit(h.database)
    await h.say(CHAT, MOD, "/unfreeze @bob")
    assert h.rows("SELECT COUNT(*) FROM freezes") == [(0,)]
    assert audit_rows(h.database) == [
        (CHAT_ID, 9, "freeze", 2, "spam"),
        (CHAT_ID, 9, "unfreeze", 2, ""),
    ]
