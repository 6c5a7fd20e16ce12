"""The bench's table: machine facts, rows with targets, nearest-rank percentiles, RSS."""

from __future__ import annotations

import os
import platform
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DASH = "—"


def percentile(samples: Sequence[float], pct: int) -> float:
    """Nearest-rank percentile (`pct` in whole percent): the ceil(pct/100 * n)-th smallest.

    Integer arithmetic on purpose: 0.99 * 100 is 99.00000000000001 in floating point, which
    would round the rank up to the maximum.
    """
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = -(-pct * len(ordered) // 100)
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def rss_bytes() -> int | None:
    """This process's resident set size from /proc (Linux); None where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (fsync cost depends on it), from /proc/mounts."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            entries = [line.split()[1:3] for line in mounts if line.strip()]
    except OSError:
        return "unknown filesystem"
    target = str(path.resolve())
    best, kind = "", "unknown filesystem"
    for mount_point, fs_type in entries:
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fs_type
    return kind


@dataclass(frozen=True, slots=True)
class Machine:
    cpus: int
    python: str
    sqlite: str
    synchronous: str
    journal_mode: str
    folder: str
    filesystem: str

    def describe(self) -> str:
        return (
            f"{self.cpus} CPUs, Python {self.python}, SQLite {self.sqlite},"
            f" synchronous={self.synchronous}, journal_mode={self.journal_mode},"
            f" files in {self.folder} ({self.filesystem})"
        )


def machine(folder: Path, synchronous: str, journal_mode: str) -> Machine:
    return Machine(
        cpus=os.cpu_count() or 1,
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        synchronous=synchronous,
        journal_mode=journal_mode,
        folder=str(folder),
        filesystem=filesystem_of(folder),
    )


@dataclass(frozen=True, slots=True)
class Target:
    """A stated goal; `met` is None when this run's scale cannot judge it."""

    text: str
    met: bool | None

    def verdict(self) -> str:
        if self.met is None:
            return "not judged (scaled)"
        return "yes" if self.met else "**no**"


@dataclass(frozen=True, slots=True)
class Row:
    measurement: str
    ours: str
    baselines: str = DASH
    ratio: str = DASH
    targets: tuple[Target, ...] = ()
    published: str = DASH


def rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s"


def ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:,.2f} ms"


def times(ratio: float) -> str:
    return f"{ratio:,.1f}x"


def share(ratio: float) -> str:
    return f"{ratio:.0%}"


def plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    rows: Sequence[Row], *, machine: Machine, scale: str, notes: Sequence[str], runtime: float
) -> str:
    """The whole report as markdown: header, table, verdict count, notes, runtime."""
    header = ("measurement", "ours", "baseline(s)", "ratio", "target", "met?", "published")
    lines = [
        "# Points ledger benchmark",
        "",
        f"- Machine: {machine.describe()}",
        f"- Scale: {scale}",
        "- Published figures: the in-memory engine we are compared with.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    judged = met = unjudged = 0
    for row in rows:
        target = "; ".join(t.text for t in row.targets) or DASH
        verdict = " / ".join(t.verdict() for t in row.targets) or DASH
        for t in row.targets:
            if t.met is None:
                unjudged += 1
            else:
                judged += 1
                met += t.met
        cells = (row.measurement, row.ours, row.baselines, row.ratio, target, verdict,
                 row.published)  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    summary = f"Targets met: {met} of {judged}"
    if unjudged:
        summary += f" ({unjudged} not judged at this scale)"
    lines += ["", summary + ".", ""]
    lines += [f"- {note}" for note in notes]
    lines += ["", f"Total runtime: {runtime:,.1f} s", ""]
    return "\n".join(lines)
