"""The integrity check finds every kind of tampering done behind the engine's back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plugins.gamification import FakeClock, IntegrityReport
from plugins.gamification.storage.hashing import chain_hash, heads_digest
from plugins.gamification.storage.sqlite.schema import GENESIS_HASH
from tests.support.backends import LedgerBackend

CHAT = -100_800
OTHER_CHAT = -100_900
A = (CHAT, 1)
B = (CHAT, 2)
C = (OTHER_CHAT, 1)
ACCOUNTS = (A, B, C)
# Ids the `ledger` fixture gives each account's rows, in order.
ROWS = {A: [1, 4, 7, 10, 13], B: [2, 5, 8, 11, 14], C: [3, 6, 9, 12, 15, 16, 17]}
TOTAL = 17

COLUMNS = (
    "id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash"
)


@pytest.fixture
async def ledger(ledger_backend: LedgerBackend, clock: FakeClock) -> LedgerBackend:
    """A closed ledger of three interleaved accounts; C also has a deduction and a revert."""
    async with await ledger_backend.open_engine(clock=clock) as engine:
        for i in range(15):
            chat, user = ACCOUNTS[i % 3]
            clock.advance(90)
            await engine.award(chat, user, i + 1, key=f"k{i}", reason=f"reason {i}")
        await engine.deduct(*C, 4, key="deduct", actor_id=9, reason="shop")
        await engine.revert(3, key="revert", actor_id=9, reason="mistake")
    return ledger_backend


def rechain(conn: Any, account: tuple[int, int]) -> None:
    """Recompute one account's chain and its accounts row, as a forger who knows the format."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM transactions WHERE chat_id = ? AND user_id = ? ORDER BY id",
        account,
    ).fetchall()
    # Park every seq on a distinct negative value first, so renumbering never collides.
    conn.execute(
        "UPDATE transactions SET seq = -id - 1 WHERE chat_id = ? AND user_id = ?", account
    )
    balance, earned, prev = 0, 0, GENESIS_HASH
    for seq, row in enumerate(rows, 1):
        tx_id, chat, user, _, amount, _, kind, key, actor, reason, breakdown, at, reverts = row[
            :13
        ]
        balance += amount
        if kind == "revert":
            earned -= max(-amount, 0)
        elif amount > 0:
            earned += amount
        digest = chain_hash(
            prev, tx_id=tx_id, chat_id=chat, user_id=user, seq=seq, amount=amount,
            balance_after=balance, kind=kind, idem_key=key, actor_id=actor, reason=reason,
            breakdown=breakdown, created_at=at, reverts_id=reverts,
        )  # fmt: skip
        conn.execute(
            "UPDATE transactions SET seq = ?, balance_after = ?, prev_hash = ?, hash = ?"
            " WHERE id = ?",
            (seq, balance, prev, digest, tx_id),
        )
        prev = digest
    conn.execute(
        "UPDATE accounts SET balance = ?, earned = ?, seq = ?, head_hash = ?"
        " WHERE chat_id = ? AND user_id = ?",
        (balance, earned, len(rows), prev, *account),
    )


def assert_blames(report: IntegrityReport, account: tuple[int, int], tx_id: int | None) -> None:
    """The report fails, names only `account`, and names `tx_id` as its first bad row."""
    assert not report.ok
    named = [v for v in report.violations if v.chat_id is not None]
    assert named, report.to_text()
    assert {(v.chat_id, v.user_id) for v in named} == {account}, report.to_text()
    text = report.to_text()
    assert f"account {account[0]}/{account[1]}" in text
    if tx_id is not None:
        assert {v.tx_id for v in named if v.tx_id is not None} == {tx_id}, text
        assert f"transaction #{tx_id}:" in text


def swap_ids(conn: Any, first: int, second: int) -> None:
    """Swap two rows' places: every column but the id trades places."""
    conn.execute("UPDATE transactions SET id = -1 WHERE id = ?", (first,))
    conn.execute("UPDATE transactions SET id = ? WHERE id = ?", (first, second))
    conn.execute("UPDATE transactions SET id = ? WHERE id = -1", (second,))


# -- A clean ledger --------------------------------------------------------------------------


async def test_a_clean_ledger_reports_ok(ledger: LedgerBackend) -> None:
    report = ledger.check()

    assert report.ok, report.to_text()
    assert (report.violation_count, report.violations) == (0, [])
    assert (report.accounts, report.transactions, report.high_water) == (3, TOTAL, TOTAL)
    assert report.quick_check == "ok"
    assert report.anchor is None
    heads = ledger.read(
        "SELECT chat_id, user_id, seq, head_hash FROM accounts ORDER BY chat_id, user_id"
    )
    assert report.digest == heads_digest(heads)


async def test_a_clean_ledger_matches_its_own_checkpoint(ledger: LedgerBackend) -> None:
    recorded = ledger.check(record=True)
    again = ledger.check()

    assert recorded.ok
    assert again.ok, again.to_text()
    assert again.anchor is not None
    assert (again.anchor.high_water, again.anchor.tx_count) == (TOTAL, TOTAL)
    assert again.anchor.digest == recorded.digest == again.digest


async def test_new_transactions_after_a_checkpoint_are_fine(
    ledger: LedgerBackend, clock: FakeClock
) -> None:
    ledger.check(record=True)
    async with await ledger.open_engine(clock=clock) as engine:
        await engine.award(*A, 5, key="later")
        await engine.revert(1, key="later-revert", actor_id=9)
        report = await engine.check()

    assert report.ok, report.to_text()
    assert report.anchor is not None
    assert report.anchor.high_water == TOTAL
    assert report.transactions == TOTAL + 2


# -- Edited rows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "tx_id", "sql"),
    [
        (A, 7, "UPDATE transactions SET amount = amount + 100 WHERE id = ?"),
        (
            A,
            7,
            "UPDATE transactions SET amount = amount + 100, balance_after = balance_after + 100"
            " WHERE id = ?",
        ),
        (A, 7, "UPDATE transactions SET balance_after = balance_after + 1 WHERE id = ?"),
        (A, 7, "UPDATE transactions SET reason = 'generous admin' WHERE id = ?"),
        (A, 7, "UPDATE transactions SET kind = 'admin' WHERE id = ?"),
        (A, 7, "UPDATE transactions SET actor_id = 9 WHERE id = ?"),
        (A, 7, "UPDATE transactions SET created_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?"),
        (A, 7, "UPDATE transactions SET idem_key = 'other' WHERE id = ?"),
        (
            A,
            7,
            """UPDATE transactions SET breakdown = '{"base":1,"multipliers":[],"result":1}'"""
            " WHERE id = ?",
        ),
        (A, 7, "UPDATE transactions SET seq = 99 WHERE id = ?"),
        (
            A,
            7,
            "UPDATE transactions SET hash = (SELECT hash FROM transactions WHERE id = 4)"
            " WHERE id = ?",
        ),
        (A, 7, "UPDATE transactions SET prev_hash = hash WHERE id = ?"),
        (C, 17, "UPDATE transactions SET reverts_id = 6 WHERE id = ?"),
        (
            C,
            16,
            "UPDATE transactions SET amount = -1, balance_after = balance_after + 3 WHERE id = ?",
        ),
    ],
    ids=[
        "amount",
        "amount-and-balance",
        "balance-after",
        "reason",
        "kind",
        "actor",
        "created-at",
        "key",
        "breakdown",
        "seq",
        "hash",
        "prev-hash",
        "reverts-id",
        "deduction",
    ],
)
async def test_an_edited_row_is_found(
    ledger: LedgerBackend, account: tuple[int, int], tx_id: int, sql: str
) -> None:
    with ledger.tampering() as conn:
        conn.execute(sql, (tx_id,))

    assert_blames(ledger.check(), account, tx_id)


async def test_an_edited_row_is_named_even_when_the_edit_was_to_the_last_row(
    ledger: LedgerBackend,
) -> None:
    with ledger.tampering() as conn:
        conn.execute("UPDATE transactions SET reason = 'x' WHERE id = 13")

    assert_blames(ledger.check(), A, 13)


# -- Deleted, inserted and swapped rows ------------------------------------------------------


@pytest.mark.parametrize(
    ("deleted", "first_bad"), [(7, 10), (1, 4), (4, 7)], ids=["middle", "first", "second"]
)
async def test_a_deleted_row_is_found(ledger: LedgerBackend, deleted: int, first_bad: int) -> None:
    with ledger.tampering() as conn:
        conn.execute("DELETE FROM transactions WHERE id = ?", (deleted,))

    report = ledger.check()

    assert_blames(report, A, first_bad)
    assert any(v.tx_id is None and "cached" in v.problem for v in report.violations)


async def test_an_inserted_row_with_a_made_up_hash_is_found(ledger: LedgerBackend) -> None:
    with ledger.tampering() as conn:
        conn.execute(
            f"INSERT INTO transactions ({COLUMNS}, request_hash) SELECT 18, chat_id, user_id,"
            " seq + 1, 500, balance_after + 500, 'admin', 'forged', 9, 'gift', breakdown,"
            " created_at, NULL, hash, ?, '' FROM transactions WHERE id = 13",
            ("f" * 64,),
        )

    assert_blames(ledger.check(), A, 18)


async def test_an_inserted_row_with_a_forged_hash_is_found_by_its_account_row(
    ledger: LedgerBackend,
) -> None:
    with ledger.tampering() as conn:
        conn.execute(
            f"INSERT INTO transactions ({COLUMNS}, request_hash) SELECT 18, chat_id, user_id,"
            " seq + 1, 500, 0, 'admin', 'forged', 9, 'gift', breakdown, created_at, NULL, hash,"
            " '', '' FROM transactions WHERE id = 13"
        )
        rechain(conn, A)
        # The forger could not (or forgot to) update the cached totals.
        conn.execute(
            "UPDATE accounts SET balance = balance - 500, earned = earned - 500, seq = 5,"
            " head_hash = (SELECT hash FROM transactions WHERE id = 13)"
            " WHERE chat_id = ? AND user_id = ?",
            A,
        )

    report = ledger.check()

    assert_blames(report, A, None)
    assert [v.tx_id for v in report.violations] == [None]
    assert "cached balance" in report.violations[0].problem


async def test_a_row_inserted_before_the_first_is_found(ledger: LedgerBackend) -> None:
    with ledger.tampering() as conn:
        conn.execute("DROP INDEX transactions_account_seq")  # the attacker goes all the way
        conn.execute(
            f"INSERT INTO transactions ({COLUMNS}, request_hash) SELECT 0, chat_id, user_id,"
            " 1, 1000, 1000, 'admin', 'forged', 9, 'gift', breakdown, created_at, NULL, ?, '', ''"
            " FROM transactions WHERE id = 1",
            (GENESIS_HASH,),
        )
        (row,) = conn.execute(f"SELECT {COLUMNS} FROM transactions WHERE id = 0").fetchall()
        forged = chain_hash(
            GENESIS_HASH, tx_id=0, chat_id=row[1], user_id=row[2], seq=1, amount=1000,
            balance_after=1000, kind="admin", idem_key="forged", actor_id=9, reason="gift",
            breakdown=row[10], created_at=row[11], reverts_id=None,
        )  # fmt: skip
        conn.execute("UPDATE transactions SET hash = ? WHERE id = 0", (forged,))

    # The forged row is consistent on its own; the chain breaks at the genuine first row.
    assert_blames(ledger.check(), A, 1)


@pytest.mark.parametrize(
    ("first", "second"), [(4, 7), (4, 13), (1, 13)], ids=["adjacent", "apart", "ends"]
)
async def test_two_swapped_rows_are_found(ledger: LedgerBackend, first: int, second: int) -> None:
    with ledger.tampering() as conn:
        swap_ids(conn, first, second)

    assert_blames(ledger.check(), A, first)


async def test_a_row_moved_to_another_account_is_found_in_both(ledger: LedgerBackend) -> None:
    with ledger.tampering() as conn:
        conn.execute("DROP INDEX transactions_account_seq")
        conn.execute("UPDATE transactions SET user_id = 2 WHERE id = 7")

    report = ledger.check()

    assert not report.ok
    chain = {(v.chat_id, v.user_id): v.tx_id for v in report.violations if v.tx_id is not None}
    assert chain == {A: 10, B: 7}


# -- Edited cached totals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE accounts SET balance = balance + 100", "cached balance"),
        ("UPDATE accounts SET earned = earned + 100", "cached lifetime earned"),
        ("UPDATE accounts SET seq = seq + 1", "cached chain head"),
        ("UPDATE accounts SET head_hash = ?", "cached chain head"),
    ],
    ids=["balance", "earned", "seq", "head"],
)
async def test_an_edited_account_row_is_found(
    ledger: LedgerBackend, sql: str, problem: str
) -> None:
    with ledger.tampering() as conn:
        params = (GENESIS_HASH,) if "?" in sql else ()
        conn.execute(f"{sql} WHERE chat_id = ? AND user_id = ?", (*params, *B))

    report = ledger.check()

    assert_blames(report, B, None)
    assert len(report.violations) == 1
    assert report.violations[0].tx_id is None
    assert problem in report.violations[0].problem


async def test_a_deleted_account_row_is_found(ledger: LedgerBackend) -> None:
    with ledger.tampering() as conn:
        conn.execute("DELETE FROM accounts WHERE chat_id = ? AND user_id = ?", C)

    report = ledger.check()

    assert_blames(report, C, None)
    assert "no balance row" in report.violations[0].problem


# -- Rewrites that keep the chain consistent: caught against a checkpoint -------------------


async def test_a_truncated_tail_is_found_against_a_checkpoint(ledger: LedgerBackend) -> None:
    recorded = ledger.check(record=True)
    assert recorded.ok
    with ledger.tampering() as conn:
        conn.execute("DELETE FROM transactions WHERE id IN (10, 13)")
        rechain(conn, A)

    # The chain itself is consistent again: only the checkpoint can tell.
    unanchored = ledger.check_unanchored()
    assert unanchored.ok, unanchored.to_text()

    report = ledger.check()

    assert not report.ok
    assert report.anchor is not None
    assert report.anchor.digest == recorded.digest
    assert report.digest != recorded.digest
    assert report.violations
    for violation in report.violations:
        assert "checkpoint" in violation.problem
    # The heads kept with the checkpoint name the account whose chain was cut.
    named = [v for v in report.violations if v.chat_id is not None]
    assert [(v.chat_id, v.user_id) for v in named] == [A]
    assert "is gone: history was cut or rewritten" in named[0].problem
    ledger_wide = [v for v in report.violations if v.chat_id is None]
    assert ledger_wide
    assert all(v.tx_id == TOTAL for v in ledger_wide)
    assert "Compared with the checkpoint of" in report.to_text()


async def test_a_rewritten_history_is_found_against_a_checkpoint(ledger: LedgerBackend) -> None:
    recorded = ledger.check(record=True)
    with ledger.tampering() as conn:
        conn.execute("UPDATE transactions SET amount = 400 WHERE id = 4")
        rechain(conn, A)

    assert ledger.check_unanchored().ok
    report = ledger.check()

    assert not report.ok
    assert report.anchor is not None
    assert report.anchor.digest == recorded.digest
    assert sorted(((v.chat_id, v.tx_id) for v in report.violations), key=str) == sorted(
        [(A[0], None), (None, TOTAL)], key=str
    )
    assert all("rewritten" in v.problem for v in report.violations)
    assert any((v.chat_id, v.user_id) == A and "changed" in v.problem for v in report.violations)


async def test_a_rechained_insertion_is_found_against_a_checkpoint(ledger: LedgerBackend) -> None:
    ledger.check(record=True)
    with ledger.tampering() as conn:
        conn.execute(
            f"INSERT INTO transactions ({COLUMNS}, request_hash) SELECT 0, chat_id, user_id,"
            " -1, 1000, 0, 'admin', 'forged', 9, 'gift', breakdown, created_at, NULL, '', '', ''"
            " FROM transactions WHERE id = 1"
        )
        rechain(conn, A)

    report = ledger.check()

    assert not report.ok
    assert {v.tx_id for v in report.violations if v.chat_id is None} == {TOTAL}
    assert any(
        "18 transactions" in v.problem and "counted 17" in v.problem for v in report.violations
    )
    assert any((v.chat_id, v.user_id) == A for v in report.violations)


# -- The report as text and JSON -------------------------------------------------------------


async def test_report_text_and_json_of_a_clean_ledger(ledger: LedgerBackend) -> None:
    report = ledger.check()

    lines = report.to_text().splitlines()
    assert lines[0] == "Ledger integrity: CLEAN"
    assert lines[1].startswith(f"Checked 3 accounts and {TOTAL} transactions in ")
    assert lines[1].endswith(f"(up to transaction #{TOTAL}).")
    assert lines[2] == f"Digest: {report.digest}"
    # The storage's own check: SQLite's quick_check, PostgreSQL's append-only triggers.
    assert lines[3] in ("SQLite quick_check: ok", "PostgreSQL append-only triggers: ok")
    assert lines[4].startswith(f"Outbox: {TOTAL} events waiting, the oldest since ")
    assert len(lines) == 5

    data = json.loads(report.to_json())
    assert data["ok"] is True
    assert data["violation_count"] == 0
    assert data["violations"] == []
    assert data["anchor"] is None
    assert (data["accounts"], data["transactions"], data["high_water"]) == (3, TOTAL, TOTAL)
    assert data["digest"] == report.digest
    assert data["quick_check"] == "ok"
    assert data["checked_at"] == report.checked_at


async def test_report_text_and_json_list_the_violations(ledger: LedgerBackend) -> None:
    ledger.check(record=True)
    with ledger.tampering() as conn:
        conn.execute("UPDATE transactions SET reason = 'x' WHERE id = 7")
        conn.execute("UPDATE transactions SET amount = 1 WHERE id = 8")
        conn.execute("UPDATE accounts SET balance = 0 WHERE chat_id = ? AND user_id = ?", C)
        conn.execute("DELETE FROM transactions WHERE id = 15")

    report = ledger.check()
    text = report.to_text()

    assert report.violation_count == len(report.violations) >= 5
    assert text.splitlines()[0] == f"Ledger integrity: VIOLATIONS FOUND: {report.violation_count}"
    assert f"- account {CHAT}/1, transaction #7: its content does not match its hash" in text
    assert f"- account {CHAT}/2, transaction #8: balance after" in text
    assert f"- account {OTHER_CHAT}/1: cached balance 0 but its transactions sum to" in text
    assert f"- ledger, transaction #{TOTAL}: " in text
    assert report.anchor is not None
    assert f"Compared with the checkpoint of {report.anchor.created_at}" in text
    short = report.to_text(listed=1)
    assert sum(line.startswith("- ") for line in short.splitlines()) == 1
    assert short.splitlines()[-1] == f"… and {report.violation_count - 1:,} more."

    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert data["violation_count"] == report.violation_count
    assert {"chat_id": CHAT, "user_id": 1, "tx_id": 7} in [
        {k: v[k] for k in ("chat_id", "user_id", "tx_id")} for v in data["violations"]
    ]
    assert all(set(v) == {"chat_id", "user_id", "tx_id", "problem"} for v in data["violations"])
    assert data["anchor"]["high_water"] == TOTAL
    assert data["anchor"]["digest"] == report.anchor.digest
