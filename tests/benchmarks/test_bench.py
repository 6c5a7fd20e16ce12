"""`python -m benchmarks`: the harness runs end to end and reports every row; figures unchecked.

The run uses the hidden tiny scale, so it proves the wiring (every measurement on the real
code paths, the table, the file) in a few seconds. No assertion looks at a figure: timings
depend on the machine and on whatever else it is doing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import pg_table
from benchmarks.postgres import SERVER_ENV
from benchmarks.report import percentile
from benchmarks.table import LABELS
from benchmarks.webhook_table import PG_LABELS as PG_WEBHOOK
from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = "| measurement | ours | baseline(s) | ratio | target | met? | published |"


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ[SERVER_ENV] = postgres.server_url()
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_bench_reports_every_row_and_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    result = bench("--tiny", "--out", str(out), "--dir", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    written = out.read_text(encoding="utf-8")
    assert written.strip() == result.stdout.strip()
    assert COLUMNS in written
    table = [line for line in written.splitlines() if line.startswith("| ")]
    # The PostgreSQL section is there whenever a server answers (always in CI).
    labels = LABELS if postgres.unreachable() else (*LABELS, *pg_table.LABELS, *PG_WEBHOOK)
    if postgres.unreachable():
        assert "PostgreSQL: not measured" in written
    for label in labels:
        rows = [line for line in table if line.startswith(f"| {label}")]
        assert len(rows) == 1, f"no single row for {label!r}"
        assert "failed" not in rows[0], rows[0]
    assert len(table) == 1 + len(labels)
    assert "synchronous=FULL" in written
    assert "journal_mode=WAL" in written
    assert "scaled (tiny)" in written
    assert "Targets met:" in written
    assert "Total runtime:" in written
    assert "End-to-end CPU, every thread of the process:" in written
    # The end-to-end row measures scoring, so every timed message must score.
    end_to_end = next(line for line in table if line.startswith("| end-to-end"))
    scored = re.search(r"\(([\d,]+) of ([\d,]+) scored\)", end_to_end)
    assert scored is not None, end_to_end
    assert scored.group(1) == scored.group(2), end_to_end
    assert "refused: none" in written
    # So must every webhook message, however many instances answered it.
    for line in table:
        if line.startswith("| Webhook"):
            scored = re.search(r"\(([\d,]+) of ([\d,]+) scored\)", line)
            assert scored is not None, line
            assert scored.group(1) == scored.group(2), line
    assert "FAILED" not in written
    # Every temporary ledger is removed; only the report is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.md"]


def test_help_names_what_it_measures(tmp_path: Path) -> None:
    result = bench("--help", cwd=tmp_path)
    assert result.returncode == 0
    for words in ("--quick", "--out FILE", "synchronous=FULL", "no-op", "raw sqlite3"):
        assert words in " ".join(result.stdout.split())
    assert "--tiny" not in result.stdout


def test_an_unwritable_out_file_is_refused_before_running(tmp_path: Path) -> None:
    result = bench("--tiny", "--out", str(tmp_path / "missing" / "bench.md"), cwd=tmp_path)
    assert result.returncode == 2
    assert "missing" in result.stderr
    assert result.stdout == ""


def test_storage_takes_only_a_postgresql_url(tmp_path: Path) -> None:
    result = bench("--tiny", "--storage", "sqlite:///x.db", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "bench: --storage takes a postgresql://user@host/db URL."


def test_storage_measures_the_postgresql_section_with_sqlite_beside(tmp_path: Path) -> None:
    postgres.require_postgres()
    result = bench(
        "--tiny", "--storage", postgres.server_url(), "--dir", str(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(pg_table.LABELS) + len(PG_WEBHOOK)
    for label, line in zip((*pg_table.LABELS, *PG_WEBHOOK), table[1:], strict=True):
        assert line.startswith(f"| {label} |")
        assert "failed" not in line
    assert "SQLite" in table[1]
    assert "raw" in table[4]
    assert "FAILED" not in result.stdout


@pytest.mark.parametrize(
    ("samples", "pct", "expected"),
    [
        (range(1, 11), 30, 3),
        (range(1, 11), 50, 5),
        (range(1, 101), 99, 99),
        (range(1, 101), 100, 100),
        (range(1, 1001), 99, 990),
        ([7.0], 50, 7.0),
        ([7.0], 99, 7.0),
        ([3, 1, 2], 50, 2),
        ([], 50, 0.0),
    ],
)
def test_percentiles_are_nearest_rank(samples: list[float], pct: int, expected: float) -> None:
    assert percentile(list(samples), pct) == expected
