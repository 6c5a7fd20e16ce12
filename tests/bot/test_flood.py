"""Flood control: per-chat pacing within Telegram's limits, RetryAfter waited out and retried."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter

import bot.flood
from bot.flood import FloodControl
from bot.testing import RecordingSession


class Sleeps:
    """Stands in for asyncio.sleep: records each wait and moves a fake clock by it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    fake = Sleeps()
    monkeypatch.setattr(bot.flood.asyncio, "sleep", fake)
    return fake


def make_bot(flood: FloodControl) -> tuple[Bot, RecordingSession]:
    session = RecordingSession()
    session.middleware(flood)
    return Bot("42:offline", session=session), session


async def test_a_group_gets_at_most_its_limit_per_minute(sleeps: Sleeps) -> None:
    flood = FloodControl(group_limit=3, global_limit=100, clock=lambda: sleeps.now)
    bot_, session = make_bot(flood)
    for i in range(7):
        await bot_.send_message(-100, f"message {i}")
    assert len(session.sent) == 7
    # 3 at once, the next 3 a minute later, the last one another minute later.
    assert [round(w) for w in sleeps.waits] == [60, 60]
    assert sleeps.now == 120
    await bot_.send_message(5, "a private chat is not held back by the group")
    assert len(sleeps.waits) == 2


async def test_retry_after_is_waited_out_and_retried(sleeps: Sleeps) -> None:
    bot_, session = make_bot(FloodControl(clock=lambda: sleeps.now))
    session.flood = [7, 3]
    sent = await bot_.send_message(-1, "hello")
    assert sent.text == "hello"
    assert sleeps.waits == [7, 3]
    assert len(session.sent) == 3


async def test_retry_after_too_long_or_too_often_is_raised(sleeps: Sleeps) -> None:
    bot_, session = make_bot(FloodControl(retries=1, max_wait=10, clock=lambda: sleeps.now))
    session.flood = [11]
    with pytest.raises(TelegramRetryAfter):
        await bot_.send_message(-1, "too long a wait")
    session.flood = [1, 1]
    with pytest.raises(TelegramRetryAfter):
        await bot_.send_message(-1, "too many retries")
    assert sleeps.waits == [1]
