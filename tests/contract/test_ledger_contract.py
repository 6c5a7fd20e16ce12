"""The ledger contract of DESIGN.md, rule by rule, on real SQLite files."""

from __future__ import annotations

import asyncio
import decimal
import itertools
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from plugins.gamification import (
    Breakdown,
    EngineClosedError,
    FakeClock,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    LedgerPolicy,
    Multiplier,
    Period,
    PointsEngine,
    Receipt,
    RevertError,
    SchemaVersionError,
    Standing,
    TransactionNotFoundError,
    TxKind,
)
from plugins.gamification.domain.rules import MAX_FACTOR, apply_multipliers
from plugins.gamification.storage.hashing import chain_hash
from plugins.gamification.storage.sqlite.schema import GENESIS_HASH
from tests.support.backends import LedgerBackend

CHAT = -100_500
OTHER_CHAT = -100_600
ADMIN = 7
REPO = Path(__file__).resolve().parents[2]

Write = Callable[[PointsEngine, str], Awaitable[Receipt]]


def query(
    ledger: LedgerBackend, sql: str, params: tuple[object, ...] = ()
) -> list[tuple[Any, ...]]:
    """Run one statement on a plain connection of its own, as an outsider would."""
    return ledger.read(sql, params)


def tx_count(ledger: LedgerBackend) -> int:
    return int(query(ledger, "SELECT COUNT(*) FROM transactions")[0][0])


def assert_one_sentence(message: str) -> None:
    assert message
    assert "\n" not in message
    assert "Traceback" not in message
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message[:-1]), message


async def assert_balance_is_sum(
    engine: PointsEngine, ledger: LedgerBackend, chat: int, user: int
) -> int:
    """The cached balance equals the sum of the account's rows, seen three ways."""
    account = await engine.balance(chat, user)
    history = await engine.history(chat, user, limit=500)
    ((raw_sum, raw_count),) = query(
        ledger,
        "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM transactions"
        " WHERE chat_id = ? AND user_id = ?",
        (chat, user),
    )
    assert account.balance == sum(tx.amount for tx in history) == raw_sum
    assert account.tx_count == len(history) == raw_count
    if history:
        assert history[0].balance_after == account.balance
        cached = query(
            ledger, "SELECT balance FROM accounts WHERE chat_id = ? AND user_id = ?", (chat, user)
        )
        assert cached == [(account.balance,)]
    return account.balance


# -- 1. Balance = sum ------------------------------------------------------------------------


async def test_balance_equals_sum_after_every_kind_of_write(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    accounts = [(CHAT, 1), (CHAT, 2), (OTHER_CHAT, 1)]
    expected = dict.fromkeys(accounts, 0)

    async def after(receipt: Receipt, chat: int, user: int, delta: int) -> None:
        expected[(chat, user)] += delta
        assert receipt.balance == expected[(chat, user)]
        for c, u in accounts:
            assert await assert_balance_is_sum(engine, ledger_backend, c, u) == expected[(c, u)]

    a = await engine.award(CHAT, 1, 10, key="a")
    await after(a, CHAT, 1, 10)
    await after(await engine.award(CHAT, 2, 7, key="b"), CHAT, 2, 7)
    await after(await engine.award(OTHER_CHAT, 1, 3, key="c"), OTHER_CHAT, 1, 3)
    d = await engine.deduct(CHAT, 1, 4, key="d")
    await after(d, CHAT, 1, -4)
    await after(
        await engine.adjust(CHAT, 2, -5, key="e", actor_id=ADMIN, reason="fix"), CHAT, 2, -5
    )
    await after(await engine.adjust(CHAT, 2, 9, key="f", actor_id=ADMIN, reason="fix"), CHAT, 2, 9)
    await after(await engine.revert(a.transaction.id, key="g", actor_id=ADMIN), CHAT, 1, -10)
    await after(await engine.revert(d.transaction.id, key="h", actor_id=ADMIN), CHAT, 1, 4)
    await after(await engine.deduct(CHAT, 1, 6, key="i", force=True), CHAT, 1, -6)
    assert expected == {(CHAT, 1): -6, (CHAT, 2): 11, (OTHER_CHAT, 1): 3}
    assert (await engine.check()).ok


async def test_many_concurrent_writes_keep_balance_equal_to_sum(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    await asyncio.gather(
        *(engine.award(CHAT, i % 4, 1 + i % 9, key=f"bulk:{i}") for i in range(300))
    )
    await asyncio.gather(*(engine.deduct(CHAT, i % 4, 1, key=f"cut:{i}") for i in range(40)))
    total = 0
    for user in range(4):
        total += await assert_balance_is_sum(engine, ledger_backend, CHAT, user)
    assert total == sum(1 + i % 9 for i in range(300)) - 40
    assert (await engine.check()).ok


async def test_lifetime_earned_counts_credits_and_drops_reverted_ones(
    engine: PointsEngine,
) -> None:
    first = await engine.award(CHAT, 1, 10, key="a")
    second = await engine.award(CHAT, 1, 5, key="b")
    taken = await engine.deduct(CHAT, 1, 3, key="c")
    assert (await engine.balance(CHAT, 1)).earned == 15
    await engine.revert(second.transaction.id, key="d", actor_id=ADMIN)
    await engine.revert(taken.transaction.id, key="e", actor_id=ADMIN)
    account = await engine.balance(CHAT, 1)
    assert (account.balance, account.earned, account.tx_count) == (10, 10, 5)
    assert first.transaction.amount == 10
    assert (await engine.check()).ok


async def test_an_untouched_account_has_zero_balance(engine: PointsEngine) -> None:
    account = await engine.balance(CHAT, 404)
    assert (account.balance, account.earned, account.tx_count) == (0, 0, 0)
    assert await engine.history(CHAT, 404) == []


# -- 2. Idempotent ---------------------------------------------------------------------------


REPEATABLE: dict[str, Write] = {
    "award": lambda e, k: e.award(CHAT, 1, 5, key=k, reason="quiz"),
    "award-multiplied": lambda e, k: e.award(
        CHAT, 1, 5, key=k, multipliers=[Multiplier("weekend", Decimal("1.5"))]
    ),
    "deduct": lambda e, k: e.deduct(CHAT, 1, 3, key=k, reason="shop"),
    "deduct-forced": lambda e, k: e.deduct(CHAT, 1, 300, key=k, force=True),
    "adjust": lambda e, k: e.adjust(CHAT, 1, -2, key=k, actor_id=ADMIN, reason="typo"),
    "revert": lambda e, k: e.revert(1, key=k, actor_id=ADMIN, reason="mistake"),
}


@pytest.mark.parametrize("write", REPEATABLE.values(), ids=list(REPEATABLE))
async def test_same_key_twice_returns_the_first_receipt_and_changes_nothing(
    engine: PointsEngine, ledger_backend: LedgerBackend, clock: FakeClock, write: Write
) -> None:
    await engine.award(CHAT, 1, 20, key="setup")  # transaction #1
    first = await write(engine, "k")
    assert not first.duplicate
    before = (await engine.balance(CHAT, 1), tx_count(ledger_backend))

    clock.advance(timedelta(hours=3))
    again = await write(engine, "k")

    assert again.duplicate
    assert again.transaction == first.transaction
    assert again.balance == first.balance
    assert (await engine.balance(CHAT, 1), tx_count(ledger_backend)) == before


CONFLICTING: dict[str, Write] = {
    "other-amount": lambda e, k: e.award(CHAT, 1, 6, key=k, reason="quiz"),
    "other-user": lambda e, k: e.award(CHAT, 2, 5, key=k, reason="quiz"),
    "other-chat": lambda e, k: e.award(OTHER_CHAT, 1, 5, key=k, reason="quiz"),
    "other-reason": lambda e, k: e.award(CHAT, 1, 5, key=k, reason="poll"),
    "other-kind": lambda e, k: e.award(CHAT, 1, 5, key=k, reason="quiz", kind=TxKind.EVENT),
    "other-actor": lambda e, k: e.award(CHAT, 1, 5, key=k, reason="quiz", actor_id=ADMIN),
    "multiplied": lambda e, k: e.award(
        CHAT, 1, 5, key=k, reason="quiz", multipliers=[Multiplier("x", Decimal(1))]
    ),
    "deduct": lambda e, k: e.deduct(CHAT, 1, 5, key=k, reason="quiz"),
    "adjust": lambda e, k: e.adjust(CHAT, 1, 5, key=k, actor_id=None, reason="quiz"),
    "revert": lambda e, k: e.revert(1, key=k, actor_id=None, reason="quiz"),
}


@pytest.mark.parametrize("write", CONFLICTING.values(), ids=list(CONFLICTING))
async def test_same_key_with_different_content_is_a_conflict(
    engine: PointsEngine, ledger_backend: LedgerBackend, write: Write
) -> None:
    first = await engine.award(CHAT, 1, 5, key="k", reason="quiz")
    before = (
        await engine.balance(CHAT, 1),
        await engine.balance(CHAT, 2),
        tx_count(ledger_backend),
    )

    with pytest.raises(IdempotencyConflictError) as caught:
        await write(engine, "k")

    assert_one_sentence(str(caught.value))
    after = (
        await engine.balance(CHAT, 1),
        await engine.balance(CHAT, 2),
        tx_count(ledger_backend),
    )
    assert after == before
    assert (await engine.transaction(first.transaction.id)) == first.transaction


async def test_same_key_in_one_concurrent_batch_is_written_once(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    receipts = await asyncio.gather(
        *(engine.award(CHAT, 1, 5, key="burst", reason="x") for _ in range(20))
    )

    assert engine.store.stats.largest_batch >= 20  # they really shared one batch
    assert sum(not r.duplicate for r in receipts) == 1
    assert len({r.transaction for r in receipts}) == 1
    assert tx_count(ledger_backend) == 1
    assert (await engine.balance(CHAT, 1)).balance == 5


async def test_conflicting_key_in_one_concurrent_batch(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    results = await asyncio.gather(
        engine.award(CHAT, 1, 5, key="k"),
        engine.award(CHAT, 1, 6, key="k"),
        engine.award(CHAT, 1, 5, key="k"),
        engine.deduct(CHAT, 1, 5, key="k"),
        return_exceptions=True,
    )

    first, second, third, fourth = results
    assert isinstance(first, Receipt)
    assert not first.duplicate
    assert isinstance(second, IdempotencyConflictError)
    assert isinstance(third, Receipt)
    assert third.duplicate
    assert third.transaction == first.transaction
    assert isinstance(fourth, IdempotencyConflictError)
    assert tx_count(ledger_backend) == 1
    assert (await engine.balance(CHAT, 1)).balance == 5


async def test_a_refused_request_does_not_use_up_its_key(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    with pytest.raises(InsufficientBalanceError):
        await engine.deduct(CHAT, 1, 5, key="k")
    assert tx_count(ledger_backend) == 0

    receipt = await engine.award(CHAT, 1, 5, key="k")

    assert not receipt.duplicate
    assert receipt.balance == 5


# -- 3. Append-only --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE transactions SET amount = amount + 1000 WHERE id = 1",
        "UPDATE transactions SET reason = 'nothing to see'",
        "DELETE FROM transactions WHERE id = 2",
        "DELETE FROM transactions",
    ],
)
async def test_raw_update_and_delete_are_refused_by_triggers(
    engine: PointsEngine, ledger_backend: LedgerBackend, sql: str
) -> None:
    await engine.award(CHAT, 1, 5, key="a", reason="r")
    await engine.award(CHAT, 1, 6, key="b", reason="r")
    before = query(ledger_backend, "SELECT * FROM transactions ORDER BY id")

    with pytest.raises(ledger_backend.integrity_error, match="append-only"):
        ledger_backend.write(sql)

    assert query(ledger_backend, "SELECT * FROM transactions ORDER BY id") == before
    assert (await engine.check()).ok


async def test_revert_appends_a_compensating_linked_transaction(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    original = await engine.award(CHAT, 1, 10, key="a", reason="quiz")
    await engine.award(CHAT, 1, 4, key="b")

    revert = await engine.revert(
        original.transaction.id, key="r", actor_id=ADMIN, reason="cheated", chat_id=CHAT
    )

    tx = revert.transaction
    assert (tx.chat_id, tx.user_id, tx.kind, tx.amount) == (CHAT, 1, TxKind.REVERT, -10)
    assert (tx.reverts_id, tx.actor_id, tx.reason, tx.key) == (
        original.transaction.id,
        ADMIN,
        "cheated",
        "r",
    )
    assert tx.id > original.transaction.id
    assert revert.balance == 4
    # The original row is untouched: the correction is a new row.
    assert await engine.transaction(original.transaction.id) == original.transaction
    assert [t.id for t in await engine.history(CHAT, 1)] == [tx.id, 2, 1]
    assert tx_count(ledger_backend) == 3
    assert (await engine.check()).ok


async def test_revert_of_a_deduction_gives_the_points_back(engine: PointsEngine) -> None:
    await engine.award(CHAT, 1, 10, key="a")
    taken = await engine.deduct(CHAT, 1, 7, key="b")

    revert = await engine.revert(taken.transaction.id, key="r", actor_id=ADMIN)

    assert revert.transaction.amount == 7
    assert revert.balance == 10


async def test_revert_of_spent_points_may_go_below_zero(engine: PointsEngine) -> None:
    award = await engine.award(CHAT, 1, 10, key="a")
    await engine.deduct(CHAT, 1, 8, key="b")

    revert = await engine.revert(award.transaction.id, key="r", actor_id=ADMIN)

    assert revert.balance == -8
    assert (await engine.check()).ok


async def test_a_transaction_is_reverted_at_most_once(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    award = await engine.award(CHAT, 1, 10, key="a")
    first = await engine.revert(award.transaction.id, key="r1", actor_id=ADMIN)

    with pytest.raises(RevertError) as caught:
        await engine.revert(award.transaction.id, key="r2", actor_id=ADMIN)

    assert f"#{first.transaction.id}" in str(caught.value)
    assert_one_sentence(str(caught.value))
    assert tx_count(ledger_backend) == 2
    assert (await engine.balance(CHAT, 1)).balance == 0


async def test_two_concurrent_reverts_of_one_transaction(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    award = await engine.award(CHAT, 1, 10, key="a")

    results = await asyncio.gather(
        *(engine.revert(award.transaction.id, key=f"r{i}", actor_id=ADMIN) for i in range(5)),
        return_exceptions=True,
    )

    assert sum(isinstance(r, Receipt) for r in results) == 1
    assert sum(isinstance(r, RevertError) for r in results) == 4
    assert tx_count(ledger_backend) == 2
    assert (await engine.balance(CHAT, 1)).balance == 0


async def test_a_revert_cannot_be_reverted(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    award = await engine.award(CHAT, 1, 10, key="a")
    revert = await engine.revert(award.transaction.id, key="r1", actor_id=ADMIN)

    with pytest.raises(RevertError) as caught:
        await engine.revert(revert.transaction.id, key="r2", actor_id=ADMIN)

    assert_one_sentence(str(caught.value))
    assert tx_count(ledger_backend) == 2


async def test_revert_of_an_unknown_transaction(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    await engine.award(CHAT, 1, 10, key="a")

    with pytest.raises(TransactionNotFoundError) as caught:
        await engine.revert(999, key="r", actor_id=ADMIN)

    assert_one_sentence(str(caught.value))
    assert tx_count(ledger_backend) == 1


async def test_revert_scoped_to_another_chat_is_not_found(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    award = await engine.award(CHAT, 1, 10, key="a")

    with pytest.raises(TransactionNotFoundError):
        await engine.revert(award.transaction.id, key="r", actor_id=ADMIN, chat_id=OTHER_CHAT)
    assert tx_count(ledger_backend) == 1

    # The refusal did not use up the key, and the right chat may revert it.
    revert = await engine.revert(award.transaction.id, key="r", actor_id=ADMIN, chat_id=CHAT)
    assert revert.balance == 0


# -- 4. Tamper-evident: the hash chain -------------------------------------------------------


async def test_each_row_links_to_the_previous_hash_of_its_account(
    engine: PointsEngine, ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    award = await engine.award(CHAT, 1, 10, key="a", reason='«quoted» "text" ✓')
    for i in range(12):
        clock.advance(61)
        await engine.award(CHAT if i % 3 else OTHER_CHAT, i % 2, 1 + i, key=f"k{i}")
    await engine.deduct(CHAT, 1, 2, key="d", actor_id=ADMIN)
    await engine.revert(award.transaction.id, key="r", actor_id=ADMIN)

    rows = query(
        ledger_backend,
        "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id,"
        " reason, breakdown, created_at, reverts_id, prev_hash, hash FROM transactions"
        " ORDER BY id",
    )
    heads: dict[tuple[int, int], tuple[int, str]] = {}
    for row in rows:
        (tx_id, chat, user, seq, amount, balance_after, kind, key, actor, reason,
         breakdown, created_at, reverts_id, prev_hash, stored) = row  # fmt: skip
        last_seq, last_hash = heads.get((chat, user), (0, GENESIS_HASH))
        assert seq == last_seq + 1
        assert prev_hash == last_hash
        assert stored == chain_hash(
            prev_hash, tx_id=tx_id, chat_id=chat, user_id=user, seq=seq, amount=amount,
            balance_after=balance_after, kind=kind, idem_key=key, actor_id=actor,
            reason=reason, breakdown=breakdown, created_at=created_at, reverts_id=reverts_id,
        )  # fmt: skip
        heads[(chat, user)] = (seq, stored)
    assert len(heads) == 4
    cached = query(ledger_backend, "SELECT chat_id, user_id, seq, head_hash FROM accounts")
    assert {(c, u): (s, h) for c, u, s, h in cached} == heads
    assert len({row[-1] for row in rows}) == len(rows)


async def test_the_first_row_of_every_account_links_to_genesis(engine: PointsEngine) -> None:
    first = await engine.award(CHAT, 1, 5, key="a")
    second = await engine.award(CHAT, 1, 5, key="b")
    other = await engine.award(CHAT, 2, 5, key="c")

    assert GENESIS_HASH == "0" * 64
    assert first.transaction.prev_hash == GENESIS_HASH
    assert other.transaction.prev_hash == GENESIS_HASH
    assert second.transaction.prev_hash == first.transaction.hash
    assert re.fullmatch(r"[0-9a-f]{64}", first.transaction.hash)
    history = await engine.history(CHAT, 1)
    assert [t.hash for t in history] == [second.transaction.hash, first.transaction.hash]


# -- 5. Durable when acknowledged ------------------------------------------------------------


async def test_an_acknowledged_award_is_visible_to_another_connection(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    receipt = await engine.award(CHAT, 1, 5, key="a", reason="durable")

    rows = query(
        ledger_backend, "SELECT id, amount, idem_key, hash FROM transactions WHERE idem_key = 'a'"
    )
    assert rows == [(receipt.transaction.id, 5, "a", receipt.transaction.hash)]
    assert query(ledger_backend, "SELECT balance FROM accounts") == [(5,)]


async def test_every_acknowledged_award_of_a_batch_is_visible(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    receipts = await asyncio.gather(
        *(engine.award(CHAT, i % 5, 2, key=f"b{i}") for i in range(200))
    )

    keys = {row[0] for row in query(ledger_backend, "SELECT idem_key FROM transactions")}
    assert keys == {r.transaction.key for r in receipts}
    assert query(ledger_backend, "SELECT SUM(balance) FROM accounts") == [(400,)]


KILLED_WRITER = """
import asyncio, sys
from plugins.gamification import PointsEngine

async def main():
    engine = await PointsEngine.open(sys.argv[1])
    i = 0
    while True:
        batch = [engine.award(-1, u, 1 + i % 7, key=f"kill:{i}:{u}") for u in range(3)]
        for receipt in await asyncio.gather(*batch):
            print(receipt.transaction.key, flush=True)
        i += 1

asyncio.run(main())
"""


async def test_a_killed_process_loses_no_acknowledged_transaction(
    ledger_backend: LedgerBackend,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_WRITER, str(ledger_backend.location),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        while len(acknowledged) < 150:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "the writer process stopped on its own"
            acknowledged.append(line.decode().strip())
    finally:
        proc.kill()  # SIGKILL: no chance to close or flush anything
        await proc.wait()

    keys = {row[0] for row in query(ledger_backend, "SELECT idem_key FROM transactions")}
    assert set(acknowledged) <= keys
    report = ledger_backend.check()
    assert report.ok, report.to_text()
    assert report.quick_check == "ok"


# -- 7. Exact arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "factors", "expected"),
    [
        (10, [], 10),
        (5, ["1.5"], 8),  # 7.5 -> 8
        (3, ["0.5"], 2),  # 1.5 -> 2
        (1, ["0.5"], 1),  # 0.5 -> 1
        (2, ["1.25"], 3),  # 2.5 -> 3
        (5, ["0.1"], 1),  # 0.5 -> 1
        (5, ["0.099"], 0),  # 0.495 -> 0
        (7, ["1.3"], 9),  # 9.1 -> 9
        (7, ["1.5", "1.2"], 13),  # 12.6 -> 13
        (10, ["1.5", "2"], 30),
        (1, ["0.5", "3"], 2),  # rounded once: 1.5 -> 2, not round(0.5) * 3 = 3
        (3, ["0.5", "0.5"], 1),  # 0.75 -> 1
        (3, ["0.5", "0.5", "4"], 3),
        (1, ["1000"], 1000),
        (1, ["0.001"], 0),
        (-5, ["1.5"], -8),  # -7.5 -> -8: away from zero
        (-3, ["0.5"], -2),  # -1.5 -> -2
        # 1.4999…97 (32 digits) -> 1: the exact product, not one first rounded to 28 digits.
        pytest.param(3, ["0.4999999999999999999999999999999"], 1, id="31-digit-factor"),
    ],
)
def test_apply_multipliers_rounds_once_halves_away_from_zero(
    base: int, factors: list[str], expected: int
) -> None:
    multipliers = [Multiplier(f"m{i}", Decimal(f)) for i, f in enumerate(factors)]

    breakdown = apply_multipliers(base, multipliers)

    assert breakdown.result == expected
    assert type(breakdown.result) is int
    assert breakdown.base == base
    assert breakdown.multipliers == tuple(multipliers)


def test_apply_multipliers_does_not_depend_on_the_ambient_decimal_context() -> None:
    # Another library in the process may lower the thread's decimal precision.
    with decimal.localcontext() as context:
        context.prec = 4
        breakdown = apply_multipliers(12_345, [Multiplier("weekend", Decimal("1.5"))])
    assert breakdown.result == 18_518  # 18517.5 -> 18518


@pytest.mark.parametrize(
    "factor",
    [
        Decimal(0),
        Decimal("-0"),
        Decimal("-1.5"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        MAX_FACTOR + Decimal("0.0001"),
        Decimal(10**6),
        1.5,
        2,
        "1.5",
        None,
    ],
    ids=repr,
)
def test_apply_multipliers_refuses_bad_factors(factor: Any) -> None:
    good = Multiplier("good", Decimal(2))
    with pytest.raises(InvalidAmountError) as caught:
        apply_multipliers(10, [good, Multiplier("bad", factor)])
    assert "'bad'" in str(caught.value)
    assert_one_sentence(str(caught.value))


async def test_breakdown_is_stored_with_the_transaction_and_read_back(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    multipliers = (
        Multiplier("weekend", Decimal("1.50")),
        Multiplier("streak", Decimal("1.2")),
    )

    receipt = await engine.award(CHAT, 1, 7, key="a", multipliers=multipliers)

    expected = Breakdown(base=7, multipliers=multipliers, result=13)
    assert receipt.transaction.amount == 13
    assert receipt.transaction.breakdown == expected
    (read,) = await engine.history(CHAT, 1)
    assert read.breakdown == expected
    assert all(type(m.factor) is Decimal for m in read.breakdown.multipliers)
    assert str(read.breakdown.multipliers[0].factor) == "1.50"
    assert read.breakdown.describe() == "7 x weekend 1.50 x streak 1.2 = 13"
    fetched = await engine.transaction(receipt.transaction.id)
    assert fetched is not None
    assert fetched.breakdown == expected
    ((stored,),) = query(ledger_backend, "SELECT breakdown FROM transactions")
    assert json.loads(stored) == {
        "base": 7,
        "multipliers": [["weekend", "1.50"], ["streak", "1.2"]],
        "result": 13,
    }


async def test_a_plain_award_stores_a_trivial_breakdown(engine: PointsEngine) -> None:
    receipt = await engine.award(CHAT, 1, 7, key="a")
    taken = await engine.deduct(CHAT, 1, 3, key="b")

    assert receipt.transaction.breakdown == Breakdown(base=7, result=7)
    assert receipt.transaction.breakdown.describe() == "7"
    assert taken.transaction.breakdown == Breakdown(base=-3, result=-3)


# -- No balance below zero unless allowed ----------------------------------------------------


async def test_deduct_below_zero_is_refused(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    await engine.award(CHAT, 1, 5, key="a")

    with pytest.raises(InsufficientBalanceError) as caught:
        await engine.deduct(CHAT, 1, 6, key="b")

    assert_one_sentence(str(caught.value))
    assert (await engine.balance(CHAT, 1)).balance == 5
    assert tx_count(ledger_backend) == 1
    assert (await engine.deduct(CHAT, 1, 5, key="c")).balance == 0


async def test_deduct_from_an_empty_account_is_refused(engine: PointsEngine) -> None:
    with pytest.raises(InsufficientBalanceError):
        await engine.deduct(CHAT, 1, 1, key="a")
    assert (await engine.balance(CHAT, 1)).tx_count == 0


async def test_forced_deduct_may_go_below_zero(engine: PointsEngine) -> None:
    await engine.award(CHAT, 1, 5, key="a")

    receipt = await engine.deduct(CHAT, 1, 8, key="b", force=True)

    assert receipt.balance == -3
    # Once negative, an unforced deduct is still refused.
    with pytest.raises(InsufficientBalanceError):
        await engine.deduct(CHAT, 1, 1, key="c")
    assert (await engine.check()).ok


async def test_negative_adjust_below_zero_needs_force(engine: PointsEngine) -> None:
    await engine.award(CHAT, 1, 5, key="a")

    with pytest.raises(InsufficientBalanceError):
        await engine.adjust(CHAT, 1, -6, key="b", actor_id=ADMIN, reason="fix")
    receipt = await engine.adjust(CHAT, 1, -6, key="b", actor_id=ADMIN, reason="fix", force=True)

    assert receipt.balance == -1
    assert receipt.transaction.kind is TxKind.ADMIN


async def test_policy_may_allow_negative_balances(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    engine = await ledger_backend.open_engine(
        clock=clock, policy=LedgerPolicy(allow_negative=True)
    )
    try:
        receipt = await engine.deduct(CHAT, 1, 4, key="a")
        adjusted = await engine.adjust(CHAT, 1, -3, key="b", actor_id=ADMIN, reason="fix")
    finally:
        await engine.close()
    assert receipt.balance == -4
    assert adjusted.balance == -7


# -- close() ---------------------------------------------------------------------------------


async def test_close_commits_queued_work_then_refuses_calls(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    await engine.award(CHAT, 1, 1, key="before")
    tasks = [
        asyncio.create_task(engine.award(CHAT, i % 3, 2, key=f"queued:{i}")) for i in range(50)
    ]
    await asyncio.sleep(0)  # every task has queued its award; none is committed yet
    assert tx_count(ledger_backend) == 1

    await engine.close()

    receipts = await asyncio.gather(*tasks)
    assert all(not r.duplicate for r in receipts)
    assert tx_count(ledger_backend) == 51
    assert query(ledger_backend, "SELECT SUM(balance) FROM accounts") == [(101,)]

    refused: list[Callable[[], Awaitable[object]]] = [
        lambda: engine.award(CHAT, 1, 1, key="after"),
        lambda: engine.deduct(CHAT, 1, 1, key="after"),
        lambda: engine.adjust(CHAT, 1, 1, key="after", actor_id=ADMIN, reason="x"),
        lambda: engine.revert(1, key="after", actor_id=ADMIN),
        lambda: engine.balance(CHAT, 1),
        lambda: engine.history(CHAT, 1),
        lambda: engine.transaction(1),
        lambda: engine.leaderboard(CHAT, Period.ALL),
        lambda: engine.standing(CHAT, 1, Period.ALL),
    ]
    for call in refused:
        with pytest.raises(EngineClosedError) as caught:
            await call()
        assert_one_sentence(str(caught.value))
    assert tx_count(ledger_backend) == 51
    await engine.close()  # a second close is harmless


async def test_reopening_carries_on_the_same_chains(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    async with await ledger_backend.open_engine(clock=clock) as engine:
        first = await engine.award(CHAT, 1, 5, key="a")
    async with await ledger_backend.open_engine(clock=clock) as engine:
        again = await engine.award(CHAT, 1, 5, key="a")
        second = await engine.award(CHAT, 1, 6, key="b")
        report = await engine.check()

    assert again.duplicate
    assert again.transaction == first.transaction
    assert second.transaction.prev_hash == first.transaction.hash
    assert (second.transaction.id, second.balance) == (2, 11)
    assert report.ok


async def test_a_second_writer_on_the_same_file_is_never_overwritten(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    """The writer keeps the account rows it wrote; a commit by another connection (the CLI
    beside the running bot, a second process) must make it read them afresh."""
    async with (
        await ledger_backend.open_engine(clock=clock) as bot,
        await ledger_backend.open_engine(clock=clock) as other,
    ):
        receipts = []
        for n in range(6):
            writer = bot if n % 2 == 0 else other
            receipts.append(await writer.award(CHAT, 1, n + 1, key=f"k{n}"))
        # A change beside the chain (the achievements column) made by an outsider survives.
        ledger_backend.write(
            "UPDATE accounts SET achievements = 'x' WHERE chat_id = ? AND user_id = ?",
            (CHAT, 1),
        )
        last = await bot.award(CHAT, 1, 10, key="k6")
        report = await bot.check()

    assert [r.transaction.seq for r in receipts] == [1, 2, 3, 4, 5, 6]
    for earlier, later in itertools.pairwise(receipts):
        assert later.transaction.prev_hash == earlier.transaction.hash
    assert last.transaction.prev_hash == receipts[-1].transaction.hash
    assert last.balance == sum(range(1, 7)) + 10
    assert query(ledger_backend, "SELECT achievements FROM accounts") == [("x",)]
    assert report.ok


async def test_refused_ops_in_a_batch_leave_later_awards_on_the_right_row(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    """Refused ops (a key reused for something else, an overdraft) between accepted ones of
    the same account must not leave the writer believing in rows that were never written.
    (Ops that fail after writing are covered statement by statement in test_faults.)"""
    await engine.award(CHAT, 2, 5, key="first")
    results = await asyncio.gather(
        engine.award(CHAT, 2, 1, key="a"),
        engine.award(CHAT, 2, 2, key="first"),
        engine.deduct(CHAT, 2, 1_000, key="too-much"),
        engine.award(CHAT, 2, 3, key="b"),
        return_exceptions=True,
    )
    assert isinstance(results[1], IdempotencyConflictError)
    assert isinstance(results[2], InsufficientBalanceError)
    after = await engine.award(CHAT, 2, 4, key="c")
    assert after.balance == 5 + 1 + 3 + 4
    await assert_balance_is_sum(engine, ledger_backend, CHAT, 2)
    assert (await engine.check()).ok


# -- Leaderboards and standings --------------------------------------------------------------


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def lines(*pairs: tuple[int, int]) -> tuple[Standing, ...]:
    return tuple(Standing(rank, user, points) for rank, (user, points) in enumerate(pairs, 1))


async def test_leaderboard_periods_are_calendar_windows(
    engine: PointsEngine, clock: FakeClock
) -> None:
    now = clock.now()
    assert now == utc(2026, 11, 25, 12)  # a Wednesday
    clock.set(utc(2026, 10, 31, 23, 59, 59))
    await engine.award(CHAT, 1, 100, key="last-month")
    clock.set(utc(2026, 11, 1))
    await engine.award(CHAT, 2, 50, key="month-start")
    clock.set(utc(2026, 11, 22, 23, 59, 59))
    await engine.award(CHAT, 3, 40, key="last-sunday")
    clock.set(utc(2026, 11, 23))
    await engine.award(CHAT, 4, 30, key="monday")
    clock.set(datetime(2026, 11, 24, 23, 59, 59, 999_999, tzinfo=UTC))
    await engine.award(CHAT, 5, 25, key="yesterday")
    clock.set(utc(2026, 11, 25))
    await engine.award(CHAT, 6, 20, key="midnight")
    await engine.award(OTHER_CHAT, 6, 1000, key="other-chat")
    clock.set(now)
    await engine.award(CHAT, 7, 10, key="noon")

    day = await engine.leaderboard(CHAT, Period.DAY)
    week = await engine.leaderboard(CHAT, Period.WEEK)
    month = await engine.leaderboard(CHAT, Period.MONTH)
    everything = await engine.leaderboard(CHAT, Period.ALL)

    assert (day.chat_id, day.period) == (CHAT, Period.DAY)
    assert day.lines == lines((6, 20), (7, 10))
    assert week.lines == lines((4, 30), (5, 25), (6, 20), (7, 10))
    assert month.lines == lines((2, 50), (3, 40), (4, 30), (5, 25), (6, 20), (7, 10))
    assert everything.lines == lines(
        (1, 100), (2, 50), (3, 40), (4, 30), (5, 25), (6, 20), (7, 10)
    )
    assert await engine.standing(CHAT, 1, Period.ALL) == Standing(1, 1, 100)
    assert await engine.standing(CHAT, 1, Period.MONTH) is None
    assert await engine.standing(CHAT, 5, Period.WEEK) == Standing(2, 5, 25)
    assert await engine.standing(CHAT, 5, Period.DAY) is None
    assert await engine.standing(CHAT, 7, Period.DAY) == Standing(2, 7, 10)
    assert await engine.standing(OTHER_CHAT, 6, Period.DAY) == Standing(1, 6, 1000)

    clock.set(utc(2026, 11, 30, 0, 0, 1))  # a new week in the same month
    assert (await engine.leaderboard(CHAT, Period.DAY)).lines == ()
    assert (await engine.leaderboard(CHAT, Period.WEEK)).lines == ()
    assert (await engine.leaderboard(CHAT, Period.MONTH)).lines == month.lines
    clock.set(utc(2026, 12, 1, 0, 0, 1))  # a new month
    assert (await engine.leaderboard(CHAT, Period.MONTH)).lines == ()
    assert (await engine.leaderboard(CHAT, Period.ALL)).lines == everything.lines


async def test_period_points_net_deductions_and_reverts(
    engine: PointsEngine, clock: FakeClock
) -> None:
    clock.set(utc(2026, 11, 2))
    await engine.award(CHAT, 1, 50, key="old")
    clock.set(utc(2026, 11, 25, 9))
    gift = await engine.award(CHAT, 1, 10, key="gift")
    await engine.award(CHAT, 2, 8, key="b")
    await engine.deduct(CHAT, 1, 3, key="spent")
    await engine.award(CHAT, 3, 6, key="c")
    await engine.revert(gift.transaction.id, key="undo", actor_id=ADMIN)

    day = await engine.leaderboard(CHAT, Period.DAY)
    assert day.lines == lines((2, 8), (3, 6), (1, -3))
    everything = await engine.leaderboard(CHAT, Period.ALL)
    assert everything.lines == lines((1, 47), (2, 8), (3, 6))
    assert await engine.standing(CHAT, 1, Period.MONTH) == Standing(1, 1, 47)


async def test_leaderboard_limit(engine: PointsEngine) -> None:
    await asyncio.gather(
        *(engine.award(CHAT, user, user, key=f"u{user}") for user in range(1, 21))
    )

    top5 = await engine.leaderboard(CHAT, Period.ALL, limit=5)
    assert top5.lines == lines((20, 20), (19, 19), (18, 18), (17, 17), (16, 16))
    assert len((await engine.leaderboard(CHAT, Period.WEEK, limit=50)).lines) == 20
    assert (await engine.leaderboard(CHAT, Period.DAY, limit=1)).lines == lines((20, 20))
    # A user below the cut still has a standing.
    assert await engine.standing(CHAT, 1, Period.ALL) == Standing(20, 1, 1)


async def test_ties_are_listed_in_user_order_and_share_the_better_standing(
    engine: PointsEngine,
) -> None:
    await engine.award(CHAT, 30, 10, key="a")
    await engine.award(CHAT, 10, 10, key="b")
    await engine.award(CHAT, 20, 15, key="c")
    await engine.award(CHAT, 40, 5, key="d")

    for period in Period:
        board = await engine.leaderboard(CHAT, period)
        assert [(line.user_id, line.points) for line in board.lines] == [
            (20, 15),
            (10, 10),
            (30, 10),
            (40, 5),
        ]
        assert await engine.standing(CHAT, 20, period) == Standing(1, 20, 15)
        assert await engine.standing(CHAT, 10, period) == Standing(2, 10, 10)
        assert await engine.standing(CHAT, 30, period) == Standing(2, 30, 10)
        assert await engine.standing(CHAT, 40, period) == Standing(4, 40, 5)


async def test_leaderboard_ranks_ties_like_standing(engine: PointsEngine) -> None:
    """A tied user must not read one rank on the board and another from standing()."""
    await engine.award(CHAT, 1, 15, key="a")
    await engine.award(CHAT, 2, 10, key="b")
    await engine.award(CHAT, 3, 10, key="c")
    await engine.award(CHAT, 4, 5, key="d")

    for period in Period:
        board = await engine.leaderboard(CHAT, period)
        for line in board.lines:
            assert await engine.standing(CHAT, line.user_id, period) == line, period
        assert [line.rank for line in board.lines] == [1, 2, 2, 4]


async def test_standing_agrees_with_the_board_around_zero_totals(
    engine: PointsEngine,
) -> None:
    """Someone at zero is not on the board, so they must not push a negative total down."""
    await engine.award(CHAT, 1, 10, key="a")
    await engine.award(CHAT, 2, 5, key="b")
    await engine.deduct(CHAT, 2, 5, key="c")  # back to zero: off the board
    await engine.deduct(CHAT, 3, 3, key="d", force=True)

    for period in Period:
        board = await engine.leaderboard(CHAT, period)
        assert [(line.user_id, line.points) for line in board.lines] == [(1, 10), (3, -3)]
        assert await engine.standing(CHAT, 2, period) is None
        for line in board.lines:
            assert await engine.standing(CHAT, line.user_id, period) == line, period


async def test_day_boundary_follows_the_policy_timezone(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    berlin = await ledger_backend.open_engine(
        clock=clock, policy=LedgerPolicy(timezone="Europe/Berlin")
    )
    try:
        clock.set(utc(2026, 11, 24, 22, 59, 59))  # 23:59:59 in Berlin on the 24th
        await berlin.award(CHAT, 1, 5, key="berlin-yesterday")
        clock.set(utc(2026, 11, 24, 23))  # midnight in Berlin: the 25th has begun
        await berlin.award(CHAT, 2, 7, key="berlin-today")
        clock.set(utc(2026, 11, 25, 12))

        berlin_day = await berlin.leaderboard(CHAT, Period.DAY)
        assert berlin.period_start(Period.DAY) == "2026-11-24T23:00:00.000000Z"
    finally:
        await berlin.close()
    async with await ledger_backend.open_engine(clock=clock) as in_utc:
        utc_day = await in_utc.leaderboard(CHAT, Period.DAY)
        assert in_utc.period_start(Period.DAY) == "2026-11-25T00:00:00.000000Z"

    assert berlin_day.lines == lines((2, 7))
    assert utc_day.lines == ()


@pytest.mark.parametrize(
    ("now", "period", "start"),
    [
        # Clocks went back on Sunday 2026-10-25: that week began in summer time.
        (utc(2026, 10, 25, 12), Period.WEEK, utc(2026, 10, 18, 22)),
        (utc(2026, 10, 28, 12), Period.WEEK, utc(2026, 10, 25, 23)),
        (utc(2026, 10, 28, 12), Period.MONTH, utc(2026, 9, 30, 22)),
        (utc(2026, 11, 25, 12), Period.MONTH, utc(2026, 10, 31, 23)),
        (utc(2026, 3, 29, 12), Period.DAY, utc(2026, 3, 28, 23)),  # spring forward day
        (utc(2026, 3, 30, 12), Period.DAY, utc(2026, 3, 29, 22)),
    ],
)
async def test_period_windows_in_berlin_across_daylight_saving(
    ledger_backend: LedgerBackend, clock: FakeClock, now: datetime, period: Period, start: datetime
) -> None:
    engine = await ledger_backend.open_engine(
        clock=clock, policy=LedgerPolicy(timezone="Europe/Berlin")
    )
    try:
        clock.set(start - timedelta(microseconds=1))
        await engine.award(CHAT, 1, 5, key="just-before")
        clock.set(start)
        await engine.award(CHAT, 2, 7, key="just-inside")
        clock.set(now)
        board = await engine.leaderboard(CHAT, period)
    finally:
        await engine.close()
    assert board.lines == lines((2, 7))


# -- Schema ----------------------------------------------------------------------------------


async def test_user_version_is_the_schema_version(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    assert ledger_backend.schema_version() == ledger_backend.latest_version


@pytest.mark.only_backends("sqlite", reason="the journal mode is SQLite's own")
async def test_the_sqlite_ledger_runs_in_wal_mode(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    assert query(ledger_backend, "PRAGMA journal_mode") == [("wal",)]


async def test_a_newer_schema_is_refused_on_open(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    async with await ledger_backend.open_engine(clock=clock) as engine:
        await engine.award(CHAT, 1, 5, key="a")
    ledger_backend.set_schema_version(ledger_backend.latest_version + 1)

    with pytest.raises(SchemaVersionError) as caught:
        await ledger_backend.open_engine(clock=clock)

    assert_one_sentence(str(caught.value))
    assert str(ledger_backend.latest_version + 1) in str(caught.value)
    assert ledger_backend.schema_version() == ledger_backend.latest_version + 1
    assert query(ledger_backend, "SELECT idem_key, amount FROM transactions") == [("a", 5)]
