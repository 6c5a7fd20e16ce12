"""The announcer posts fresh news only: history replayed by import-history is not announced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plugins.gamification.bus.events import Event
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.config import ProgressSection
from plugins.gamification.telegram.announcer import STALE_AFTER, Announcer

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


async def test_levels_reached_long_ago_are_not_posted() -> None:
    sent: list[tuple[int, str]] = []

    async def send(chat_id: int, text: str) -> object:
        sent.append((chat_id, text))
        return None

    async def name_of(user_id: int) -> str:
        return f"user {user_id}"

    clock = FakeClock(NOW)
    announcer = Announcer(ProgressSection(), send, name_of, clock=clock)
    old = Event.new(
        "level.reached", chat_id=-1, user_id=5, payload={"level": 3},
        clock=FakeClock(NOW - STALE_AFTER - timedelta(seconds=1)),
    )  # fmt: skip
    fresh = Event.new(
        "level.reached", chat_id=-1, user_id=6, payload={"level": 2},
        clock=FakeClock(NOW - timedelta(minutes=5)),
    )  # fmt: skip
    await announcer.on_event(old)
    await announcer.on_event(fresh)
    await announcer.flush()
    assert sent == [(-1, "⬆️ user 6 reached level <b>2</b>")]
    assert announcer.stale == 1
