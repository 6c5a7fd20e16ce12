"""The day's cap of activity points, decided by the ledger inside the award's transaction
(on each backend): what a gate sharing nothing with other processes may overlook, the ledger
still refuses, and a repeat of an award already granted stays a repeat."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from plugins.gamification import (
    DailyCapError,
    FakeClock,
    InvalidAmountError,
    PointsEngine,
    TxKind,
)

CHAT, USER = -100_700, 5


async def test_activity_points_past_the_day_limit_are_refused_until_the_next_day(
    engine: PointsEngine, clock: FakeClock
) -> None:
    assert (await engine.award(CHAT, USER, 30, key="m:1", day_limit=50)).transaction.amount == 30
    assert (await engine.award(CHAT, USER, 20, key="m:2", day_limit=50)).transaction.amount == 20
    with pytest.raises(DailyCapError) as refused:
        await engine.award(CHAT, USER, 1, key="m:3", day_limit=50)
    assert (refused.value.limit, refused.value.today) == (50, 50)
    assert "cap of 50 activity points" in str(refused.value)
    # A repeat of a granted award is a repeat, not a refusal; other kinds are not capped.
    assert (await engine.award(CHAT, USER, 20, key="m:2", day_limit=50)).duplicate
    await engine.award(CHAT, USER, 500, key="e:1", kind=TxKind.EVENT, day_limit=50)
    # Another account, and the same one tomorrow, start from nothing.
    await engine.award(CHAT, USER + 1, 50, key="m:4", day_limit=50)
    clock.advance(timedelta(days=1))
    assert (await engine.award(CHAT, USER, 50, key="m:5", day_limit=50)).transaction.amount == 50
    assert (await engine.balance(CHAT, USER)).balance == 600


async def test_concurrent_awards_never_pass_the_day_limit_together(engine: PointsEngine) -> None:
    results = await asyncio.gather(
        *(engine.award(CHAT, USER, 7, key=f"c:{n}", day_limit=50) for n in range(20)),
        return_exceptions=True,
    )
    granted = [r for r in results if not isinstance(r, BaseException)]
    assert len(granted) == 7  # 7 x 7 = 49: an eighth would pass 50
    assert all(isinstance(r, DailyCapError) for r in results if isinstance(r, BaseException))
    assert (await engine.balance(CHAT, USER)).balance == 49


@pytest.mark.parametrize("limit", [-1, True, 1.5, "10"])
async def test_a_malformed_day_limit_is_refused_before_anything_is_written(
    engine: PointsEngine, limit: object
) -> None:
    with pytest.raises(InvalidAmountError):
        await engine.award(CHAT, USER, 5, key="bad", day_limit=limit)  # type: ignore[arg-type]
    assert (await engine.balance(CHAT, USER)).balance == 0
