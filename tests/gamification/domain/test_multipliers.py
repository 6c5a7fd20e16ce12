"""Which multipliers apply when: time windows in the configured timezone, chats, streaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from plugins.gamification.domain.config import MultipliersSection, TimeWindow
from plugins.gamification.domain.multipliers import MultiplierRules

EVENING = TimeWindow(name="evening", factor=Decimal("1.5"), start="18:00", end="20:00")
WEEKEND = TimeWindow(name="weekend", factor=Decimal(2), days=("sat", "sun"))


def rules(*windows: TimeWindow, zone: str = "Europe/Berlin") -> MultiplierRules:
    return MultiplierRules(MultipliersSection(windows=windows, streak={}), zone)


def names(r: MultiplierRules, moment: datetime) -> list[str]:
    return [m.name for m in r.windows(moment)]


def test_windows_follow_the_local_clock_minute_by_minute() -> None:
    r = rules(EVENING, WEEKEND)
    # Friday 2026-03-13, Berlin is UTC+1: 18:00 local is 17:00 UTC.
    friday = datetime(2026, 3, 13, 16, 59, 59, 999_999, tzinfo=UTC)
    assert names(r, friday) == []
    assert names(r, friday + timedelta(microseconds=1)) == ["evening"]
    assert names(r, friday + timedelta(minutes=30)) == ["evening"]
    assert names(r, friday + timedelta(hours=2)) == ["evening"]
    assert names(r, friday + timedelta(hours=2, microseconds=1)) == []
    # The same instant written in another offset is the same answer.
    assert names(r, (friday + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-7)))) == [
        "evening"
    ]
    saturday_evening = datetime(2026, 3, 14, 17, 30, tzinfo=UTC)
    assert names(r, saturday_evening) == ["evening", "weekend"]
    # Going back in time (a redelivered update) is answered for its own minute.
    assert names(r, friday) == []


def test_windows_across_a_daylight_saving_change() -> None:
    r = rules(EVENING)
    # Berlin moves to UTC+2 on 2026-03-29: 18:00 local is 16:00 UTC from then on.
    assert names(r, datetime(2026, 3, 28, 16, 30, tzinfo=UTC)) == []
    assert names(r, datetime(2026, 3, 29, 16, 30, tzinfo=UTC)) == ["evening"]


def test_no_windows_no_multipliers() -> None:
    assert rules().windows(datetime(2026, 3, 14, 12, tzinfo=UTC)) == []


def test_the_returned_list_is_the_callers_own() -> None:
    r = rules(EVENING)
    moment = datetime(2026, 3, 13, 17, 30, tzinfo=UTC)
    first = r.windows(moment)
    first.clear()
    assert names(r, moment) == ["evening"]
