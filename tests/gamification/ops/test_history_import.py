"""import-history: a generated Telegram Desktop export replayed through the live rules.

The reference is the live bot itself: the same generated messages, rendered as the Bot API
updates the bot would have got, fed through the real Dispatcher at their times.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import main
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.engine import PointsEngine
from plugins.gamification.ops.history_import import ImportRequest, ImportSummary, run_import
from plugins.gamification.ops.telegram_export import CountingReader, read_messages
from plugins.gamification.storage import tasks
from plugins.gamification.storage.options import DatabaseOptions, Location
from plugins.gamification.telegram.history import HistoryReader
from tests.support.telegram_export import (
    BOT_ID,
    CHAT_ID,
    EXPORT_ID,
    LEAVER,
    START,
    history,
    live_updates,
    write_export,
)
from tests.support.telegram_harness import TelegramHarness, make_config

COUNT = 700


def settings(database: Path) -> GamificationConfig:
    section = make_config(database, shipped=True).plugin_sections["gamification"]
    assert isinstance(section, GamificationConfig)
    return section


async def new_ledger(path: Path) -> Path:
    engine = await PointsEngine.open(path)
    await engine.close()
    return path


def where(path: Path) -> DatabaseOptions:
    return DatabaseOptions(Location("sqlite", path=path))


async def replay(export: Path, ledger: Path, **options: Any) -> ImportSummary:
    request = ImportRequest(export, options.pop("chat_id", CHAT_ID), **options)
    return await run_import(request, where(ledger), settings(ledger))


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def ledger_of(path: Path) -> dict[str, tuple[int, int, str]]:
    """Each transaction by key: (user, amount, time)."""
    found = rows(path, "SELECT idem_key, user_id, amount, created_at FROM transactions")
    return {key: (user, amount, at) for key, user, amount, at in found}


def by_person(path: Path) -> dict[int, int]:
    found = rows(path, "SELECT user_id, SUM(amount) FROM transactions GROUP BY user_id")
    return dict(found)


def snapshot(folder: Path) -> dict[str, bytes]:
    """The ledger's files, byte for byte (its -wal and -shm too, if any)."""
    return {p.name: p.read_bytes() for p in folder.glob("ledger.sqlite3*")}


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_export(tmp_path / "result.json", history(COUNT))


async def live_ledger(path: Path, count: int = COUNT) -> Path:
    """The same messages fed live through the Dispatcher, each at its own time."""
    clock = FakeClock(START)
    async with TelegramHarness(path, shipped=True, clock=clock) as live:
        for at, update in live_updates(history(count)):
            clock.set(START.fromtimestamp(at, START.tzinfo))
            await live.feed(update)
    return path


async def test_the_import_scores_what_the_live_bot_scored(tmp_path: Path, export: Path) -> None:
    live = await live_ledger(tmp_path / "live.sqlite3")
    imported = await new_ledger(tmp_path / "imported.sqlite3")
    summary = await replay(export, imported)

    expected, got = ledger_of(live), ledger_of(imported)
    assert got == expected  # the same keys, people, amounts and times
    assert by_person(imported) == by_person(live)
    scored = [key for key in got if key.startswith(("msg:", "thx:"))]
    assert summary.awards == len(scored) > 100
    assert summary.points == by_person(live)
    kinds = {key.split(":")[0] for key in got}
    assert {"msg", "thx", "eng"} <= kinds
    # The member who left is credited by id; bots and the channel earn nothing.
    assert by_person(imported)[LEAVER] > 0
    assert BOT_ID not in by_person(imported)
    assert all(user > 0 for user in by_person(imported))
    assert summary.skipped["service message"] > 0
    assert summary.skipped["from a bot"] > 0
    assert summary.skipped["posted as a chat"] > 0
    assert summary.refused  # the anti-abuse rules said no to some
    text = summary.to_text(top=3)
    assert "Messages read: 700" in text
    assert " 1. " in text
    assert " 4. " not in text


async def test_running_it_again_adds_nothing(tmp_path: Path, export: Path) -> None:
    ledger = await new_ledger(tmp_path / "ledger.sqlite3")
    await replay(export, ledger)
    before = ledger_of(ledger)
    again = await replay(export, ledger)
    assert ledger_of(ledger) == before
    assert again.awards == 0
    assert again.replayed == 0
    assert again.skipped["imported before"] == COUNT
    assert (await tasks.check(Location("sqlite", path=ledger), record=False)).ok


async def test_messages_the_live_bot_saw_are_not_scored_again(
    tmp_path: Path, export: Path
) -> None:
    live = await live_ledger(tmp_path / "live.sqlite3")
    before = ledger_of(live)
    summary = await replay(export, live)
    assert ledger_of(live) == before
    assert summary.awards == 0
    assert summary.skipped["seen by the bot live"] > COUNT // 2


async def test_a_dry_run_writes_nothing_and_says_the_same(tmp_path: Path, export: Path) -> None:
    ledger = await new_ledger(tmp_path / "ledger.sqlite3")
    files = snapshot(tmp_path)
    dry = await replay(export, ledger, dry_run=True)
    assert snapshot(tmp_path) == files
    assert rows(ledger, "SELECT COUNT(*) FROM transactions") == [(0,)]
    assert dry.dry_run
    assert "Dry run (nothing written)" in dry.to_text()

    real = await replay(export, ledger)
    assert (dry.awards, dry.points, dry.refused) == (real.awards, real.points, real.refused)


async def test_since_skips_older_messages(tmp_path: Path, export: Path) -> None:
    ledger = await new_ledger(tmp_path / "ledger.sqlite3")
    since = date(2025, 3, 5)
    summary = await replay(export, ledger, since=since)
    assert summary.skipped["before --since"] > 0
    times = [at for _, _, at in ledger_of(ledger).values()]
    assert times
    assert min(times) >= "2025-03-05"


async def test_an_interrupted_import_is_consistent_and_finishes_on_a_rerun(
    tmp_path: Path, export: Path
) -> None:
    ledger = await new_ledger(tmp_path / "ledger.sqlite3")
    task: asyncio.Task[ImportSummary] | None = None

    def stop_at(read: int) -> None:
        if read == 300 and task is not None:
            task.cancel()

    request = ImportRequest(export, CHAT_ID)
    task = asyncio.create_task(
        run_import(request, where(ledger), settings(ledger), on_message=stop_at)
    )
    first = await task
    assert first.interrupted
    assert 300 <= first.read < COUNT
    assert (await tasks.check(Location("sqlite", path=ledger), record=False)).ok
    partial = ledger_of(ledger)
    assert partial

    rest = await replay(export, ledger)
    assert not rest.interrupted
    assert rest.skipped["imported before"] >= 299
    done = ledger_of(ledger)
    assert partial.items() <= done.items()  # nothing written before was changed or repeated
    assert (await tasks.check(Location("sqlite", path=ledger), record=False)).ok
    assert (await replay(export, ledger)).awards == 0

    # Every message after the checkpoint was judged once, by the resumed run.
    resumed = {key for key in done.keys() - partial.keys() if key.startswith("msg:")}
    assert resumed
    assert all(int(key.rsplit(":", 1)[1]) > 300 for key in resumed)


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["import-history", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_imports_and_prints_the_summary(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = asyncio.run(new_ledger(tmp_path / "ledger.sqlite3"))
    code, out, err = cli(str(export), "--chat", str(CHAT_ID), "--db", str(ledger), capsys=capsys)
    assert code == 0, err
    assert "Imported: the history of 'Builders Lounge'" in out
    assert "Points:" in out
    assert "import-history: 100.0%" in err  # plain progress lines: stderr is no terminal
    code, out, _ = cli(str(export), "--chat", str(CHAT_ID), "--db", str(ledger), capsys=capsys)
    assert code == 0
    assert "imported before 700" in out


def _truncated(tmp_path: Path, export: Path) -> Path:
    data = export.read_bytes()
    return _write(tmp_path / "cut.json", data[: len(data) // 2])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "chat", "said"),
    [
        (lambda t, e: _write(t / "x.json", b"not json at all"), CHAT_ID, "not a Telegram"),
        (lambda t, e: _write(t / "x.json", b"[1, 2]"), CHAT_ID, "not a Telegram"),
        (lambda t, e: _write(t / "x.json", b'{"a": 1}'), CHAT_ID, "lacks the chat's id"),
        (
            lambda t, e: _write(
                t / "x.json",
                json.dumps({"name": "Ann", "type": "personal_chat", "id": 5, "messages": []})
                .encode(),
            ),
            CHAT_ID,
            "not of a group",
        ),
        (_truncated, CHAT_ID, "cut short"),
        (lambda t, e: e, EXPORT_ID, f"bots know as {CHAT_ID}"),
        (lambda t, e: t / "missing.json", CHAT_ID, "Cannot read"),
    ],
    ids=["not-json", "a-list", "not-an-export", "private-chat", "truncated", "wrong-chat",
         "no-file"],
)  # fmt: skip
def test_bad_input_is_one_sentence_and_writes_nothing(
    tmp_path: Path,
    export: Path,
    capsys: pytest.CaptureFixture[str],
    make: Any,
    chat: int,
    said: str,
) -> None:
    ledger = asyncio.run(new_ledger(tmp_path / "ledger.sqlite3"))
    before = ledger.read_bytes()
    path = make(tmp_path, export)
    code, out, err = cli(str(path), "--chat", str(chat), "--db", str(ledger), capsys=capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert said in err
    assert "Traceback" not in err
    assert ledger.read_bytes() == before


def test_no_ledger_is_refused(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    code, out, err = cli(str(export), "--chat", str(CHAT_ID), "--db", str(missing), capsys=capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "There is no ledger" in err
    assert not missing.exists()


def test_memory_stays_bounded_whatever_the_export_size(tmp_path: Path) -> None:
    """Reading holds one message at a time and the reply memory is capped: a five times
    longer export needs no more memory. (The rules' own state is bounded by their caps;
    the soak test measures a whole import's peak RSS on a large export.)"""
    peaks = []
    for count in (1_000, 5_000):
        export = write_export(tmp_path / f"r{count}.json", history(count, seed=count))
        reader = HistoryReader(CHAT_ID, "Builders Lounge", True, memory=500)
        tracemalloc.start()
        try:
            with export.open("rb") as raw:
                for entry in read_messages(CountingReader(raw)):
                    when = reader.when(entry)
                    assert when is not None
                    reader.message(entry, when)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    small, large = peaks
    assert large < small * 1.5, peaks


@pytest.mark.soak
def test_a_large_export_imports_in_bounded_memory(tmp_path: Path) -> None:
    """A ~300 MB export (about a million messages) imported by `python -m bot` in a child
    process; its peak RSS is printed and must stay far below the file's size."""
    export = write_export(tmp_path / "result.json", history(1_000_000, seed=3))
    ledger = asyncio.run(new_ledger(tmp_path / "ledger.sqlite3"))
    child = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(export), str(CHAT_ID), str(ledger)],
        capture_output=True,
        text=True,
        timeout=3 * 3600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.returncode == 0, child.stderr
    peak_mb = int(child.stdout.strip().splitlines()[-1]) / 1024
    print(f"export {export.stat().st_size / 1e6:.0f} MB, peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 400


ROOT = Path(__file__).resolve().parents[3]
RSS_PROBE = """
import resource, subprocess, sys
code = subprocess.call([sys.executable, "-m", "bot", "import-history", sys.argv[1],
                        "--chat", sys.argv[2], "--db", sys.argv[3]], stdout=subprocess.DEVNULL)
assert code == 0, code
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_ctrl_c_leaves_a_consistent_ledger_and_a_rerun_finishes(tmp_path: Path) -> None:
    """SIGINT to `python -m bot import-history`: one sentence, exit 1, every committed
    award kept; the same command again completes, and once more adds nothing."""
    export = write_export(tmp_path / "result.json", history(6_000, seed=11))
    ledger = asyncio.run(new_ledger(tmp_path / "ledger.sqlite3"))
    command = [sys.executable, "-m", "bot", "import-history", str(export),
               "--chat", str(CHAT_ID), "--db", str(ledger)]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ["PYTHONPATH"] = str(ROOT)
    child = subprocess.Popen(command, env=environ, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if rows(ledger, "SELECT COUNT(*) FROM transactions")[0][0] > 50:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 1, err
    assert "interrupted; everything replayed so far is committed" in err
    assert "Traceback" not in err
    assert "Messages read:" in out
    partial = ledger_of(ledger)
    assert asyncio.run(tasks.check(Location("sqlite", path=ledger), record=False)).ok

    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "imported before" in done.stdout
    finished = ledger_of(ledger)
    assert partial.items() <= finished.items()
    assert len(finished) > len(partial)
    again = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert ledger_of(ledger) == finished


def test_an_export_broken_midway_keeps_what_came_before_and_a_rerun_continues(
    tmp_path: Path, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whole at both ends (so it passes the check before anything is written) but broken
    in the middle: stopped there like an interrupt, with the summary and one sentence."""
    data = export.read_bytes()
    middle = data.index(b'"id":', len(data) // 2)
    broken = _write(tmp_path / "broken.json", data[:middle] + b"}{ not json" + data[middle:])
    ledger = asyncio.run(new_ledger(tmp_path / "ledger.sqlite3"))
    args = ("--chat", str(CHAT_ID), "--db", str(ledger))

    code, out, err = cli(str(broken), "--dry-run", *args, capsys=capsys)
    assert code == 1, err
    assert "Dry run (nothing written)" in out
    assert err.splitlines()[-1].startswith("import-history: The export's JSON breaks off")
    assert err.splitlines()[-1].endswith("So nothing was written (a dry run).")

    code, out, err = cli(str(broken), *args, capsys=capsys)
    assert code == 1, err
    assert "Imported: the history of 'Builders Lounge'" in out
    last = err.splitlines()[-1]
    assert "breaks off near byte" in last
    assert "running the same command again" in last
    assert "Traceback" not in err
    partial = ledger_of(ledger)
    assert partial
    assert asyncio.run(tasks.check(Location("sqlite", path=ledger), record=False)).ok

    code, out, err = cli(str(export), *args, capsys=capsys)
    assert code == 0, err
    assert partial.items() <= ledger_of(ledger).items()
    assert "imported before" in out


async def test_a_hard_kill_before_the_first_checkpoint_does_not_end_the_import(
    tmp_path: Path, export: Path
) -> None:
    """The import records where live scoring began before it writes: after a crash that
    left its first awards but no progress, a re-run still replays the rest."""
    ledger = await new_ledger(tmp_path / "ledger.sqlite3")
    task: asyncio.Task[ImportSummary] | None = None

    def stop_at(read: int) -> None:
        if read == 100 and task is not None:
            task.cancel()

    task = asyncio.create_task(
        run_import(
            ImportRequest(export, CHAT_ID), where(ledger), settings(ledger), on_message=stop_at
        )
    )
    assert (await task).interrupted
    # What a kill -9 before the first checkpoint leaves: the awards, and no progress.
    conn = sqlite3.connect(ledger)
    with conn:
        conn.execute(
            "DELETE FROM admin_actions WHERE action = 'import-history'"
            " AND json_extract(detail, '$.through') != 0"
        )
    conn.close()
    assert ledger_of(ledger)
    rest = await replay(export, ledger)
    assert rest.skipped["seen by the bot live"] == 0
    assert rest.replayed > COUNT - 150
