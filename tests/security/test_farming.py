"""Farming through the real Dispatcher: do farmers earn, and do honest people lose?

The stream and the report are benchmarks/farming.py's (also
`python -m benchmarks.farming`): two chats, honest members who write as people do
(quick follow-ups, short answers, replies, reactions, thanks, photos, stickers, the same
greeting every morning) and a farmer account for every attack class the project knows
of, all on a fake clock with the built-in defaults (config.example.toml's). The same
honest stream also runs under rules approximating the old scoring (a hard 60 s cooldown,
no engagement weighting), for the "not lower than today" target.

The quick form runs four days (a record's prior leaks a few messages per new account,
so fewer days overstate the farmers); the soak run is the full week with 52 members.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from benchmarks.farming import (
    FARMERS,
    HONEST,
    Figures,
    build_stream,
    simulate,
)

FARMER_SHARE_TARGET = 0.10
PATTERN_TARGET = 2.0  # no automated pattern above 2x the median honest member per day
CONTENT_LOSS_TARGET = 0.01  # honest loss to repeat + copy + letter soup
QUICK_DAYS, QUICK_MEMBERS = 4, 40


def assert_targets(figures: Figures) -> None:
    missed = []
    if figures.farmer_share > FARMER_SHARE_TARGET:
        missed.append(f"farmers keep {figures.farmer_share:.1%} of all points")
    pattern, ratio = figures.worst_pattern
    if ratio > PATTERN_TARGET:
        missed.append(f"{pattern} earns {ratio:.2f}x the median honest member")
    if figures.content_loss > CONTENT_LOSS_TARGET:
        missed.append(f"honest members lose {figures.content_loss:.2%} to content rules")
    if figures.median_honest < figures.median_today:
        missed.append(
            f"the median honest member earns {figures.median_honest:.0f}/day,"
            f" below today's {figures.median_today:.0f}"
        )
    assert missed == [], "; ".join(missed)


async def test_farming_is_not_worth_it_and_honest_members_keep_their_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's ./config.toml may leak into the runs
    figures, lines = await simulate(seed=2026, days=QUICK_DAYS, members=QUICK_MEMBERS)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert_targets(figures)


@pytest.mark.soak
async def test_a_full_week_of_farming_is_not_worth_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The week the README reports. (`python -m benchmarks.farming --held-out` adds the
    attacks the defaults were not tuned on; the README reports that run too.)"""
    monkeypatch.chdir(tmp_path)
    figures, lines = await simulate(seed=2026, days=7, members=52)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert_targets(figures)


def test_the_stream_is_realistic_and_the_same_every_time() -> None:
    """Both runs see the very same messages, and the honest stream has what people do."""
    stream = build_stream(2026, 2, QUICK_MEMBERS)
    assert stream == build_stream(2026, 2, QUICK_MEMBERS)
    for earlier, later in itertools.pairwise(stream):
        assert earlier.at <= later.at
    honest = [e for e in stream if e.user not in FARMERS and e.react_to is None]
    by_user: defaultdict[tuple[int, int], list[float]] = defaultdict(list)
    for event in honest:
        by_user[(event.chat, event.user)].append(event.at)
    gaps = [b - a for times in by_user.values() for a, b in itertools.pairwise(times)]
    quick = sum(1 for gap in gaps if gap < 60) / len(gaps)
    assert 0.1 < quick < 0.3, f"{quick:.0%} of honest follow-ups within a minute"
    kinds = Counter(
        "reply" if e.reply_to is not None else "media" if e.media else "text" for e in honest
    )
    assert kinds["reply"] > 0.2 * len(honest)
    assert kinds["media"] > 0.05 * len(honest)
    assert sum(1 for e in honest if e.text in ("ok", "lol", "yes!", "+1")) > 10
    reactions = [e for e in stream if e.react_to is not None]
    assert len(reactions) > 0.3 * len(honest)
    assert any(e.removed for e in reactions)
    assert {FARMERS[e.user] for e in stream if e.user in FARMERS} == set(FARMERS.values())
    assert len({e.user for e in honest}) == QUICK_MEMBERS
    assert HONEST not in FARMERS.values()
