"""Bad input is refused with one clear sentence and nothing half-written."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from plugins.gamification import (
    DatabaseCorruptError,
    DatabaseLockedError,
    FakeClock,
    GamificationError,
    InvalidAmountError,
    LedgerPolicy,
    Multiplier,
    PointsEngine,
    RequestError,
    StorageError,
    TransactionNotFoundError,
)
from plugins.gamification.engine import MAX_KEY_LENGTH, MAX_REASON_LENGTH
from plugins.gamification.storage.sqlite.integrity import run_check
from tests.support.ledger_checks import assert_one_sentence

CHAT = -100_700
ADMIN = 7

Call = Callable[[PointsEngine], Awaitable[object]]


def tx_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
async def seeded(engine: PointsEngine, db_path: Path) -> PointsEngine:
    """The engine fixture (max_amount 10,000) with one account already holding 50 points."""
    await engine.award(CHAT, 1, 50, key="seed")
    assert tx_count(db_path) == 1
    return engine


async def assert_refused_and_nothing_written(
    engine: PointsEngine, path: Path, call: Call, error: type[GamificationError]
) -> GamificationError:
    before = (await engine.balance(CHAT, 1), tx_count(path))
    with pytest.raises(error) as caught:
        await call(engine)
    assert_one_sentence(caught.value)
    assert (await engine.balance(CHAT, 1), tx_count(path)) == before
    return caught.value


BAD_AMOUNTS: list[Any] = [
    0,
    -1,
    -10_000,
    1.5,
    5.0,
    float("nan"),
    float("inf"),
    "5",
    "",
    True,
    False,
    Decimal(5),
    Decimal("2.5"),
    None,
    10_001,
    10**30,
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_award_refuses_bad_amounts(seeded: PointsEngine, db_path: Path, amount: Any) -> None:
    await assert_refused_and_nothing_written(
        seeded,
        db_path,
        lambda e: e.award(CHAT, 1, amount, key="bad"),
        InvalidAmountError,
    )
    # Nothing was half-written: the key is still free for a good request.
    assert not (await seeded.award(CHAT, 1, 1, key="bad")).duplicate


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_deduct_refuses_bad_amounts(
    seeded: PointsEngine, db_path: Path, amount: Any
) -> None:
    await assert_refused_and_nothing_written(
        seeded,
        db_path,
        lambda e: e.deduct(CHAT, 1, amount, key="bad", force=True),
        InvalidAmountError,
    )


@pytest.mark.parametrize(
    "delta",
    [0, 1.5, -1.5, "5", "-5", True, False, Decimal(5), None, 10_001, -10_001, 10**30, -(10**30)],
    ids=repr,
)
async def test_adjust_refuses_bad_deltas(seeded: PointsEngine, db_path: Path, delta: Any) -> None:
    await assert_refused_and_nothing_written(
        seeded,
        db_path,
        lambda e: e.adjust(CHAT, 1, delta, key="bad", actor_id=ADMIN, reason="x", force=True),
        InvalidAmountError,
    )


async def test_amounts_at_the_limits_are_accepted(seeded: PointsEngine) -> None:
    assert (await seeded.award(CHAT, 1, 10_000, key="a")).balance == 10_050
    assert (await seeded.deduct(CHAT, 1, 10_000, key="b")).balance == 50
    assert (
        await seeded.adjust(CHAT, 1, -10_000, key="c", actor_id=1, reason="", force=True)
    ).balance == -9_950
    assert (await seeded.award(CHAT, 1, 1, key="d")).balance == -9_949


@pytest.mark.parametrize(
    "multipliers",
    [
        [Multiplier("weekend", 1.5)],  # type: ignore[arg-type]  # a float, not a Decimal
        [Multiplier("weekend", Decimal(0))],
        [Multiplier("weekend", Decimal(-2))],
        [Multiplier("weekend", Decimal("NaN"))],
        [Multiplier("weekend", Decimal(1001))],
        [Multiplier("weekend", Decimal("0.01"))],  # 10 x 0.01 rounds to 0 points
        [Multiplier("a", Decimal(1000)), Multiplier("b", Decimal(2))],  # over max_amount
    ],
    ids=["float", "zero", "negative", "nan", "too-big", "rounds-to-zero", "over-maximum"],
)
async def test_award_refuses_bad_multipliers(
    seeded: PointsEngine, db_path: Path, multipliers: list[Multiplier]
) -> None:
    await assert_refused_and_nothing_written(
        seeded,
        db_path,
        lambda e: e.award(CHAT, 1, 10, key="bad", multipliers=multipliers),
        InvalidAmountError,
    )


def writes_with(key: Any = "k", reason: Any = "") -> list[Call]:
    return [
        lambda e: e.award(CHAT, 1, 5, key=key, reason=reason),
        lambda e: e.deduct(CHAT, 1, 5, key=key, reason=reason),
        lambda e: e.adjust(CHAT, 1, 5, key=key, actor_id=ADMIN, reason=reason),
        lambda e: e.revert(1, key=key, actor_id=ADMIN, reason=reason),
    ]


WRITE_NAMES = ["award", "deduct", "adjust", "revert"]


@pytest.mark.parametrize("write", range(4), ids=WRITE_NAMES)
@pytest.mark.parametrize("key", ["", "k" * (MAX_KEY_LENGTH + 1), None, 42, b"bytes"], ids=repr)
async def test_bad_keys_are_refused(
    seeded: PointsEngine, db_path: Path, write: int, key: Any
) -> None:
    error = await assert_refused_and_nothing_written(
        seeded, db_path, writes_with(key=key)[write], RequestError
    )
    assert not isinstance(error, InvalidAmountError)


@pytest.mark.parametrize("write", range(4), ids=WRITE_NAMES)
@pytest.mark.parametrize("reason", ["r" * (MAX_REASON_LENGTH + 1), None, 42], ids=repr)
async def test_bad_reasons_are_refused(
    seeded: PointsEngine, db_path: Path, write: int, reason: Any
) -> None:
    await assert_refused_and_nothing_written(
        seeded, db_path, writes_with(reason=reason)[write], RequestError
    )


@pytest.mark.parametrize("write", range(4), ids=WRITE_NAMES)
async def test_key_and_reason_at_their_limits_are_accepted(
    seeded: PointsEngine, write: int
) -> None:
    call = writes_with(key="k" * MAX_KEY_LENGTH, reason="r" * MAX_REASON_LENGTH)[write]
    receipt: Any = await call(seeded)
    assert receipt.transaction.key == "k" * MAX_KEY_LENGTH
    assert receipt.transaction.reason == "r" * MAX_REASON_LENGTH


@pytest.mark.parametrize("tx_id", [0, -1, True, "1", 1.0, None], ids=repr)
async def test_revert_refuses_a_malformed_id(
    seeded: PointsEngine, db_path: Path, tx_id: Any
) -> None:
    await assert_refused_and_nothing_written(
        seeded, db_path, lambda e: e.revert(tx_id, key="r", actor_id=ADMIN), RequestError
    )


@pytest.mark.parametrize("tx_id", [2, 999, 2**62])
async def test_revert_of_an_unknown_transaction(
    seeded: PointsEngine, db_path: Path, tx_id: int
) -> None:
    error = await assert_refused_and_nothing_written(
        seeded,
        db_path,
        lambda e: e.revert(tx_id, key="r", actor_id=ADMIN),
        TransactionNotFoundError,
    )
    assert f"#{tx_id}" in str(error)


@pytest.mark.parametrize(
    ("chat_id", "user_id"),
    [("abc", 1), (1.5, 1), (None, 1), (CHAT, "u")],
    ids=repr,
)
async def test_award_refuses_ids_that_are_not_whole_numbers(
    seeded: PointsEngine, db_path: Path, chat_id: Any, user_id: Any
) -> None:
    await assert_refused_and_nothing_written(
        seeded, db_path, lambda e: e.award(chat_id, user_id, 5, key="bad-id"), RequestError
    )
    report = await seeded.check()
    assert report.ok, report.to_text()


# -- Broken files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        random.Random(20261125).randbytes(64 * 1024),
        b"this is a text file, not a database\n" * 200,
        b"SQLite format 2\x00" + bytes(4080),
    ],
    ids=["random-bytes", "text", "wrong-header"],
)
async def test_a_file_that_is_not_sqlite_is_refused(
    db_path: Path, clock: FakeClock, content: bytes
) -> None:
    await asyncio.to_thread(db_path.write_bytes, content)

    with pytest.raises(DatabaseCorruptError) as caught:
        await PointsEngine.open(db_path, clock=clock)

    assert_one_sentence(caught.value)
    assert str(db_path) in str(caught.value)
    assert await asyncio.to_thread(db_path.read_bytes) == content
    with pytest.raises(DatabaseCorruptError) as checked:
        run_check(db_path)
    assert_one_sentence(checked.value)


def test_checking_a_missing_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    with pytest.raises(StorageError) as caught:
        run_check(missing)
    assert_one_sentence(caught.value)
    assert not missing.exists()


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(600)
"""


async def test_a_database_write_locked_by_another_process(db_path: Path, clock: FakeClock) -> None:
    engine = await PointsEngine.open(
        db_path, clock=clock, policy=LedgerPolicy(max_amount=10_000), busy_timeout=0.3
    )
    proc: asyncio.subprocess.Process | None = None
    try:
        first = await engine.award(CHAT, 1, 10, key="before-lock")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(db_path), stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"locked"

        with pytest.raises(DatabaseLockedError) as caught:
            await asyncio.wait_for(engine.award(CHAT, 1, 5, key="during-lock"), 60)
        assert_one_sentence(caught.value)
        assert str(db_path) in str(caught.value)
        # Readers are not blocked by the other process's write lock (WAL).
        assert (await engine.balance(CHAT, 1)).balance == 10
        # A second engine cannot even migrate while the lock is held.
        with pytest.raises(DatabaseLockedError):
            await asyncio.wait_for(PointsEngine.open(db_path, clock=clock, busy_timeout=0.3), 60)

        proc.kill()
        await proc.wait()

        second = await asyncio.wait_for(engine.award(CHAT, 1, 5, key="during-lock"), 60)
        assert not second.duplicate
        assert second.balance == 15
        assert second.transaction.prev_hash == first.transaction.hash
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await engine.close()
    assert tx_count(db_path) == 2
    report = run_check(db_path)
    assert report.ok, report.to_text()


async def test_every_refusal_is_a_gamification_error_with_one_sentence(
    seeded: PointsEngine,
) -> None:
    award = await seeded.award(CHAT, 1, 5, key="a")
    await seeded.revert(award.transaction.id, key="r", actor_id=ADMIN)
    calls: list[Call] = [
        lambda e: e.award(CHAT, 1, 0, key="x"),
        lambda e: e.award(CHAT, 1, 5, key=""),
        lambda e: e.award(CHAT, 1, 6, key="a"),  # conflict
        lambda e: e.deduct(CHAT, 1, 5_000, key="x"),  # insufficient
        lambda e: e.revert(award.transaction.id, key="x", actor_id=ADMIN),  # second revert
        lambda e: e.revert(3, key="x", actor_id=ADMIN),  # revert of a revert
        lambda e: e.revert(77, key="x", actor_id=ADMIN),  # unknown
    ]
    for call in calls:
        with pytest.raises(GamificationError) as caught:
            await call(seeded)
        assert_one_sentence(caught.value)
