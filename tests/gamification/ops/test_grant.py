"""`python -m bot grant`: bulk changes and balance migration from a CSV file, on SQLite and
PostgreSQL, through the real command line (its main function, in this process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from plugins.gamification.domain.keys import grant_key
from plugins.gamification.ops.grant_file import read_grant_file
from plugins.gamification.storage.records import KnownPerson
from tests.support import pgsync
from tests.support.backends import LedgerBackend, make_backend

CHAT = -100_900
OTHER_CHAT = -100_901
ALICE, BOB, CAROL, DAVE, ROBOT = 101, 102, 103, 104, 900
# Before every test: alice 10, bob 40, dave 7 in CHAT; carol is known but has no account;
# alice also has 30 in another chat, which no grant for CHAT touches.
START = {ALICE: 10, BOB: 40, DAVE: 7}
GOOD = '\ufeffuser,points,reason\r\n@Alice,50,"welcome, friend"\r\n\r\n102,-5,\r\n103,+7,moved\r\n'


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    """A seeded ledger on each backend (PostgreSQL's runs skip, with the reason, without a
    server, and fail where GAMIFICATION_REQUIRE_SERVICES is set)."""
    made = make_backend(request.param, tmp_path)
    _run(_seed(made))
    yield made
    made.drop()


def _run(coro: Any) -> Any:
    # On a loop of its own thread: the command line runs asyncio.run in the test's thread.
    return pgsync.run(coro)


async def _seed(backend: LedgerBackend) -> None:
    engine = await backend.open_engine()
    try:
        for user, points in START.items():
            await engine.award(CHAT, user, points, key=f"seed:{user}")
        await engine.award(OTHER_CHAT, ALICE, 30, key="seed:other")
        for person in (
            KnownPerson(ALICE, "alice", "Alice", False),
            KnownPerson(BOB, "bob", "Bob", False),
            KnownPerson(CAROL, "carol", "Carol", False),
            KnownPerson(ROBOT, "points_bot", "A bot", True),
        ):
            engine.store.remember_person_later(person, "2026-11-25T12:00:00.000000Z")
    finally:
        await engine.close()


def grant(
    capsys: pytest.CaptureFixture[str], backend: LedgerBackend, file: Path, *options: str
) -> tuple[int, str, str]:
    code = main(["grant", "--chat", str(CHAT), str(file), "--db", str(backend.location), *options])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def csv_file(tmp_path: Path, text: str, name: str = "grant.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def balances(backend: LedgerBackend, chat: int = CHAT) -> dict[int, int]:
    rows = backend.read("SELECT user_id, balance FROM accounts WHERE chat_id = ?", (chat,))
    return {int(user): int(balance) for user, balance in rows}


def snapshot(backend: LedgerBackend) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("transactions", "accounts", "admin_actions", "outbox")
    return {table: sorted(backend.read(f"SELECT * FROM {table}")) for table in tables}


def assert_sound(backend: LedgerBackend) -> None:
    """`check` is clean and every cached balance is the sum of its transactions."""
    assert backend.check().ok
    sums = {(chat, user): total for chat, user, total, _ in backend.sums()}
    assert {(chat, user): bal for chat, user, bal in backend.cached_balances()} == sums


def test_a_good_file_is_applied_once_and_audited(
    backend: LedgerBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = csv_file(tmp_path, GOOD)
    code, out, err = grant(capsys, backend, file)
    assert (code, err) == (0, "")
    # Alice's 50 points are her first 50: like /award, the grant unlocks "first_steps" (+10).
    assert balances(backend) == {ALICE: 70, BOB: 35, CAROL: 7, DAVE: 7}
    assert backend.read("SELECT user_id, amount FROM transactions WHERE kind = 'achievement'") == [
        (ALICE, 10)
    ]
    assert balances(backend, OTHER_CHAT) == {ALICE: 30}
    summary = " ".join(out.split())
    assert "rows 3 applied 3 already applied 0 already at target 0 total change +52" in summary
    reasons = backend.read(
        "SELECT user_id, amount, reason, actor_id FROM transactions WHERE idem_key LIKE 'grt:%'"
    )
    assert sorted(reasons) == [
        (ALICE, 50, "welcome, friend", 0),
        (BOB, -5, "bulk grant", 0),
        (CAROL, 7, "moved", 0),
    ]
    audit = backend.read("SELECT action, target_id, detail FROM admin_actions ORDER BY id")
    assert [(action, target) for action, target, _ in audit] == [
        ("grant", ALICE), ("grant", BOB), ("grant", CAROL), ("grant-file", None),
    ]  # fmt: skip
    digest = read_grant_file(GOOD.encode(), chat_id=CHAT, mode="add").digest
    assert f"sha256 {digest}: 3 rows, 3 applied" in audit[-1][2]
    assert "total +52" in audit[-1][2]
    assert_sound(backend)

    before = snapshot(backend)
    # The same rows saved another way (no BOM, no header, LF, spaces, other quoting) are
    # the same file: nothing changes, and every row says it was already applied.
    again = csv_file(tmp_path, '@alice, 50 ,"welcome, friend"\n102,-5\n"103","+7","moved"\n', "b")
    for path in (file, again):
        code, out, err = grant(capsys, backend, path)
        assert (code, err) == (0, "")
        assert "applied 0 already applied 3" in " ".join(out.split())
        assert out.count("already applied (#") == 3
    assert snapshot(backend) == before


def test_dry_run_prints_each_row_and_writes_nothing(
    backend: LedgerBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(backend)
    code, out, err = grant(capsys, backend, csv_file(tmp_path, GOOD), "--dry-run")
    assert (code, err) == (0, "")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:4].strip()}
    # line: user, id, current balance, change, new balance, status
    assert rows["2"] == ["@Alice", "101", "10", "+50", "60", "would", "apply"]
    assert rows["4"] == ["102", "102", "40", "-5", "35", "would", "apply"]
    assert rows["5"] == ["103", "103", "0", "+7", "7", "would", "apply"]
    assert "would apply 3" in " ".join(out.split())
    assert "Dry run: nothing was written." in out
    assert snapshot(backend) == before


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("@nobody,5,x", 1, "@nobody is nobody the bot has seen"),
        ("alice,5,x", 1, "is not a user"),
        ("# a comment,5,x", 1, "is not a user"),
        ("@points_bot,5,x", 1, "is a bot"),
        ("102,3,again", 1, "already in line 3"),
        ("@bob,3,again", 1, "same person as line 3"),
        ("104,12.5,x", 2, "'12.5' is not a whole number"),
        ("104,,x", 2, "the points are missing"),
        ("104,0,x", 2, "zero points changes nothing"),
        ("104,9007199254740993,x", 2, "outside the ledger's range"),
        ("104,-8,x", 2, "has 7 points, so -8 would leave -1"),
        ("104,5," + "r" * 501, 3, "the reason is 501 characters"),
        ("104,5,x,extra", 4, "at most 3 fields"),
    ],
)
def test_one_bad_row_refuses_the_whole_file(
    row: str,
    column: int,
    words: str,
    backend: LedgerBackend,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(backend)
    file = csv_file(tmp_path, f"user,points,reason\n@alice,5,ok\n102,5,ok\n{row}\n103,5,ok\n")
    code, out, err = grant(capsys, backend, file)
    assert (code, out) == (1, "")
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"- Line 4, column {column} (")
    assert words in lines[0]
    assert lines[1].endswith("1 bad row; nothing was written.")
    assert snapshot(backend) == before


@pytest.mark.parametrize("mode", [(), ("--set",)])
def test_many_bad_rows_are_listed_up_to_twenty(
    mode: tuple[str, ...],
    backend: LedgerBackend,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = "101,5\n" + "".join(f"{1000 + i},x\n" for i in range(25))
    code, out, err = grant(capsys, backend, csv_file(tmp_path, text), *mode)
    assert (code, out) == (1, "")
    listed = [line for line in err.splitlines() if line.startswith("- Line ")]
    assert len(listed) == 20
    assert listed[0].startswith("- Line 2, column 2 (points): 'x' is not a whole number")
    assert "- ... and 5 more." in err
    assert "25 bad rows" in err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfeu\x00", "is not UTF-8 text"),
        (b"user,points,reason\n\n", "has no rows"),
        (b'101,"5\n', "is not valid CSV"),
    ],
)
def test_a_file_that_is_no_grant_file_is_refused(
    content: bytes,
    words: str,
    backend: LedgerBackend,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    before = snapshot(backend)
    code, out, err = grant(capsys, backend, path)
    assert (code, out) == (1, "")
    assert words in err
    assert err.strip().endswith("Nothing was written.")
    assert len(err.strip().splitlines()) == 1
    assert snapshot(backend) == before


def test_set_lands_exactly_on_the_targets_and_twice_changes_nothing(
    backend: LedgerBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Up, down to zero, a new account, one already there, by id and by @username.
    text = "user,points\n@alice,1000,migrated from MEE6\n@bob,0\n103,25\n104,7\n"
    file = csv_file(tmp_path, text)
    code, out, err = grant(capsys, backend, file, "--set", "--dry-run")
    assert (code, err) == (0, "")
    assert balances(backend) == START
    code, out, err = grant(capsys, backend, file, "--set")
    assert (code, err) == (0, "")
    assert balances(backend) == {ALICE: 1000, BOB: 0, CAROL: 25, DAVE: 7}
    summary = " ".join(out.split())
    assert "rows 4 applied 3 already applied 0 already at target 1 total change +975" in summary
    changes = backend.read(
        "SELECT user_id, amount, kind FROM transactions WHERE chat_id = ? AND id > 4", (CHAT,)
    )
    # Adjustments only: the ledger stays append-only, and no reward moved a balance.
    assert sorted(changes) == [(ALICE, 990, "admin"), (BOB, -40, "admin"), (CAROL, 25, "admin")]
    actions = backend.read("SELECT action FROM admin_actions ORDER BY id")
    assert [a for (a,) in actions] == ["set-balance"] * 3 + ["set-balance-file"]
    assert_sound(backend)

    before = snapshot(backend)
    code, out, err = grant(capsys, backend, file, "--set")
    assert (code, err) == (0, "")
    assert "applied 0 already applied 3 already at target 1 total change +0" in " ".join(
        out.split()
    )
    assert snapshot(backend) == before


def test_a_deduction_past_zero_needs_force(
    backend: LedgerBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = csv_file(tmp_path, "@bob,-50,penalty\n@alice,5\n")
    before = snapshot(backend)
    code, out, err = grant(capsys, backend, file)
    assert (code, out) == (1, "")
    assert "- Line 1, column 2 (points): @bob has 40 points, so -50 would leave -10" in err
    assert "--force" in err
    assert snapshot(backend) == before
    code, out, err = grant(capsys, backend, file, "--force")
    assert (code, err) == (0, "")
    assert balances(backend)[BOB] == -10
    assert_sound(backend)


def test_a_rerun_after_an_interruption_writes_exactly_the_missing_rows(
    backend: LedgerBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that stopped after writing alice's row (as the command writes it: same key,
    same amount): running the file again writes bob's and carol's, and alice's once."""
    digest = read_grant_file(GOOD.encode(), chat_id=CHAT, mode="add").digest

    async def first_row_only() -> None:
        engine = await backend.open_engine()
        try:
            await engine.adjust(
                CHAT, ALICE, 50, key=grant_key(digest, ALICE), actor_id=0, reason="welcome"
            )
        finally:
            await engine.close()

    _run(first_row_only())
    code, out, err = grant(capsys, backend, csv_file(tmp_path, GOOD))
    assert (code, err) == (0, "")
    assert "applied 2 already applied 1" in " ".join(out.split())
    # (Alice's row was written here by an engine without achievements: no reward.)
    assert balances(backend) == {ALICE: 60, BOB: 35, CAROL: 7, DAVE: 7}
    assert backend.read("SELECT COUNT(*) FROM transactions WHERE idem_key LIKE 'grt:%'") == [(3,)]
    assert_sound(backend)


def test_the_same_file_for_another_chat_is_another_operation(
    backend: LedgerBackend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = csv_file(tmp_path, "101,5\n")
    assert grant(capsys, backend, file)[0] == 0
    code = main(["grant", "--chat", str(OTHER_CHAT), str(file), "--db", str(backend.location)])
    assert code == 0
    capsys.readouterr()
    assert balances(backend)[ALICE] == 15
    assert balances(backend, OTHER_CHAT) == {ALICE: 35}


def test_what_cannot_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = csv_file(tmp_path, "101,5\n")
    missing = tmp_path / "nothing.sqlite3"
    cases = [
        (["--chat", "1", str(tmp_path / "none.csv"), "--db", str(missing)], "is not a file"),
        (["--chat", "1", str(file), "--db", str(missing)], "there is no ledger at"),
        (["--chat", str(2**63), str(file), "--db", str(missing)], "is not a chat id"),
    ]
    for args, words in cases:
        assert main(["grant", *args]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert words in err
        assert len(err.strip().splitlines()) == 1
    assert not missing.exists()


def test_help_says_what_grant_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["grant", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in (
        "user,points,reason",
        "--set",
        "target balance",
        "refuses the whole file, naming line and column",
        "running the same file again changes nothing",
        "--dry-run",
        "--force",
        "admin_actions",
    ):
        assert phrase in text
