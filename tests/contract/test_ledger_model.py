"""A hypothesis state machine: after every step the ledger agrees with a plain in-memory model."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from plugins.gamification import (
    FakeClock,
    GamificationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    LedgerPolicy,
    Receipt,
    RevertError,
    Transaction,
    TransactionNotFoundError,
    TxKind,
)
from tests.support.backends import make_backend

T = TypeVar("T")
Account = tuple[int, int]

ACCOUNTS: list[Account] = [(-100_1, 1), (-100_1, 2), (-100_2, 1)]
MAX_AMOUNT = 1_000
ADMIN = 7
REASONS = ["", "quiz", '«ü» ✓ "quoted"']

accounts = st.sampled_from(ACCOUNTS)
reasons = st.sampled_from(REASONS)
amounts = st.integers(1, 60)


@dataclass(frozen=True)
class Request:
    """One call to the engine, enough to repeat it exactly or to vary it."""

    op: str  # award, deduct, adjust or revert
    account: Account
    amount: int  # the base, amount or delta; for a revert, the transaction id
    reason: str = ""
    force: bool = False


@dataclass(frozen=True)
class ModelTx:
    id: int
    account: Account
    amount: int
    kind: TxKind
    key: str
    reason: str
    reverts_id: int | None
    created_at: datetime


@dataclass
class Model:
    """The ledger as a list of rows and a few dicts; nothing clever."""

    txs: dict[int, ModelTx]
    by_account: defaultdict[Account, list[ModelTx]]
    reverted: set[int]
    keys: dict[str, tuple[Request, Transaction]]
    refused_keys: list[str]

    def balance(self, account: Account) -> int:
        return sum(tx.amount for tx in self.by_account[account])

    def earned(self, account: Account) -> int:
        earned = 0
        for tx in self.by_account[account]:
            if tx.kind is TxKind.REVERT:
                earned -= max(-tx.amount, 0)
            elif tx.amount > 0:
                earned += tx.amount
        return earned

    def predict(
        self, request: Request
    ) -> type[GamificationError] | tuple[Account, int, TxKind, int | None]:
        """What a request under a fresh key must do: an error class, or the row it appends."""
        if request.op == "revert":
            original = self.txs.get(request.amount)
            if original is None:
                return TransactionNotFoundError
            if original.kind is TxKind.REVERT or original.id in self.reverted:
                return RevertError
            return original.account, -original.amount, TxKind.REVERT, original.id
        amount = -request.amount if request.op == "deduct" else request.amount
        kind = TxKind.ACTIVITY if request.op == "award" else TxKind.ADMIN
        if amount < 0 and not request.force and self.balance(request.account) + amount < 0:
            return InsufficientBalanceError
        return request.account, amount, kind, None


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, backend: str = "sqlite") -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="ledger-model-"))
        self.backend = make_backend(backend, self.folder)
        self.clock = FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
        self.engine = self.run(
            self.backend.open_engine(clock=self.clock, policy=LedgerPolicy(max_amount=MAX_AMOUNT))
        )
        self.model = Model({}, defaultdict(list), set(), {}, [])
        self.counter = 0

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.engine.close())
        finally:
            self.loop.close()
            self.backend.drop()
            shutil.rmtree(self.folder, ignore_errors=True)

    def fresh_key(self) -> str:
        self.counter += 1
        return f"key:{self.counter}"

    def call(self, request: Request, key: str) -> Receipt:
        chat, user = request.account
        engine = self.engine
        if request.op == "award":
            return self.run(
                engine.award(chat, user, request.amount, key=key, reason=request.reason)
            )
        if request.op == "deduct":
            return self.run(
                engine.deduct(
                    chat, user, request.amount, key=key, reason=request.reason, force=request.force
                )
            )
        if request.op == "adjust":
            return self.run(
                engine.adjust(
                    chat,
                    user,
                    request.amount,
                    key=key,
                    actor_id=ADMIN,
                    reason=request.reason,
                    force=request.force,
                )
            )
        return self.run(
            engine.revert(request.amount, key=key, actor_id=ADMIN, reason=request.reason)
        )

    def perform(self, request: Request, key: str | None = None) -> None:
        """Send a request under a key never used successfully, and check it against the model."""
        key = key or self.fresh_key()
        expected = self.model.predict(request)
        if isinstance(expected, type):
            with pytest.raises(expected) as refused:
                self.call(request, key)
            assert type(refused.value) is expected, f"{request}: {refused.value!r}"
            self.model.refused_keys.append(key)
            return
        receipt = self.call(request, key)
        account, amount, kind, reverts_id = expected
        tx = receipt.transaction
        assert not receipt.duplicate
        assert tx.id == len(self.model.txs) + 1
        assert (tx.chat_id, tx.user_id) == account
        assert (tx.amount, tx.kind, tx.reverts_id) == (amount, kind, reverts_id)
        assert (tx.key, tx.reason, tx.created_at) == (key, request.reason, self.clock.now())
        assert tx.seq == len(self.model.by_account[account]) + 1
        assert receipt.balance == self.model.balance(account) + amount
        row = ModelTx(tx.id, account, amount, kind, key, request.reason, reverts_id, tx.created_at)
        self.model.txs[tx.id] = row
        self.model.by_account[account].append(row)
        if reverts_id is not None:
            self.model.reverted.add(reverts_id)
        self.model.keys[key] = (request, tx)

    # -- rules ----------------------------------------------------------------------------

    @rule(account=accounts, base=amounts, reason=reasons)
    def award(self, account: Account, base: int, reason: str) -> None:
        self.perform(Request("award", account, base, reason))

    @rule(account=accounts, amount=amounts, reason=reasons, force=st.booleans())
    def deduct(self, account: Account, amount: int, reason: str, force: bool) -> None:
        self.perform(Request("deduct", account, amount, reason, force))

    @rule(
        account=accounts,
        delta=st.integers(-60, 60).filter(bool),
        reason=reasons,
        force=st.booleans(),
    )
    def adjust(self, account: Account, delta: int, reason: str, force: bool) -> None:
        self.perform(Request("adjust", account, delta, reason, force))

    @precondition(lambda self: self.model.txs)
    @rule(data=st.data(), reason=reasons)
    def revert_existing(self, data: st.DataObject, reason: str) -> None:
        tx_id = data.draw(st.sampled_from(sorted(self.model.txs)), label="tx_id")
        self.perform(Request("revert", ACCOUNTS[0], tx_id, reason))

    @rule(beyond=st.integers(1, 10_000))
    def revert_missing(self, beyond: int) -> None:
        self.perform(Request("revert", ACCOUNTS[0], len(self.model.txs) + beyond))

    @precondition(lambda self: self.model.keys)
    @rule(data=st.data())
    def repeat_same_key_same_content(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.keys)), label="key")
        request, first = self.model.keys[key]

        receipt = self.call(request, key)

        assert receipt.duplicate
        assert receipt.transaction == first

    @precondition(lambda self: self.model.keys)
    @rule(data=st.data(), change=st.sampled_from(["reason", "amount", "account"]))
    def repeat_same_key_other_content(self, data: st.DataObject, change: str) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.keys)), label="key")
        request, _ = self.model.keys[key]
        if change == "reason" or (request.op == "revert" and change == "account"):
            other = replace(request, reason=request.reason + "!")
        elif change == "amount":
            pool = st.integers(1, 10_000) if request.op == "revert" else amounts
            if request.op == "adjust" and request.amount < 0:
                pool = st.integers(-60, -1)
            new = data.draw(pool.filter(lambda n: n != request.amount), label="amount")
            other = replace(request, amount=new)
        else:
            choices = [a for a in ACCOUNTS if a != request.account]
            other = replace(request, account=data.draw(st.sampled_from(choices), label="account"))

        with pytest.raises(IdempotencyConflictError, match=re.escape(repr(key))):
            self.call(other, key)

    @precondition(lambda self: self.model.refused_keys)
    @rule(data=st.data(), account=accounts, base=amounts)
    def reuse_a_refused_key(self, data: st.DataObject, account: Account, base: int) -> None:
        key = data.draw(st.sampled_from(self.model.refused_keys), label="key")
        self.model.refused_keys.remove(key)
        self.perform(Request("award", account, base), key=key)

    @rule(seconds=st.integers(0, 3 * 86_400))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def ledger_agrees_with_the_model(self) -> None:
        model = self.model
        for account in ACCOUNTS:
            expected = model.by_account[account]
            balance = self.run(self.engine.balance(*account))
            assert balance.balance == model.balance(account)
            assert balance.earned == model.earned(account)
            assert balance.tx_count == len(expected)
            history = self.run(self.engine.history(*account, limit=500))
            assert [
                ModelTx(
                    t.id, account, t.amount, t.kind, t.key, t.reason, t.reverts_id, t.created_at
                )
                for t in reversed(history)
            ] == expected
            running = 0
            for tx in reversed(history):
                running += tx.amount
                assert tx.balance_after == running

        sums = self.backend.sums()
        cached = self.backend.cached_balances()
        touched = [a for a in ACCOUNTS if model.by_account[a]]
        assert sorted(sums) == sorted(
            (*a, model.balance(a), len(model.by_account[a])) for a in touched
        )
        assert sorted(cached) == sorted((*a, model.balance(a)) for a in touched)

        report = self.backend.check(quick_check=False)
        assert report.ok, report.to_text()
        assert report.transactions == len(model.txs)
        assert report.accounts == len(touched)


def model_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@pytest.mark.parametrize(
    ("backend", "examples"),
    [
        # Every step of a run is checked against a server's database on a connection of its
        # own: fewer runs by default keep it to seconds; the soak run goes as far as SQLite.
        ("postgresql", 8),
        pytest.param("postgresql", 30, marks=pytest.mark.soak),
        ("sqlite", 30),
    ],
)
def test_ledger_model(backend: str, examples: int) -> None:
    """The ledger against a simple in-memory model, on each storage backend."""
    run_state_machine_as_test(lambda: LedgerMachine(backend), settings=model_settings(examples))
