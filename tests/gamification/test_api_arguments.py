"""Every public engine method x every kind of bad argument: a RequestError, nothing written."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.gamification import (
    LedgerPolicy,
    Multiplier,
    Period,
    PointsEngine,
    RequestError,
    TxKind,
)
from plugins.gamification.domain import arguments as checks
from tests.support.ledger_checks import assert_one_sentence

CHAT = -100_700
ADMIN = 7

IDS: list[Any] = [
    "1",
    "-100",
    1.0,
    1.5,
    Decimal(1),
    True,
    b"1",
    2**63,
    -(2**63) - 1,
    10**30,
    -(10**30),
]
REQUIRED_IDS = [*IDS, None]
TEXTS: list[Any] = [None, 42, b"bytes", "\ud800", "ok \udc80 then", ["a"]]
KEYS = [*TEXTS, "", "k" * 201]
REASONS = [*TEXTS, "r" * 501]
TAGS = [*TEXTS, "t" * 101]
KINDS: list[Any] = ["bogus", "", "revert", TxKind.REVERT, "ACTIVITY", 1, None]
FLAGS: list[Any] = ["yes", "", 1, 0, None]
MULTIPLIERS: list[Any] = [
    None,
    5,
    "weekend",
    b"x",
    {"weekend": Decimal(2)},
    [("weekend", Decimal(2))],
    [Multiplier(3, Decimal(2))],  # type: ignore[arg-type]
    [Multiplier("", Decimal(2))],
    [Multiplier("\ud800", Decimal(2))],
    [Multiplier("x" * 101, Decimal(2))],
    [Multiplier("weekend", 2.0)],  # type: ignore[arg-type]
    [Multiplier("weekend", Decimal("NaN"))],
    [Multiplier("weekend", Decimal(0))],
    [Multiplier("m", Decimal("1.01"))] * 33,
]
AMOUNTS: list[Any] = ["5", 5.0, None, True, Decimal(5), 0, -1, 10**30]
TX_IDS: list[Any] = ["1", 0, -1, 1.0, True, None, 2**63, 10**30]
LIMITS: list[Any] = ["10", 2.5, None, True, Decimal(10)]
PERIODS: list[Any] = ["bogus", "WEEK", "", 3, None, b"week"]
MOMENTS: list[Any] = [datetime(2026, 11, 25, 12, 0), "2026-11-25", 5]

Call = Callable[[PointsEngine, dict[str, Any]], Awaitable[object]]


def adjust(engine: PointsEngine, **kw: Any) -> Awaitable[object]:
    defaults = {"chat_id": CHAT, "user_id": 1, "delta": 5, "key": "k", "actor_id": ADMIN}
    return engine.adjust(**{**defaults, "reason": "fix", **kw})


def files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


# method -> (call with defaults overridden by the keyword arguments, {argument: bad values})
METHODS: dict[str, tuple[Call, dict[str, list[Any]]]] = {
    "award": (
        lambda e, kw: e.award(**{"chat_id": CHAT, "user_id": 1, "base": 5, "key": "k", **kw}),
        {
            "chat_id": REQUIRED_IDS,
            "user_id": REQUIRED_IDS,
            "base": AMOUNTS,
            "key": KEYS,
            "kind": KINDS,
            "reason": REASONS,
            "actor_id": IDS,
            "multipliers": MULTIPLIERS,
            "tag": TAGS,
        },
    ),
    "deduct": (
        lambda e, kw: e.deduct(**{"chat_id": CHAT, "user_id": 1, "amount": 5, "key": "k", **kw}),
        {
            "chat_id": REQUIRED_IDS,
            "user_id": REQUIRED_IDS,
            "amount": AMOUNTS,
            "key": KEYS,
            "reason": REASONS,
            "actor_id": IDS,
            "kind": KINDS,
            "force": FLAGS,
        },
    ),
    "adjust": (
        lambda e, kw: adjust(e, **kw),
        {
            "chat_id": REQUIRED_IDS,
            "user_id": REQUIRED_IDS,
            "delta": [a for a in AMOUNTS if a != -1],
            "key": KEYS,
            "actor_id": IDS,
            "reason": REASONS,
            "force": FLAGS,
        },
    ),
    "revert": (
        lambda e, kw: e.revert(**{"tx_id": 1, "key": "r", "actor_id": ADMIN, **kw}),
        {"tx_id": TX_IDS, "key": KEYS, "actor_id": IDS, "reason": REASONS, "chat_id": IDS},
    ),
    "check": (
        lambda e, kw: e.check(**kw),
        {"record": FLAGS, "quick_check": FLAGS},
    ),
    "balance": (
        lambda e, kw: e.balance(**{"chat_id": CHAT, "user_id": 1, **kw}),
        {"chat_id": REQUIRED_IDS, "user_id": REQUIRED_IDS},
    ),
    "history": (
        lambda e, kw: e.history(**{"chat_id": CHAT, "user_id": 1, **kw}),
        {"chat_id": REQUIRED_IDS, "user_id": REQUIRED_IDS, "limit": LIMITS},
    ),
    "transaction": (
        lambda e, kw: e.transaction(**{"tx_id": 1, **kw}),
        {"tx_id": TX_IDS},
    ),
    "transaction_by_key": (
        lambda e, kw: e.transaction_by_key(**{"key": "k", **kw}),
        {"key": KEYS},
    ),
    "leaderboard": (
        lambda e, kw: e.leaderboard(**{"chat_id": CHAT, **kw}),
        {"chat_id": REQUIRED_IDS, "period": PERIODS, "limit": LIMITS},
    ),
    "standing": (
        lambda e, kw: e.standing(**{"chat_id": CHAT, "user_id": 1, "period": Period.WEEK, **kw}),
        {"chat_id": REQUIRED_IDS, "user_id": REQUIRED_IDS, "period": PERIODS},
    ),
    "progress": (
        lambda e, kw: e.progress(**{"chat_id": CHAT, "user_id": 1, **kw}),
        {"chat_id": REQUIRED_IDS, "user_id": REQUIRED_IDS},
    ),
    "daily_points": (
        lambda e, kw: e.daily_points(**{"chat_id": CHAT, "user_id": 1, **kw}),
        {"chat_id": REQUIRED_IDS, "user_id": REQUIRED_IDS, "days": LIMITS},
    ),
    "claim_job_run": (
        lambda e, kw: e.claim_job_run(**{"job": "j", "slot": "s", "claimant": "c", **kw}),
        {"job": KEYS, "slot": KEYS, "claimant": KEYS},
    ),
}

CASES = [
    pytest.param(method, argument, value, id=f"{method}-{argument}-{value!r:.40}")
    for method, (_, bad) in METHODS.items()
    for argument, values in bad.items()
    for value in values
]


def ledger_state(path: Path) -> tuple[int, int, str]:
    """(transactions, outbox rows, last row's hash): any write changes one of them."""
    conn = sqlite3.connect(path)
    try:
        count = conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
        outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        last = conn.execute("SELECT hash FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
        return int(count), int(outbox), str(last[0])
    finally:
        conn.close()


@pytest.fixture
async def seeded(engine: PointsEngine) -> PointsEngine:
    """The engine fixture with one account holding 50 points (transaction #1)."""
    await engine.award(CHAT, 1, 50, key="seed")
    return engine


@pytest.mark.parametrize(("method", "argument", "value"), CASES)
async def test_every_bad_argument_is_a_request_error_and_changes_nothing(
    seeded: PointsEngine, db_path: Path, method: str, argument: str, value: Any
) -> None:
    call, _ = METHODS[method]
    before = ledger_state(db_path)
    digest = (await seeded.check()).digest
    with pytest.raises(RequestError) as caught:
        await call(seeded, {argument: value})
    assert_one_sentence(caught.value)
    assert ledger_state(db_path) == before
    assert (await seeded.check()).digest == digest
    # The engine still works after the refusal.
    assert (await seeded.balance(CHAT, 1)).balance == 50


@pytest.mark.parametrize("method", list(METHODS))
async def test_the_defaults_of_the_matrix_are_valid(seeded: PointsEngine, method: str) -> None:
    """Each refusal above is caused by its one bad argument, not by the others."""
    call, _ = METHODS[method]
    await call(seeded, {})


@pytest.mark.parametrize(("argument", "value"), [("period", v) for v in PERIODS] + [
    ("at", v) for v in MOMENTS
])  # fmt: skip
async def test_period_start_refuses_bad_arguments(
    seeded: PointsEngine, argument: str, value: Any
) -> None:
    kwargs: dict[str, Any] = {"period": Period.WEEK, argument: value}
    with pytest.raises(RequestError) as caught:
        seeded.period_start(**kwargs)
    assert_one_sentence(caught.value)


async def test_reads_answer_ids_at_the_64_bit_limits(seeded: PointsEngine) -> None:
    for chat_id in (-(2**63), 2**63 - 1):
        assert (await seeded.balance(chat_id, 2**63 - 1)).balance == 0
        assert await seeded.history(chat_id, -(2**63)) == []
    assert await seeded.transaction(2**63 - 1) is None


async def test_kinds_given_as_text_are_accepted(seeded: PointsEngine) -> None:
    receipt = await seeded.award(CHAT, 2, 5, key="as-text", kind="event")  # type: ignore[arg-type]
    assert receipt.transaction.kind is TxKind.EVENT
    board = await seeded.leaderboard(CHAT, "all")  # type: ignore[arg-type]
    assert board.period is Period.ALL


OPEN_CASES: list[tuple[str, Any]] = [
    *[
        ("location", v)
        for v in (None, 123, b"ledger.sqlite3", "", "a\x00b.sqlite3", "\ud800.sqlite3")
    ],
    *[("location", v) for v in ("mysql://h/db", "sqlite://", "postgresql://h:99999/db")],
    *[("policy", v) for v in ("strict", 5)],
    *[("synchronous", v) for v in ("SOMETIMES", "full", None)],
    *[("busy_timeout", v) for v in ("5", None, 0, -1, float("nan"), float("inf"), 10**9)],
    *[("write_timeout", v) for v in ("30", 0, float("nan"))],
    *[("max_batch", v) for v in (0, -1, 1.5, "10", 10**9)],
]


@pytest.mark.parametrize(
    ("argument", "value"), OPEN_CASES, ids=[f"{a}-{v!r}" for a, v in OPEN_CASES]
)
async def test_open_refuses_bad_arguments_before_touching_a_file(
    tmp_path: Path, argument: str, value: Any
) -> None:
    path = tmp_path / "new.sqlite3"
    kwargs: dict[str, Any] = {"location": path, argument: value}
    with pytest.raises(RequestError) as caught:
        await PointsEngine.open(**kwargs)
    assert_one_sentence(caught.value)
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    "policy",
    [
        {"max_amount": 0},
        {"max_amount": "10"},
        {"max_amount": 2**60},
        {"allow_negative": "no"},
        {"timezone": "Mars/Base"},
        {"timezone": 5},
    ],
    ids=repr,
)
def test_a_policy_with_bad_values_cannot_be_made(policy: dict[str, Any]) -> None:
    with pytest.raises(RequestError) as caught:
        LedgerPolicy(**policy)
    assert_one_sentence(caught.value)


# -- the checks themselves, on arbitrary values -------------------------------------------

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(),
    st.binary(),
    st.datetimes(),
    st.lists(st.integers(), max_size=3),
    st.builds(Multiplier, st.text(), st.decimals()),
)


@given(value=anything)
def test_each_check_accepts_or_raises_a_request_error(value: Any) -> None:
    for check in (
        lambda v: checks.whole_id("chat id", v),
        checks.transaction_id,
        lambda v: checks.text("A reason", v, most=500),
        lambda v: checks.flag("The force flag", v),
        checks.posting_kind,
        checks.period,
        lambda v: checks.limit(v, 100),
        checks.moment,
        checks.multipliers,
        checks.database_path,
        lambda v: checks.number("The busy timeout", v, above=0, most=600),
        checks.timezone,
    ):
        try:
            check(value)
        except RequestError as error:
            assert_one_sentence(error)


@given(value=st.integers())
def test_ids_are_exactly_the_signed_64_bit_integers(value: int) -> None:
    if -(2**63) <= value < 2**63:
        assert checks.whole_id("user id", value) == value
    else:
        with pytest.raises(RequestError):
            checks.whole_id("user id", value)


def test_the_matrix_covers_every_public_engine_method() -> None:
    public = {
        name
        for name, member in vars(PointsEngine).items()
        if not name.startswith("_") and callable(member)
    }
    covered = set(METHODS) | {"period_start", "open", "close"}
    assert public <= covered, public - covered
