"""`python -m benchmarks`: the harness runs end to end and reports every row; figures unchecked.

The run uses the hidden tiny scale, so it proves the wiring (every measurement on the real
code paths, the table, the file) in a few seconds. No assertion looks at a figure: timings
depend on the machine and on whatever else it is doing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import percentile
from benchmarks.table import LABELS

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = "| measurement | ours | baseline(s) | ratio | target | met? | published |"


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    environ["PYTHONPATH"] = str(ROOT)
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
    for label in LABELS:
        rows = [line for line in table if line.startswith(f"| {label}")]
        assert len(rows) == 1, f"no single row for {label!r}"
        assert "failed" not in rows[0], rows[0]
    assert len(table) == 1 + len(LABELS)
    assert "synchronous=FULL" in written
    assert "journal_mode=WAL" in written
    assert "scaled (tiny)" in written
    assert "Targets met:" in written
    assert "Total runtime:" in written
    assert "End-to-end CPU, every thread of the process:" in written
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
