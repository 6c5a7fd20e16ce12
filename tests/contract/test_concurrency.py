"""Concurrency tests for the group-commit ledger writer: exact sums, batching, close, readers."""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
from collections import defaultdict
from typing import Any

import pytest

from plugins.gamification import (
    EngineClosedError,
    FakeClock,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    LedgerPolicy,
    Period,
    PointsEngine,
    Receipt,
    RevertError,
    TransactionNotFoundError,
    TxKind,
)
from plugins.gamification.storage.operations import MAX_BALANCE
from plugins.gamification.storage.sqlite.store import LedgerStore
from tests.support.backends import LedgerBackend

CHAT = -100_1000


def db_rows(ledger: LedgerBackend) -> list[tuple[Any, ...]]:
    """Every ledger row as (id, chat, user, amount, kind, key, reverts), on its own connection."""
    return ledger.read(
        "SELECT id, chat_id, user_id, amount, kind, idem_key, reverts_id FROM transactions"
        " ORDER BY id"
    )


def db_balances(ledger: LedgerBackend) -> dict[tuple[int, int], int]:
    return {(chat, user): balance for chat, user, balance in ledger.cached_balances()}


async def assert_clean(engine: PointsEngine) -> None:
    report = await engine.check()
    assert report.ok, report.to_text()
    assert report.quick_check == "ok"


async def test_thousand_concurrent_awards_on_one_account(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    amounts = [1 + (i * 7919) % 97 for i in range(1000)]
    receipts = await asyncio.gather(
        *(
            engine.award(CHAT, 42, amount, key=f"one-account:{i}", reason="load")
            for i, amount in enumerate(amounts)
        )
    )

    assert all(isinstance(r, Receipt) and not r.duplicate for r in receipts)
    assert len({r.transaction.id for r in receipts}) == 1000
    assert len({r.transaction.seq for r in receipts}) == 1000
    assert {r.transaction.seq for r in receipts} == set(range(1, 1001))
    for receipt, amount, i in zip(receipts, amounts, range(1000), strict=True):
        assert receipt.transaction.amount == amount
        assert receipt.transaction.key == f"one-account:{i}"
    # Each receipt's running total is the sum of everything at or before its place in the chain.
    by_seq = sorted(receipts, key=lambda r: r.transaction.seq)
    running = 0
    for receipt in by_seq:
        running += receipt.transaction.amount
        assert receipt.balance == running
    assert running == sum(amounts)

    balance = await engine.balance(CHAT, 42)
    assert balance.balance == sum(amounts)
    assert balance.earned == sum(amounts)
    assert balance.tx_count == 1000
    assert len(db_rows(ledger_backend)) == 1000

    stats = engine.store.stats
    assert stats.failed_batches == 0
    assert stats.operations == 1000
    assert stats.batches < 1000, "the writer committed one transaction per award"
    assert stats.largest_batch > 1
    print(f"1,000 awards: {stats.batches} batches, largest {stats.largest_batch}")
    await assert_clean(engine)


async def test_ten_thousand_awards_with_concurrent_reverts(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    rng = random.Random(20261125)
    accounts = [(CHAT - (a % 3), 1000 + a) for a in range(100)]
    plan = [(accounts[i % 100], rng.randint(1, 500)) for i in range(10_000)]
    rng.shuffle(plan)

    to_revert: asyncio.Queue[Receipt | None] = asyncio.Queue()
    awarded: dict[int, Receipt] = {}
    reverted: dict[int, Receipt] = {}

    async def award(i: int) -> None:
        (chat, user), amount = plan[i]
        receipt = await engine.award(chat, user, amount, key=f"bulk:{i}", reason=f"#{i}")
        awarded[i] = receipt
        if i % 10 == 0:
            to_revert.put_nowait(receipt)

    async def reverter() -> None:
        while (receipt := await to_revert.get()) is not None:
            tx = receipt.transaction
            reverted[tx.id] = await engine.revert(
                tx.id, key=f"undo:{tx.id}", actor_id=7, reason="bulk undo", chat_id=tx.chat_id
            )

    reverters = [asyncio.create_task(reverter()) for _ in range(8)]
    results = await asyncio.gather(*(award(i) for i in range(10_000)), return_exceptions=True)
    for _ in reverters:
        to_revert.put_nowait(None)
    revert_results = await asyncio.gather(*reverters, return_exceptions=True)

    assert [r for r in results if r is not None] == []
    assert [r for r in revert_results if r is not None] == []
    assert len(awarded) == 10_000
    assert len(reverted) == 1_000

    model: dict[tuple[int, int], int] = defaultdict(int)
    earned: dict[tuple[int, int], int] = defaultdict(int)
    count: dict[tuple[int, int], int] = defaultdict(int)
    for i, ((chat, user), amount) in enumerate(plan):
        model[(chat, user)] += amount
        earned[(chat, user)] += amount
        count[(chat, user)] += 1
        if i % 10 == 0:
            model[(chat, user)] -= amount
            earned[(chat, user)] -= amount
            count[(chat, user)] += 1

    for original_id, receipt in reverted.items():
        tx = receipt.transaction
        assert tx.kind is TxKind.REVERT
        assert tx.reverts_id == original_id
        assert not receipt.duplicate
    for i, receipt in awarded.items():
        (chat, user), amount = plan[i]
        assert (receipt.transaction.chat_id, receipt.transaction.user_id) == (chat, user)
        assert receipt.transaction.amount == amount
        if i % 10 == 0:
            assert reverted[receipt.transaction.id].transaction.amount == -amount

    for chat, user in accounts:
        balance = await engine.balance(chat, user)
        assert balance.balance == model[(chat, user)], (chat, user)
        assert balance.earned == earned[(chat, user)], (chat, user)
        assert balance.tx_count == count[(chat, user)], (chat, user)
    assert db_balances(ledger_backend) == dict(model)

    rows = db_rows(ledger_backend)
    assert len(rows) == 11_000
    assert len({row[5] for row in rows}) == 11_000
    assert engine.store.stats.failed_batches == 0
    assert engine.store.stats.batches < 11_000
    print(f"10,000 awards + 1,000 reverts: {engine.store.stats}")
    await assert_clean(engine)


async def test_refusals_inside_a_batch_do_not_fail_the_rest(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    seed = await engine.award(CHAT, 1, 100, key="seed:a", reason="seed")
    already = await engine.award(CHAT, 2, 30, key="seed:b", reason="seed")
    await engine.revert(already.transaction.id, key="seed:b:undo", actor_id=9)
    batches_before = engine.store.stats.batches

    outcomes = await asyncio.gather(
        engine.award(CHAT, 10, 10, key="ok:1"),
        engine.deduct(CHAT, 11, 50, key="overdraft:empty"),  # account 11 has nothing
        engine.award(CHAT, 10, 20, key="ok:2"),
        engine.award(CHAT, 1, 999, key="seed:a"),  # conflicts with a committed key
        engine.deduct(CHAT, 1, 60, key="ok:3"),  # 100 -> 40
        engine.deduct(CHAT, 1, 41, key="overdraft:after-own-batch"),  # 40 - 41 < 0
        engine.award(CHAT, 12, 5, key="ok:4"),
        engine.award(CHAT, 12, 6, key="ok:4"),  # conflicts with a key of this very batch
        engine.award(CHAT, 12, 5, key="ok:4"),  # a true repeat: the first receipt again
        engine.revert(10**9, key="revert:missing", actor_id=9),
        engine.revert(seed.transaction.id, key="ok:5", actor_id=9),  # 40 - 100 = -60, allowed
        engine.revert(seed.transaction.id, key="revert:again", actor_id=9),
        engine.revert(already.transaction.id, key="revert:third", actor_id=9),
        engine.award(CHAT, 13, 7, key="ok:6"),
        return_exceptions=True,
    )

    assert engine.store.stats.batches == batches_before + 1, "the requests did not share a batch"
    assert engine.store.stats.largest_batch >= len(outcomes)
    (ok1, overdraft, ok2, conflict, ok3, overdraft2, ok4, conflict2, repeat,
     missing, ok5, again, third, ok6) = outcomes  # fmt: skip
    assert isinstance(overdraft, InsufficientBalanceError)
    assert isinstance(overdraft2, InsufficientBalanceError)
    assert isinstance(conflict, IdempotencyConflictError)
    assert isinstance(conflict2, IdempotencyConflictError)
    assert isinstance(missing, TransactionNotFoundError)
    assert isinstance(again, RevertError)
    assert isinstance(third, RevertError)
    for receipt in (ok1, ok2, ok3, ok4, ok5, ok6):
        assert isinstance(receipt, Receipt)
        assert not receipt.duplicate
    assert isinstance(repeat, Receipt)
    assert repeat.duplicate
    assert isinstance(ok4, Receipt)
    assert repeat.transaction == ok4.transaction
    assert isinstance(ok5, Receipt)
    assert ok5.transaction.reverts_id == seed.transaction.id
    assert ok5.balance == -60

    keys = {row[5] for row in db_rows(ledger_backend)}
    assert {"ok:1", "ok:2", "ok:3", "ok:4", "ok:5", "ok:6"} <= keys
    assert not keys & {
        "overdraft:empty",
        "overdraft:after-own-batch",
        "revert:missing",
        "revert:again",
        "revert:third",
    }
    assert len(keys) == 3 + 6
    assert (await engine.balance(CHAT, 10)).balance == 30
    assert (await engine.balance(CHAT, 11)).tx_count == 0
    assert (await engine.balance(CHAT, 1)).balance == -60
    assert (await engine.balance(CHAT, 12)).balance == 5
    assert (await engine.balance(CHAT, 13)).balance == 7
    assert (await engine.transaction(seed.transaction.id)) == seed.transaction
    await assert_clean(engine)


async def test_balance_range_refusal_inside_a_batch(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    engine = await ledger_backend.open_engine(
        clock=clock, policy=LedgerPolicy(max_amount=MAX_BALANCE)
    )
    try:
        await engine.award(CHAT, 1, MAX_BALANCE, key="top")
        before = engine.store.stats.batches
        outcomes = await asyncio.gather(
            engine.award(CHAT, 2, 1, key="a"),
            engine.award(CHAT, 1, 1, key="over-the-top"),
            engine.award(CHAT, 2, 2, key="b"),
            return_exceptions=True,
        )
        assert engine.store.stats.batches == before + 1
        first, over, second = outcomes
        assert isinstance(over, InvalidAmountError)
        assert isinstance(first, Receipt)
        assert isinstance(second, Receipt)
        assert second.balance == 3
        assert (await engine.balance(CHAT, 1)).balance == MAX_BALANCE
        await assert_clean(engine)
    finally:
        await engine.close()
    assert {row[5] for row in db_rows(ledger_backend)} == {"top", "a", "b"}


async def test_readers_only_see_committed_running_totals(
    engine: PointsEngine, ledger_backend: LedgerBackend
) -> None:
    users = [501, 502, 503, 504]
    rng = random.Random(7)
    writing = True
    seen_balances: list[tuple[int, int]] = []
    seen_boards: list[tuple[Period, tuple[tuple[int, int], ...]]] = []
    reads = 0

    async def writer(w: int) -> None:
        for burst in range(15):
            await asyncio.gather(
                *(
                    engine.award(
                        CHAT, rng.choice(users), rng.randint(1, 50), key=f"w{w}:{burst}:{i}"
                    )
                    for i in range(20)
                )
            )
            receipt = await engine.deduct(
                CHAT, users[w % 4], 1, key=f"w{w}:{burst}:fee", force=True
            )
            assert receipt.transaction.amount == -1

    async def reader(r: int) -> None:
        nonlocal reads
        while writing:
            user = users[r % len(users)]
            balance = await engine.balance(CHAT, user)
            seen_balances.append((user, balance.balance))
            history = await engine.history(CHAT, user, limit=500)
            if history:
                # One call, one snapshot: contiguous, newest first, and it sums to its head.
                assert [t.seq for t in history] == list(range(len(history), 0, -1))
                assert history[0].balance_after == sum(t.amount for t in history)
                for newer, older in itertools.pairwise(history):
                    assert newer.balance_after == older.balance_after + newer.amount
                    assert newer.prev_hash == older.hash
                seen_balances.append((user, history[0].balance_after))
            for period in (Period.ALL, Period.WEEK):
                board = await engine.leaderboard(CHAT, period, limit=10)
                points = [line.points for line in board.lines]
                assert points == sorted(points, reverse=True)
                assert [line.rank for line in board.lines] == list(range(1, len(points) + 1))
                seen_boards.append(
                    (period, tuple((line.user_id, line.points) for line in board.lines))
                )
            reads += 1

    readers = [asyncio.create_task(reader(r)) for r in range(6)]
    try:
        await asyncio.gather(*(writer(w) for w in range(4)))
    finally:
        writing = False
    await asyncio.gather(*readers)

    assert reads > 0
    totals: dict[int, set[int]] = {user: {0} for user in users}
    rows = ledger_backend.read("SELECT user_id, balance_after FROM transactions")
    assert len(rows) == 4 * 15 * 21
    for user, after in rows:
        totals[user].add(after)

    for user, balance in seen_balances:
        assert balance in totals[user], (user, balance)
    finals = {user: (await engine.balance(CHAT, user)).balance for user in users}
    midway = [(u, b) for u, b in seen_balances if b not in (0, finals[u])]
    assert midway, "no read happened while the writes were under way"
    print(f"readers: {reads} rounds, {len(midway)} of {len(seen_balances)} balances mid-write")
    for period, lines in seen_boards:
        for user, points in lines:
            assert points in totals[user], (period, user, points)
    for user in users:
        (head,) = await engine.history(CHAT, user, limit=1)
        assert (await engine.balance(CHAT, user)).balance == head.balance_after
    await assert_clean(engine)


async def test_close_with_awards_in_flight(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    engine = await ledger_backend.open_engine(clock=clock)
    close_called = False
    submitted_before_close: set[str] = set()
    submitted_after_close: set[str] = set()
    returned: dict[str, Receipt] = {}
    refused: set[str] = set()
    tasks: list[asyncio.Task[None]] = []
    some_returned = asyncio.Event()

    async def award(i: int) -> None:
        key = f"inflight:{i}"
        (submitted_after_close if close_called else submitted_before_close).add(key)
        try:
            returned[key] = await engine.award(CHAT, 1 + i % 10, 1 + i % 5, key=key)
            if len(returned) >= 300:
                some_returned.set()
        except EngineClosedError:
            refused.add(key)

    def spawn() -> None:
        tasks.append(asyncio.create_task(award(len(tasks))))

    async def producer() -> None:
        # Submits steadily (far below the queue's bound) until close(), then 500 more.
        while not close_called:
            if len(tasks) < 5000:
                spawn()
            if len(tasks) % 25 == 0 or len(tasks) >= 5000:
                await asyncio.sleep(0)
        for _ in range(500):
            spawn()
            if len(tasks) % 25 == 0:
                await asyncio.sleep(0)

    producing = asyncio.create_task(producer())
    await some_returned.wait()  # close() comes while the writer is busy, not before it began
    for _ in range(200):
        spawn()
    await asyncio.sleep(0)  # these 200 are queued now; no batch holding them has committed
    pending_at_close = len(submitted_before_close) - len(returned) - len(refused)
    close_called = True  # set in the same step as close() starts: no award runs in between
    await engine.close()
    await producing
    await asyncio.gather(*tasks)

    assert pending_at_close >= 200
    assert len(returned) + len(refused) == len(tasks)
    assert len(submitted_after_close) >= 500
    assert set(returned) == submitted_before_close
    assert refused == submitted_after_close
    print(
        f"close: {len(returned)} committed ({pending_at_close} still queued at close),"
        f" {len(refused)} refused, {engine.store.stats.batches} batches"
    )
    with pytest.raises(EngineClosedError):
        await engine.award(CHAT, 1, 1, key="after-close")
    with pytest.raises(EngineClosedError):
        await engine.revert(1, key="after-close:revert", actor_id=1)
    with pytest.raises(EngineClosedError):
        await engine.balance(CHAT, 1)
    await engine.close()  # a second close is harmless

    reopened = await ledger_backend.open_engine(clock=clock)
    try:
        keys = {row[5] for row in db_rows(ledger_backend)}
        assert keys == set(returned)
        for key, receipt in returned.items():
            assert await reopened.transaction(receipt.transaction.id) == receipt.transaction, key
        expected: dict[int, int] = defaultdict(int)
        for receipt in returned.values():
            expected[receipt.transaction.user_id] += receipt.transaction.amount
        for user, total in expected.items():
            assert (await reopened.balance(CHAT, user)).balance == total
        # The reopened engine carries on the same chains.
        extra = await reopened.award(CHAT, 1, 3, key="after-reopen")
        assert extra.balance == expected[1] + 3
        await assert_clean(reopened)
    finally:
        await reopened.close()


@pytest.mark.only_backends("sqlite", reason="a second SQLite connection holds the file's lock")
async def test_close_answers_an_award_that_waited_for_room_in_the_queue(
    ledger_backend: LedgerBackend, clock: FakeClock
) -> None:
    """An award accepted before close() while the queue was full is committed, not orphaned.

    Another connection holds the write lock, so the writer is stuck in its first batch while
    the queue (bounded to one) fills and a second award waits for room; then close() runs.
    """
    db_path = ledger_backend.location
    store = await LedgerStore(db_path, clock=clock, max_queue=1, write_timeout=3).open()
    engine = PointsEngine(store)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(engine.award(CHAT, 1, 1, key="q:first"))
        while True:  # the writer took the first award and waits for the lock on its thread
            await asyncio.sleep(0)
            if first.done() or store.queue_depth == 0:
                break
        fills = asyncio.create_task(engine.award(CHAT, 1, 2, key="q:fills"))
        waits = asyncio.create_task(engine.award(CHAT, 1, 4, key="q:waits"))
        closing = asyncio.create_task(engine.close())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not first.done()
        blocker.execute("ROLLBACK")
        outcomes = await asyncio.gather(first, fills, waits, closing, return_exceptions=True)
    finally:
        blocker.close()
        await engine.close()

    committed = {row[5] for row in db_rows(ledger_backend)}
    for key, outcome in zip(("q:first", "q:fills", "q:waits"), outcomes, strict=False):
        # Accepted work is committed; the only other honest answer is a refusal.
        if isinstance(outcome, Receipt):
            assert key in committed
        else:
            assert isinstance(outcome, EngineClosedError), (key, outcome)
            assert key not in committed
    assert outcomes[3] is None
    assert isinstance(outcomes[0], Receipt)
    assert ledger_backend.check().ok
