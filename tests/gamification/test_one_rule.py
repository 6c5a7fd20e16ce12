"""Each rule has one definition: the streak and its grace day, the message cut, the
leaderboard line, and the figures /gstats and the Prometheus collector report."""

from __future__ import annotations

import ast
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from prometheus_client.core import Metric

from bot.testing import UpdateFactory
from plugins.gamification.domain.models import Standing
from plugins.gamification.domain.progression import streak_if_active, streak_standing
from plugins.gamification.ops.metrics import PointsCollector
from plugins.gamification.storage.integrity import IntegrityReport, Violation
from plugins.gamification.telegram.jobs import report_message
from plugins.gamification.telegram.phrasing import MAX_MESSAGE, cut, standing_line
from tests.gamification.conftest import MakeHarness

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "gamification"
DAY = date(2026, 11, 25)

# (days since the last active day, grace day, length once active today, length standing)
STREAKS = [
    (0, True, 4, 4),
    (1, True, 5, 4),
    (2, True, 5, 4),
    (3, True, 1, 0),
    (1, False, 5, 4),
    (2, False, 1, 0),
    (-1, True, 4, 4),  # a clock moved back a day keeps the streak as it is
]


@pytest.mark.parametrize(("gap", "grace", "active", "standing"), STREAKS)
def test_streak_rule(gap: int, grace: bool, active: int, standing: int) -> None:
    last = DAY - timedelta(days=gap)
    assert streak_if_active(last, 4, DAY, grace) == active
    assert streak_standing(last, 4, DAY, grace) == standing


def test_a_first_active_day_starts_a_streak_of_one() -> None:
    assert streak_if_active(None, 0, DAY, True) == 1
    assert streak_standing(None, 0, DAY, True) == 0


def test_the_grace_day_is_worked_out_in_one_module_only() -> None:
    """The limit (two days with grace, one without) is written once, in progression.py."""
    pattern = re.compile(r"\b2 if [\w.]*grace\w* else 1\b")
    writers = [
        path.relative_to(PLUGIN).as_posix()
        for path in PLUGIN.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert writers == ["domain/progression.py"]


def test_the_message_limit_is_defined_once() -> None:
    holders = []
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == MAX_MESSAGE:
                holders.append(path.relative_to(PLUGIN).as_posix())
    # anti_abuse's 4,096-bit filter, config's length bound and text's cache size are other
    # quantities.
    others = {"domain/anti_abuse.py", "domain/config.py", "domain/text.py"}
    assert set(holders) - others == {"telegram/phrasing.py"}


def test_cut_ends_on_a_line_with_its_marker() -> None:
    text = "\n".join(f"line {i}" for i in range(2000))
    assert cut("short") == "short"
    shortened = cut(text)
    assert len(shortened) <= MAX_MESSAGE
    assert shortened.endswith("\n… (cut)")
    assert cut(f"<pre>{text}</pre>", marker="…</pre>").endswith("\n…</pre>")


def test_a_long_integrity_report_is_cut_by_the_same_rule() -> None:
    report = IntegrityReport(checked_at="2026-11-25T12:00:00Z")
    for n in range(500):
        report.add(Violation(-100, n, n, "x" * 1000))
    text = report_message(report)
    assert len(text) <= MAX_MESSAGE
    assert text.endswith("\n…</pre>")


def test_the_leaderboard_line_escapes_and_never_mentions() -> None:
    assert standing_line(Standing(2, 7, 40), "<b>@bob</b>") == "2. &lt;b&gt;@bob&lt;/b&gt;: 40"


CHAT = UpdateFactory.group(-100, "Club")
ALICE = UpdateFactory.user(1, "Alice", "alice")
MOD = UpdateFactory.user(9, "Mod", "mod")


def sample(metrics: list[Metric], name: str) -> float:
    for metric in metrics:
        for s in metric.samples:
            if s.name in (name, f"{name}_total"):
                return float(s.value)
    raise AssertionError(f"no metric {name}")


async def test_gstats_and_the_collector_read_the_same_figures(make_harness: MakeHarness) -> None:
    h = await make_harness(
        admins={-100: {9}}, admin_ids=[9], gamification={"activity": {"points": {"text": 10}}}
    )
    await h.say(CHAT, ALICE, "hello everyone, good morning")
    await h.say(CHAT, ALICE, "ok")
    figures = h.runtime.figures()
    metrics = list(PointsCollector(h.runtime).collect())
    await h.say(CHAT, MOD, "/gstats")
    text = h.last_text(-100)
    assert figures.awards == sample(metrics, "gamification_awards") == 1
    assert figures.points == sample(metrics, "gamification_points") == 10
    assert figures.writer_batches == sample(metrics, "gamification_writer_batches")
    assert f"Awards: {figures.awards} ({figures.points} points)" in text
    assert f"Refused: too_short {figures.refusals['too_short']}" in text
