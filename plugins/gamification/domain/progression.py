"""Pure progression rules: the level curve, the streak with its grace day, progress counters.

No I/O: the writer (storage/sqlite/effects.py), the engine's progress read and the scoring service
all apply these same functions, so a streak or a level means the same thing everywhere.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date

from plugins.gamification.domain.config import Achievement, Condition

MAX_LEVEL = 10_000


@dataclass(frozen=True, slots=True)
class ProgressRules:
    achievements: tuple[Achievement, ...] = ()
    level_curve: tuple[int, int, int] = (5, 50, 100)
    grace_day: bool = True
    timezone: str = "UTC"


def level_thresholds(curve: tuple[int, int, int]) -> list[int]:
    """Total points needed for level 1, 2, …: level L to L + 1 costs a*L^2 + b*L + c."""
    a, b, c = curve
    total, thresholds = 0, []
    for level in range(MAX_LEVEL):
        total += a * level * level + b * level + c
        thresholds.append(total)
        if total > 2**53:
            break
    return thresholds


class Levels:
    """The level a lifetime total reaches on one curve, and where each level starts."""

    def __init__(self, curve: tuple[int, int, int]) -> None:
        self._thresholds = level_thresholds(curve)

    def level_of(self, earned: int) -> int:
        return bisect_right(self._thresholds, earned)

    def level_floor(self, level: int) -> int:
        """Lifetime points at which `level` is reached (0 for level 0)."""
        return 0 if level <= 0 else self._thresholds[min(level, len(self._thresholds)) - 1]


def _kept(gap: int, grace_day: bool) -> bool:
    """Whether a streak survives `gap` days since its last active day (the one rule)."""
    return gap <= (2 if grace_day else 1)


def streak_if_active(last_day: date | None, length: int, today: date, grace_day: bool) -> int:
    """The streak's length once the person is active on `today`.

    The same day (or a day before the last one, after a clock change) leaves it as it is;
    the next day (or the one after, with the grace day) extends it; a longer gap restarts it.
    """
    if last_day is None:
        return 1
    gap = (today - last_day).days
    if gap <= 0:
        return length
    return length + 1 if _kept(gap, grace_day) else 1


def streak_standing(last_day: date | None, length: int, today: date, grace_day: bool) -> int:
    """The streak as it stands on `today` without new activity: 0 once it is broken."""
    if last_day is None:
        return 0
    return length if _kept((today - last_day).days, grace_day) else 0


def counter_of(condition: Condition) -> str:
    """The progress counter an activity, event or thanks condition is measured by."""
    if condition.type == "activity":
        return f"activity:{condition.kind or '*'}"
    if condition.type == "event":
        return f"event:{condition.event}"
    return "thanks_received"
