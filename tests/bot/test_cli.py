"""`python -m bot`: help, exit codes and one-sentence errors, run as a real subprocess."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from plugins.gamification import PointsEngine
from tests.support.cli import bot

ROOT = Path(__file__).resolve().parents[2]


async def make_ledger(path: Path) -> None:
    engine = await PointsEngine.open(path)
    await engine.award(-1, 1, 10, key="a")
    await engine.award(-1, 2, 20, key="b")
    await engine.close()


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = bot("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "demo", "check"):
        assert command in result.stdout


async def test_check_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite3"
    assert bot("check", "--db", str(db), cwd=tmp_path).returncode == 2  # missing
    await make_ledger(db)
    clean = bot("check", "--db", str(db), cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "CLEAN" in clean.stdout
    as_json = bot("check", "--db", str(db), "--json", cwd=tmp_path)
    assert '"ok": true' in as_json.stdout

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER transactions_no_update")
    conn.execute("UPDATE transactions SET amount = 99 WHERE idem_key = 'b'")
    conn.commit()
    conn.close()
    damaged = bot("check", "--db", str(db), cwd=tmp_path)
    assert damaged.returncode == 1
    assert "account -1/2" in damaged.stdout
    assert "transaction #2" in damaged.stdout


def test_check_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database at all" * 100)
    result = bot("check", "--db", str(junk), cwd=tmp_path)
    assert result.returncode == 2
    assert "not a usable SQLite database" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_broken_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[storage]\nsynchronous = 3\n")
    result = bot("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "storage.synchronous" in result.stderr
    assert "Traceback" not in result.stderr
    after = bot("check", "--config", str(tmp_path / "config.toml"), cwd=tmp_path)
    assert after.returncode == 2


@pytest.mark.parametrize(
    ("token", "expected"), [("", "No bot token"), ("not-a-token", "malformed")]
)
def test_run_without_a_usable_token(tmp_path: Path, token: str, expected: str) -> None:
    result = bot("run", cwd=tmp_path, env={"BOT_TOKEN": token} if token else None)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    if token:
        assert token not in result.stderr


def test_demo_runs_offline_and_keeps_the_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite3"
    cards = tmp_path / "cards"
    result = bot("demo", "--db", str(db), "--cards", str(cards), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # /points answers with a rank card, saved as a file that the transcript names; the
    # same card asked for again is sent again, not drawn again.
    first, second = cards / "card-01.png", cards / "card-02.png"
    assert out.count(f"[card: {first}]") == 2
    assert out.count(f"[card: {second}]") == 1
    assert sorted(cards.iterdir()) == [first, second]
    assert first.read_bytes().startswith(b"\x89PNG")
    assert "Final leaderboard" in out
    assert "Only admins of this chat can use /award." in out
    assert "not scored: burst" in out
    assert "Ledger integrity: CLEAN" in out
    assert db.exists()
    assert bot("check", "--db", str(db), cwd=tmp_path).returncode == 0
