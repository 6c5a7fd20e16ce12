"""Operator commands: online backup, streaming export, audited rebuild of the balance cache."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from plugins.gamification import FakeClock, PointsEngine, StorageError
from plugins.gamification.domain.clock import format_utc
from plugins.gamification.storage.hashing import chain_hash
from plugins.gamification.storage.sqlite import maintenance as operations
from plugins.gamification.storage.sqlite.integrity import run_check
from plugins.gamification.storage.sqlite.maintenance import (
    EXPORT_COLUMNS,
    AccountState,
    BalanceDifference,
    OperationRefusedError,
    RebuildRefusedError,
    backup,
    export,
    rebuild_balances,
)

ROOT = Path(__file__).resolve().parents[3]
CHAT = -100_700
OTHER = -100_701
TOTAL = 14
ACCOUNT_COLUMNS = "chat_id, user_id, balance, earned, seq, head_hash"


@pytest.fixture
async def ledger(db_path: Path, clock: FakeClock) -> Path:
    """A closed ledger over two chats, with text that needs quoting, a deduction and a revert."""
    async with await PointsEngine.open(db_path, clock=clock) as engine:
        for i in range(12):
            clock.advance(60)
            chat = OTHER if i % 3 == 0 else CHAT
            await engine.award(chat, i % 4 + 1, i + 5, key=f"k{i}", reason=f'say "hi",\nrow {i}')
        await engine.deduct(CHAT, 1, 3, key="deduct", actor_id=9, reason="shop")
        await engine.revert(2, key="revert", actor_id=9, reason="mistake")
    return db_path


def query(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def write(path: Path, *statements: str) -> None:
    """Change the file behind the engine's back, as an operator with sqlite3 (or an attacker)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for sql in statements:
            conn.execute(sql)
    finally:
        conn.close()


def accounts(path: Path) -> list[tuple[Any, ...]]:
    return query(path, f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY chat_id, user_id")


def transactions(path: Path) -> list[tuple[Any, ...]]:
    return query(path, "SELECT * FROM transactions ORDER BY id")


def stored_rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM transactions ORDER BY id")]
    finally:
        conn.close()


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


# -- backup ---------------------------------------------------------------------------------


async def test_backup_of_a_ledger_being_written(tmp_path: Path, clock: FakeClock) -> None:
    source, dest = tmp_path / "live.sqlite3", tmp_path / "copy.sqlite3"
    engine = await PointsEngine.open(source, clock=clock, synchronous="NORMAL")
    committed = 0
    stop, progressed = asyncio.Event(), asyncio.Event()

    async def keep_awarding() -> None:
        nonlocal committed
        while not stop.is_set():
            round_ = committed
            await asyncio.gather(
                *(engine.award(CHAT, u, 1 + u % 5, key=f"w{round_}-{u}") for u in range(1, 21))
            )
            committed += 20
            progressed.set()

    async def until(count: int) -> None:
        while committed < count:
            progressed.clear()
            await progressed.wait()

    writer = asyncio.create_task(keep_awarding())
    try:
        async with asyncio.timeout(60):
            await until(200)
            before = committed
            report = await asyncio.to_thread(backup, source, dest)
            # At most one round in flight can be in the copy uncounted; the round after it
            # began after the copy was done, so the copy is a strict prefix.
            await until(committed + 40)
    finally:
        stop.set()
        await writer
        await engine.close()

    assert report.ok, report.to_text()
    copied, live = transactions(dest), transactions(source)
    assert before <= len(copied) < len(live) == committed
    assert copied == live[: len(copied)]  # a prefix in commit order, nothing half-written
    assert report.transactions == len(copied)
    assert query(dest, "PRAGMA integrity_check") == [("ok",)]
    assert query(dest, "PRAGMA journal_mode") == [("delete",)]
    assert leftovers(tmp_path) == []


def test_backup_never_overwrites_dest(ledger: Path, tmp_path: Path) -> None:
    dest = tmp_path / "precious.sqlite3"
    dest.write_bytes(b"yesterday's backup")
    with pytest.raises(OperationRefusedError, match="already exists"):
        backup(ledger, dest)
    assert dest.read_bytes() == b"yesterday's backup"
    assert leftovers(tmp_path) == []


def test_backup_publish_refuses_a_dest_that_appeared_meanwhile(tmp_path: Path) -> None:
    partial, dest = tmp_path / ".x.partial", tmp_path / "x.sqlite3"
    partial.write_bytes(b"the copy")
    dest.write_bytes(b"someone else's")
    with pytest.raises(OperationRefusedError, match="appeared meanwhile"):
        operations.publish(partial, dest)
    assert dest.read_bytes() == b"someone else's"


def test_backup_of_a_missing_ledger_or_into_a_missing_folder(ledger: Path, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="There is no database"):
        backup(tmp_path / "nope.sqlite3", tmp_path / "b.sqlite3")
    with pytest.raises(StorageError, match="does not exist"):
        backup(ledger, tmp_path / "no" / "such" / "b.sqlite3")
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "b.sqlite3").exists()


# -- export ---------------------------------------------------------------------------------


def test_export_csv_has_a_header_and_every_column(ledger: Path) -> None:
    out = io.StringIO()
    assert export(ledger, out, "csv", None) == TOTAL
    header, *rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(header) == EXPORT_COLUMNS
    stored = stored_rows(ledger)
    assert len(rows) == len(stored) == TOTAL
    for row, db_row in zip(rows, stored, strict=True):
        assert dict(zip(header, row, strict=True)) == {
            k: "" if db_row[k] is None else str(db_row[k]) for k in EXPORT_COLUMNS
        }
    by_id = {int(r[0]): dict(zip(header, r, strict=True)) for r in rows}
    assert by_id[1]["reason"] == 'say "hi",\nrow 0'
    assert by_id[TOTAL]["kind"] == "revert"
    assert by_id[TOTAL]["reverts_id"] == "2"
    assert by_id[1]["reverts_id"] == ""
    assert json.loads(by_id[1]["breakdown"])["result"] == 5


def test_export_jsonl_round_trips_and_the_chains_verify(
    ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(operations, "FETCH_CHUNK", 4)  # several chunks, a short last one
    out = io.StringIO()
    assert export(ledger, out, "jsonl", None) == TOTAL
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [{k: row[k] for k in EXPORT_COLUMNS} for row in stored_rows(ledger)]
    # Everything the hash covers is in the export, so the chains can be verified from it.
    heads: dict[tuple[int, int], str] = {}
    for r in records:
        prev = heads.get((r["chat_id"], r["user_id"]), "0" * 64)
        assert r["prev_hash"] == prev
        fields = {k: r[k] for k in ("chat_id", "user_id", "seq", "amount", "balance_after")}
        assert r["hash"] == chain_hash(
            prev, tx_id=r["id"], kind=r["kind"], idem_key=r["idem_key"],
            actor_id=r["actor_id"], reason=r["reason"], breakdown=r["breakdown"],
            created_at=r["created_at"], reverts_id=r["reverts_id"], **fields,
        )  # fmt: skip
        heads[(r["chat_id"], r["user_id"])] = r["hash"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_of_one_chat(ledger: Path, fmt: Any) -> None:
    out = io.StringIO()
    count = export(ledger, out, fmt, OTHER)
    expected = [
        r[0] for r in query(ledger, "SELECT id FROM transactions WHERE chat_id = ?", OTHER)
    ]
    assert count == len(expected) == 4
    if fmt == "csv":
        ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(out.getvalue()))]
    else:
        ids = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
    assert ids == sorted(expected)
    assert export(ledger, io.StringIO(), fmt, 12345) == 0


def test_export_of_a_missing_ledger(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="There is no database"):
        export(tmp_path / "nope.sqlite3", io.StringIO(), "csv", None)
    assert not (tmp_path / "nope.sqlite3").exists()


# -- rebuild-balances -----------------------------------------------------------------------


def test_rebuild_on_a_clean_ledger_finds_nothing(ledger: Path) -> None:
    assert rebuild_balances(ledger, apply=False, actor="test") == []
    assert rebuild_balances(ledger, apply=True, actor="test") == []
    assert query(ledger, "SELECT COUNT(*) FROM admin_actions") == [(0,)]


def test_rebuild_repairs_an_edited_cache_with_an_audit_trail(
    ledger: Path, clock: FakeClock
) -> None:
    original, history = accounts(ledger), transactions(ledger)
    write(
        ledger,
        f"UPDATE accounts SET balance = 999 WHERE chat_id = {CHAT} AND user_id = 2",
        f"UPDATE accounts SET earned = 1 WHERE chat_id = {CHAT} AND user_id = 1",
        f"DELETE FROM accounts WHERE chat_id = {OTHER} AND user_id = 1",
    )
    edited = accounts(ledger)
    assert not run_check(ledger).ok

    differences = rebuild_balances(ledger, apply=False, actor="test")
    assert [(d.chat_id, d.user_id) for d in differences] == [(OTHER, 1), (CHAT, 1), (CHAT, 2)]
    missing, earned, balance = differences
    assert missing.cached is None
    assert balance.cached is not None
    assert balance.cached.balance == 999
    assert balance.recomputed.balance == 6 + 10 - 6  # the award of 6 was reverted
    assert balance.describe() == f"account {CHAT}/2: balance 999 -> 10"
    assert "earned 1 -> " in earned.describe()
    assert "no cached row" in missing.describe()
    assert accounts(ledger) == edited  # nothing changed without apply

    assert rebuild_balances(ledger, apply=True, actor="cli:ops", clock=clock) == differences
    assert accounts(ledger) == original  # exactly what the writer had, revert rule included
    assert transactions(ledger) == history  # the ledger itself is never touched
    audit = query(
        ledger,
        "SELECT chat_id, actor_id, action, target_id, detail, created_at FROM admin_actions"
        " ORDER BY id",
    )
    assert [(a[0], a[1], a[2], a[3]) for a in audit] == [
        (OTHER, 0, "rebuild-balance", 1),
        (CHAT, 0, "rebuild-balance", 1),
        (CHAT, 0, "rebuild-balance", 2),
    ]
    assert {a[5] for a in audit} == {format_utc(clock.now())}
    detail = json.loads(audit[2][4])
    assert detail["actor"] == "cli:ops"
    assert detail["before"]["balance"] == 999
    assert detail["after"]["balance"] == 10
    assert json.loads(audit[0][4])["before"] is None
    assert run_check(ledger).ok
    assert rebuild_balances(ledger, apply=False, actor="test") == []


async def test_a_repaired_cache_is_what_the_running_writer_builds_on(
    ledger: Path, clock: FakeClock
) -> None:
    write(ledger, f"UPDATE accounts SET balance = 999 WHERE chat_id = {CHAT} AND user_id = 2")
    async with await PointsEngine.open(ledger, clock=clock) as engine:
        fixed = await asyncio.to_thread(rebuild_balances, ledger, apply=True, actor="test")
        assert len(fixed) == 1
        receipt = await engine.award(CHAT, 2, 5, key="after-repair")
        assert receipt.balance == 15
    assert run_check(ledger).ok


def test_rebuild_refuses_to_launder_an_edited_transaction(ledger: Path) -> None:
    write(
        ledger,
        "DROP TRIGGER transactions_no_update",
        f"UPDATE transactions SET amount = 500 WHERE chat_id = {CHAT} AND user_id = 3",
    )
    before = accounts(ledger)
    shown = rebuild_balances(ledger, apply=False, actor="test")
    assert [(d.chat_id, d.user_id) for d in shown] == [(CHAT, 3)]
    with pytest.raises(RebuildRefusedError, match="launder") as refused:
        rebuild_balances(ledger, apply=True, actor="test")
    assert refused.value.differences == shown
    assert accounts(ledger) == before
    assert query(ledger, "SELECT COUNT(*) FROM admin_actions") == [(0,)]


def test_rebuild_never_overwrites_a_cache_row_that_changed_meanwhile(
    ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(ledger, f"UPDATE accounts SET balance = 999 WHERE chat_id = {CHAT} AND user_id = 2")
    scan = operations._scan

    def scan_then_write(conn: sqlite3.Connection) -> list[BalanceDifference]:
        found = scan(conn)
        write(ledger, f"UPDATE accounts SET balance = 998 WHERE chat_id = {CHAT} AND user_id = 2")
        return found

    monkeypatch.setattr(operations, "_scan", scan_then_write)
    with pytest.raises(RebuildRefusedError, match="changed while"):
        rebuild_balances(ledger, apply=True, actor="test")
    assert query(
        ledger, f"SELECT balance FROM accounts WHERE chat_id = {CHAT} AND user_id = 2"
    ) == [(998,)]
    assert query(ledger, "SELECT COUNT(*) FROM admin_actions") == [(0,)]


def test_an_orphan_account_row_is_reset_to_zero(ledger: Path) -> None:
    write(
        ledger,
        "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at)"
        " VALUES (1, 1, 50, 50, 0, '" + "0" * 64 + "', 'x')",
    )
    (difference,) = rebuild_balances(ledger, apply=True, actor="test")
    assert difference.recomputed == AccountState()
    assert run_check(ledger).ok


# -- the command line -----------------------------------------------------------------------

EDIT_TX = (
    "DROP TRIGGER transactions_no_update",
    f"UPDATE transactions SET amount = 500 WHERE chat_id = {CHAT} AND user_id = 3",
)
EDIT_CACHE = f"UPDATE accounts SET balance = 999 WHERE chat_id = {CHAT} AND user_id = 2"


def copy_of(ledger: Path, name: str, *tamper: str) -> Path:
    path = ledger.with_name(f"{name}.sqlite3")
    shutil.copy(ledger, path)
    write(path, *tamper)
    return path


async def bot(*args: str, cwd: Path) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_as_a_subprocess(ledger: Path, tmp_path: Path) -> None:
    tampered = copy_of(ledger, "tampered", *EDIT_TX)
    # Run at once: each subprocess spends most of its time importing aiogram.
    backed_up, exported, refused = await asyncio.gather(
        bot("backup", "b.sqlite3", "--db", str(ledger), cwd=tmp_path),
        bot("export", "--format", "csv", "--db", str(ledger), cwd=tmp_path),
        bot("rebuild-balances", "--db", str(tampered), "--apply", cwd=tmp_path),
    )
    assert backed_up[0] == 0, backed_up
    assert f"Backed up {ledger} to b.sqlite3" in backed_up[1]
    assert "Ledger integrity: CLEAN" in backed_up[1]
    assert exported[0] == 0, exported
    assert len(list(csv.reader(io.StringIO(exported[1])))) == TOTAL + 1
    assert refused[0] == 2, refused
    assert f"account {CHAT}/3" in refused[1]
    assert "launder" in refused[2]
    assert len(refused[2].strip().splitlines()) == 1
    for _, _, err in (backed_up, exported, refused):
        assert "Traceback" not in err


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`python -m bot ARGS` in this process: the same parser and handlers, no aiogram import."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes(
    ledger: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's config.toml
    for name in [k for k in os.environ if k.startswith("BOT_")]:
        monkeypatch.delenv(name)
    db = str(ledger)
    tampered = str(copy_of(ledger, "tampered", *EDIT_TX))
    stale = str(copy_of(ledger, "stale", EDIT_CACHE))
    (tmp_path / "taken.sqlite3").write_bytes(b"")

    code, out, _ = run_cli(capsys, "backup", "b.sqlite3", "--db", tampered)
    assert code == 1
    assert "VIOLATIONS FOUND" in out
    code, _, err = run_cli(capsys, "backup", "taken.sqlite3", "--db", db)
    assert code == 2
    assert "already exists" in err
    code, _, err = run_cli(capsys, "backup", "c.sqlite3", "--db", "missing.sqlite3")
    assert code == 2
    assert "There is no database" in err
    assert not (tmp_path / "c.sqlite3").exists()

    code, _, err = run_cli(capsys, "export", "--format", "jsonl", "--db", "missing.sqlite3")
    assert code == 2
    assert err.count("\n") == 1
    assert "There is no database" in err

    code, out, _ = run_cli(capsys, "rebuild-balances", "--db", stale)
    assert code == 1
    assert f"account {CHAT}/2: balance 999 -> 10" in out
    assert "nothing was changed" in out
    code, out, _ = run_cli(capsys, "rebuild-balances", "--db", stale, "--apply")
    assert code == 0
    assert "Rebuilt 1 account" in out
    code, out, _ = run_cli(capsys, "rebuild-balances", "--db", stale)
    assert code == 0
    assert "nothing to change" in out


def test_cli_export_to_a_file(
    ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "other.jsonl"
    out.write_text("stale\n")
    args = ["export", "--format", "jsonl", "--chat", str(OTHER), "--db", str(ledger)]
    assert main([*args, "--out", str(out)]) == 0
    assert [json.loads(line)["chat_id"] for line in out.read_text().splitlines()] == [OTHER] * 4
    assert leftovers(tmp_path) == []
    assert main([*args, "--out", str(tmp_path / "no" / "x.jsonl")]) == 2


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        ("backup", ["consistent snapshot", "never overwrites DEST", "check the copy", "exit 0"]),
        ("export", ["id order", "CSV with a header", "JSON lines", "--chat", "hashes"]),
        (
            "rebuild-balances",
            [
                "recompute",
                "changes nothing without --apply",
                "audit row",
                "never touches",
                "refused",
            ],
        ),
    ],
)
def test_cli_help_says_what_each_command_does(
    command: str, phrases: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in phrases:
        assert phrase in text
