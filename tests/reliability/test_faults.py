"""Injected faults: every statement of a mixed batch fails in turn; nothing is half-written.

BatchWriter runs a batch on a FaultyConnection over a real SQLite file. For each statement k
of the batch the fault is raised there once (a RuntimeError, a bug's shape, and an
OperationalError("disk I/O error"), the database's), then the same writer must serve on:
the batch retried converges to what a clean run writes, and a fresh batch commits.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from plugins.gamification import (
    FakeClock,
    GamificationError,
    PointsEngine,
    Receipt,
    StorageError,
    TxKind,
)
from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.config import Achievement
from plugins.gamification.domain.models import Breakdown
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.storage.operations import (
    Operation,
    Outcome,
    Posting,
    Reversal,
    SideWrite,
)
from plugins.gamification.storage.sqlite import sidetables
from plugins.gamification.storage.sqlite.effects import INSERT_OUTBOX, Effects
from plugins.gamification.storage.sqlite.schema import migrate
from plugins.gamification.storage.sqlite.writer import BatchWriter
from tests.reliability.conftest import Show
from tests.support.faulty import FaultyConnection, FaultyStore, once_at
from tests.support.ledger_checks import assert_one_sentence, assert_sound

CHAT = -100_500
ADMIN = 9
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ACHIEVEMENTS = (
    Achievement.model_validate(
        {"id": "first_steps", "title": "First steps", "reward": 10,
         "condition": {"type": "earned", "at_least": 50}}
    ),
    Achievement.model_validate(
        {"id": "chatter", "title": "Chatter", "reward": 5,
         "condition": {"type": "activity", "kind": "text", "at_least": 2}}
    ),
)  # fmt: skip
NOW = format_utc(START)

Fault = Callable[[], BaseException]
FAULTS: dict[str, Fault] = {
    "RuntimeError": lambda: RuntimeError("injected fault"),
    "disk I/O error": lambda: sqlite3.OperationalError("disk I/O error"),
}
# Transactions each op of the batch appends when it commits (a revert also takes back the
# reward of what it reverted; the unlocking award earns two rewards).
APPENDS = {"award": 1, "deduct": 1, "revert": 2, "unlock": 3, "side": 0, "repeat": 0}


def post(
    user: int, amount: int, key: str, kind: TxKind = TxKind.ACTIVITY, tag: str = ""
) -> Posting:
    return Posting(
        chat_id=CHAT, user_id=user, amount=amount, kind=kind, key=key,
        actor_id=ADMIN if kind is TxKind.ADMIN else None, reason=f"{kind} {key}",
        breakdown=Breakdown(base=amount, result=amount, tag=tag),
    )  # fmt: skip


SEEDS: tuple[Operation, ...] = (
    post(1, 40, "seed:1", tag="text"),
    # 100 points unlock first_steps (+10): the batch reverts this one, which revokes it.
    post(2, 100, "seed:2", kind=TxKind.ADMIN),
    post(3, 30, "seed:3", tag="text"),
    post(4, 45, "seed:4", tag="text"),
)


def batch(seed_2_id: int) -> dict[str, Operation]:
    return {
        "award": post(1, 5, "op:award", tag="photo"),
        "deduct": post(3, -20, "op:deduct", kind=TxKind.ADMIN),
        "revert": Reversal(seed_2_id, "op:revert", ADMIN, "undo", CHAT),
        # 45 + 10 reaches first_steps, and the second text message reaches chatter.
        "unlock": post(4, 10, "op:unlock", tag="text"),
        "side": SideWrite(
            (
                (sidetables.INSERT_FREEZE, (CHAT, 5, NOW, ADMIN, "fault test")),
                (INSERT_OUTBOX, ("side:freeze:5", "account.frozen", CHAT, 5, "{}", NOW)),
            )
        ),
        "repeat": SEEDS[0],
    }


def new_writer() -> BatchWriter:
    return BatchWriter(FakeClock(START).now, Effects(ProgressRules(achievements=ACHIEVEMENTS)))


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@dataclass
class Template:
    path: Path
    seed_2_id: int
    seed_rows: int  # the seeds and the reward seed 2 earned
    statements: list[str]  # of the clean batch, in order
    clean: dict[str, Any]  # the database after the clean batch, retry and a fresh award


def presence(path: Path, seed_2_id: int) -> dict[str, bool]:
    """Which ops of the batch are in the database, each judged whole (else an assert fails)."""
    keys = {key for (key,) in rows(path, "SELECT idem_key FROM transactions")}
    found = {name: f"op:{name}" in keys for name in ("award", "deduct", "revert", "unlock")}
    if found["revert"]:
        (revert_id,) = rows(path, "SELECT id FROM transactions WHERE idem_key = 'op:revert'")[0]
        revoked = rows(
            path, "SELECT revoked_tx_id FROM unlocks WHERE cause_tx_id = ?", (seed_2_id,)
        )
        assert revoked == [(revert_id,)], "the revert did not revoke what its original unlocked"
    unlocked = rows(
        path,
        "SELECT achievement FROM unlocks WHERE user_id = 4 AND cause_tx_id ="
        " (SELECT id FROM transactions WHERE idem_key = 'op:unlock') ORDER BY achievement",
    )
    assert unlocked == ([("chatter",), ("first_steps",)] if found["unlock"] else [])
    frozen = bool(rows(path, "SELECT 1 FROM freezes WHERE user_id = 5"))
    announced = bool(rows(path, "SELECT 1 FROM outbox WHERE event_id = 'side:freeze:5'"))
    assert frozen == announced, "half of the side write committed"
    found["side"] = frozen
    return found


def state(path: Path) -> dict[str, Any]:
    """What a clean run and a faulted-then-retried run must agree on (ids may differ)."""
    return {
        "transactions": Counter(
            rows(path, "SELECT chat_id, user_id, kind, amount, reason FROM transactions")
        ),
        "accounts": rows(
            path,
            "SELECT chat_id, user_id, balance, earned, seq, achievements FROM accounts"
            " ORDER BY chat_id, user_id",
        ),
        "unlocks": rows(
            path,
            "SELECT user_id, achievement, revoked_tx_id IS NULL FROM unlocks"
            " ORDER BY user_id, achievement",
        ),
        "progress": rows(path, "SELECT user_id, name, value FROM progress ORDER BY 1, 2"),
        "outbox": Counter(t for (t,) in rows(path, "SELECT type FROM outbox")),
        "freezes": rows(path, "SELECT chat_id, user_id, reason FROM freezes"),
    }


def apply_all(writer: BatchWriter, conn: Any, ops: Iterable[Operation]) -> list[Outcome]:
    outcomes = writer.apply(conn, list(ops))
    for outcome in outcomes:
        assert not isinstance(outcome, GamificationError), outcome
    return outcomes


FRESH = post(6, 7, "op:fresh", tag="text")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A seeded ledger file to copy for every fault, and the outcome of a clean run."""
    folder = tmp_path_factory.mktemp("faults")
    path = folder / "template.sqlite3"
    conn = connect(path)
    migrate(conn)
    seeds = apply_all(new_writer(), conn, SEEDS)
    conn.close()
    assert isinstance(seeds[1], Receipt)
    seed_2_id = seeds[1].transaction.id
    assert rows(path, "SELECT achievement FROM unlocks") == [("first_steps",)]

    clean = folder / "clean.sqlite3"
    shutil.copy(path, clean)
    conn = connect(clean)
    counting = FaultyConnection(conn)
    writer = new_writer()
    ops = batch(seed_2_id)
    outcomes = dict(zip(ops, apply_all(writer, counting, ops.values()), strict=True))
    statements = list(counting.statements)
    assert all(isinstance(outcomes[n], Receipt) for n in APPENDS if n != "side")
    assert isinstance(outcomes["repeat"], Receipt)
    assert outcomes["repeat"].duplicate
    apply_all(writer, conn, ops.values())
    apply_all(writer, conn, [FRESH])
    conn.close()
    assert presence(clean, seed_2_id) == dict.fromkeys(
        ["award", "deduct", "revert", "unlock", "side"], True
    )
    assert_sound(clean, ACHIEVEMENTS)
    (seed_rows,) = rows(path, "SELECT COUNT(*) FROM transactions")[0]
    return Template(path, seed_2_id, seed_rows, statements, state(clean))


@dataclass
class Tally:
    faults: int = 0
    op_errors: int = 0  # an op refused with a StorageError, the rest of its batch committed
    batch_errors: int = 0  # the batch raised and nothing of it was written
    committed_anyway: int = 0  # the fault hit after the statement ran; all of it committed
    careful: int = 0  # the batch was redone with a savepoint per op
    where: Counter[str] = field(default_factory=Counter)


def run_fault(
    template: Template,
    folder: Path,
    name: str,
    rule: Callable[[int, str], BaseException | None],
    *,
    after: bool,
    tally: Tally,
) -> None:
    """Apply the batch with `rule` failing statements, then check and keep serving."""
    path = folder / f"{name}.sqlite3"
    shutil.copy(template.path, path)
    conn = connect(path)
    try:
        proxy = FaultyConnection(conn, rule, after=after)
        writer = new_writer()
        ops = batch(template.seed_2_id)
        raised: BaseException | None = None
        outcomes: list[Outcome] = []
        try:
            outcomes = writer.apply(proxy.as_connection(), list(ops.values()))
        except Exception as exc:
            raised = exc
        assert proxy.raised, f"{name}: the fault never fired"
        tally.faults += 1
        tally.where[proxy.raised[-1][1].split()[0]] += 1
        if "SAVEPOINT op" in proxy.statements:
            tally.careful += 1
        found = presence(path, template.seed_2_id)
        expected_rows = template.seed_rows + sum(APPENDS[n] for n, here in found.items() if here)
        assert rows(path, "SELECT COUNT(*) FROM transactions") == [(expected_rows,)], name

        if raised is not None:
            # The caller hears of it; the batch is all or nothing. All of it only when the
            # statement that "failed" was the COMMIT, which ran before the fault hit.
            assert raised is proxy.raised[-1][2] or isinstance(raised, sqlite3.Error), raised
            if any(found.values()):
                assert after, (name, found)
                assert proxy.raised[0][1] == "COMMIT", (name, found)
                assert all(found.values()), (name, found)
                tally.committed_anyway += 1
            else:
                tally.batch_errors += 1
        else:
            errors = 0
            for (op_name, op), outcome in zip(ops.items(), outcomes, strict=True):
                if isinstance(outcome, GamificationError):
                    assert isinstance(outcome, StorageError), (name, op_name, outcome)
                    assert_one_sentence(outcome)
                    errors += 1
                    if op_name != "repeat":
                        assert not found[op_name], f"{name}: refused {op_name} was written"
                elif op_name == "repeat":
                    assert isinstance(outcome, Receipt)
                    assert outcome.duplicate
                elif isinstance(op, SideWrite):
                    assert outcome is None, name
                    assert found["side"], name
                else:
                    assert isinstance(outcome, Receipt), name
                    assert not outcome.duplicate, name
                    assert found[op_name], f"{name}: {op_name} acknowledged but not written"
            tally.op_errors += errors > 0
        assert_sound(path, ACHIEVEMENTS)

        # The same writer on the same connection: the retry converges, a fresh batch commits.
        try:
            retried = writer.apply(proxy.as_connection(), list(ops.values()))
        except sqlite3.Error as exc:
            pytest.fail(f"{name}: the same writer refused the next batch: {exc}")
        assert not any(isinstance(o, GamificationError) for o in retried), (name, retried)
        (fresh,) = writer.apply(proxy.as_connection(), [FRESH])
        assert isinstance(fresh, Receipt), (name, fresh)
        assert not fresh.duplicate, (name, fresh)
    finally:
        conn.close()
    assert state(path) == template.clean, name
    assert_sound(path, ACHIEVEMENTS)
    path.unlink()


@pytest.mark.parametrize("after", [False, True], ids=["statement-refused", "reply-lost"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_at_every_statement_of_a_batch(
    template: Template, tmp_path: Path, show: Show, fault: str, after: bool
) -> None:
    """Sweep k over every statement of the batch; the fault hits statement k once.

    "reply-lost" runs statement k and then raises. BEGIN is left out there: nothing can
    raise between BEGIN returning and the writer's try block, so that is no real fault.
    """
    tally = Tally()
    for k, sql in enumerate(template.statements, 1):
        if after and sql.startswith("BEGIN"):
            continue
        make = FAULTS[fault]
        run_fault(template, tmp_path, f"k{k}", once_at(k, make), after=after, tally=tally)
    assert tally.faults >= len(template.statements) - 1
    show(
        f"faults ({fault}, {'reply lost' if after else 'statement refused'}):"
        f" {tally.faults} fault points over a {len(template.statements)}-statement batch;"
        f" {tally.op_errors} refused one op, {tally.batch_errors} failed the batch,"
        f" {tally.committed_anyway} committed before the fault, {tally.careful} took the"
        f" savepoint path; by statement: {dict(tally.where)}"
    )


def first_index(statements: Sequence[str], prefix: str) -> int:
    return next(i for i, sql in enumerate(statements, 1) if sql.startswith(prefix))


def half_written_then(template: Template, k: int, make: Fault) -> Callable[[int, str], Any]:
    """Fail op 1's account update after its ledger row went in, then statement k."""
    first = first_index(template.statements, "INSERT INTO accounts")

    def rule(index: int, _sql: str) -> BaseException | None:
        if index == first:
            return RuntimeError("a bug after the first write")
        return make() if index == k else None

    return rule


def redo_statements(template: Template, tmp_path: Path) -> list[str]:
    """Every statement of the batch when op 1 fails half-written: the rollback and the redo."""
    path = tmp_path / "count.sqlite3"
    shutil.copy(template.path, path)
    conn = connect(path)
    first = first_index(template.statements, "INSERT INTO accounts")
    counting = FaultyConnection(conn, half_written_then(template, 0, FAULTS["RuntimeError"]))
    new_writer().apply(counting.as_connection(), list(batch(template.seed_2_id).values()))
    conn.close()
    path.unlink()
    assert counting.statements[first] == "ROLLBACK"
    assert "SAVEPOINT op" in counting.statements[first:]
    return counting.statements


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_second_fault_in_the_savepoint_path(
    template: Template, tmp_path: Path, show: Show, fault: str
) -> None:
    """A bug after the first op wrote sends the batch down the careful path; fault that too.

    The first fault refuses op 1's account update after its ledger row went in, so the
    batch is rolled back and redone with a savepoint per op; the second fault then hits
    every statement of the redo in turn (the ROLLBACK itself: the next test).
    """
    statements = redo_statements(template, tmp_path)
    rollback = first_index(template.statements, "INSERT INTO accounts") + 1
    tally = Tally()
    for k in range(rollback + 1, len(statements) + 1):
        rule = half_written_then(template, k, FAULTS[fault])
        run_fault(template, tmp_path, f"k{k}", rule, after=False, tally=tally)
    assert tally.faults == len(statements) - rollback
    show(
        f"faults in the savepoint path ({fault}): {tally.faults} second-fault points in the"
        f" redo after a half-written op; {tally.op_errors} refused one op,"
        f" {tally.batch_errors} failed the batch; by statement: {dict(tally.where)}"
    )


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_rollback_does_not_stop_the_writer(
    template: Template, tmp_path: Path, show: Show, fault: str
) -> None:
    """The ROLLBACK after a half-written op fails too: nothing is written, the writer serves on.

    BatchWriter._run issues BEGIN IMMEDIATE outside its try block and never checks whether
    the connection is still inside an earlier transaction, so a failed ROLLBACK leaves it
    there and every later BEGIN is refused ("cannot start a transaction within a
    transaction") with nothing left to roll it back.
    """
    rollback = first_index(template.statements, "INSERT INTO accounts") + 1
    tally = Tally()
    rule = half_written_then(template, rollback, FAULTS[fault])
    run_fault(template, tmp_path, "rollback", rule, after=False, tally=tally)
    assert tally.batch_errors == 1
    show(f"faults: a failed ROLLBACK ({fault}) after a half-written op; the writer serves on")


# -- through the real LedgerStore -----------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "at", "make"),
    [
        ("disk I/O error on an INSERT", "INSERT INTO transactions", FAULTS["disk I/O error"]),
        ("disk I/O error on COMMIT", "COMMIT", FAULTS["disk I/O error"]),
        ("a bug on an INSERT", "INSERT INTO transactions", FAULTS["RuntimeError"]),
    ],
)
async def test_the_store_serves_again_after_a_failed_batch(
    tmp_path: Path, show: Show, label: str, at: str, make: Fault
) -> None:
    clock = FakeClock(START)
    effects = Effects(ProgressRules(achievements=ACHIEVEMENTS))
    path = tmp_path / "store.sqlite3"
    store = FaultyStore(path, clock=clock, effects=effects)
    await store.open()
    engine = PointsEngine(store, clock=clock, effects=effects)
    try:
        before = [await engine.award(CHAT, u, 30, key=f"before:{u}", tag="text") for u in (1, 2)]
        fired: list[str] = []

        def rule(_index: int, sql: str) -> BaseException | None:
            if not fired and sql.startswith(at):
                fired.append(sql)
                return make()
            return None

        store.rule = rule
        calls = [
            engine.award(CHAT, 1 + i % 4, 10 + i, key=f"during:{i}", tag="text") for i in range(20)
        ]
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)
        store.rule = None
        assert fired, "the fault never fired"
        failed = [i for i, r in enumerate(results) if not isinstance(r, Receipt)]
        assert failed, results
        for i in failed:
            error = results[i]
            assert isinstance(error, StorageError), error
            assert_one_sentence(error)
        keys = {k for (k,) in rows(path, "SELECT idem_key FROM transactions")}
        for i, result in enumerate(results):
            assert (f"during:{i}" in keys) == isinstance(result, Receipt), (i, result)
        assert all(f"before:{u}" in keys for u in (1, 2)), "an acknowledged award was lost"

        after = await asyncio.gather(
            *(engine.award(CHAT, 5, 3, key=f"after:{i}", tag="text") for i in range(10))
        )
        assert all(not r.duplicate for r in after)
        retried = await asyncio.gather(
            *(engine.award(CHAT, 1 + i % 4, 10 + i, key=f"during:{i}", tag="text") for i in failed)
        )
        assert all(not r.duplicate for r in retried)
        assert [r.balance for r in before] == [30, 30]
    finally:
        await engine.close()
    figures = assert_sound(path, ACHIEVEMENTS)
    assert figures.transactions == 2 + 20 + 10 + figures.rewards
    show(
        f"store fault ({label}): {len(failed)} of 20 concurrent awards refused with StorageError,"
        f" {20 - len(failed)} committed, then 10 fresh awards and {len(failed)} retries"
        f" committed on the same writer ({figures.transactions} transactions,"
        f" {figures.rewards} rewards, check clean)"
    )


async def test_the_store_serves_again_after_a_failed_rollback(tmp_path: Path, show: Show) -> None:
    """One batch fails half-written and then its ROLLBACK fails: later awards still commit."""
    clock = FakeClock(START)
    effects = Effects(ProgressRules(achievements=ACHIEVEMENTS))
    path = tmp_path / "store.sqlite3"
    store = FaultyStore(path, clock=clock, effects=effects)
    await store.open()
    engine = PointsEngine(store, clock=clock, effects=effects)
    fired: list[str] = []

    def rule(_index: int, sql: str) -> BaseException | None:
        if sql.startswith("INSERT INTO accounts") and not fired:
            fired.append(sql)
            return RuntimeError("a bug after the first write")
        if sql == "ROLLBACK" and len(fired) == 1:
            fired.append(sql)
            return sqlite3.OperationalError("disk I/O error")
        return None

    try:
        acknowledged = await engine.award(CHAT, 1, 30, key="before", tag="text")
        store.rule = rule
        with pytest.raises(StorageError) as caught:
            await asyncio.wait_for(engine.award(CHAT, 1, 5, key="faulted", tag="text"), 60)
        assert_one_sentence(caught.value)
        store.rule = None
        assert fired == ["INSERT INTO accounts", "ROLLBACK"] or len(fired) == 2
        later = await asyncio.wait_for(
            asyncio.gather(
                *(engine.award(CHAT, 2, 5, key=f"later:{i}", tag="text") for i in range(5)),
                return_exceptions=True,
            ),
            60,
        )
        refused = [r for r in later if not isinstance(r, Receipt)]
        assert refused == [], (
            f"after one failed ROLLBACK the writer refuses everything: {refused[0]}"
        )
        retried = await engine.award(CHAT, 1, 5, key="faulted", tag="text")
        assert not retried.duplicate
        assert acknowledged.balance == 30
    finally:
        await engine.close()
    figures = assert_sound(path, ACHIEVEMENTS)
    show(
        f"store fault (failed ROLLBACK after a half-written op): {figures.transactions}"
        " transactions, check clean, the same writer served on"
    )


def test_accounts_dropped_from_a_small_cache_are_read_back_right(tmp_path: Path) -> None:
    """The writer keeps only so many account rows; one evicted and written again is read
    from the database, so its chain and balance carry on where they were."""
    path = tmp_path / "evict.sqlite3"
    conn = connect(path)
    migrate(conn)
    writer = BatchWriter(FakeClock(START).now, Effects(ProgressRules()), cached_accounts=2)
    expected: Counter[int] = Counter()
    for round_number in range(4):
        ops = [post(user, user, f"evict:{round_number}:{user}") for user in range(1, 6)]
        apply_all(writer, conn, ops)
        expected.update({user: user for user in range(1, 6)})
        assert len(writer._accounts) == 2  # the bound holds
    conn.close()
    balances = dict(rows(path, "SELECT user_id, balance FROM accounts WHERE chat_id = ?", (CHAT,)))
    assert balances == dict(expected)
    assert rows(path, "SELECT MAX(seq) FROM accounts") == [(4,)]
    assert_sound(path)
