"""Levels, streaks, achievements and their outbox rows, written in the writer's transaction."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plugins.gamification import (
    FakeClock,
    LedgerPolicy,
    PointsEngine,
    Receipt,
    RevertError,
    TxKind,
)
from plugins.gamification.domain.config import Achievement
from plugins.gamification.domain.progression import ProgressRules, level_thresholds
from plugins.gamification.storage.sqlite.effects import Effects

CHAT, USER, OTHER_USER = -100, 7, 8
NEW_YORK = ZoneInfo("America/New_York")

OpenEngine = Callable[..., Awaitable[PointsEngine]]


def query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database on a plain sqlite3 connection of its own, as an outsider would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def outbox(path: Path, type_: str | None = None) -> list[tuple[int, str, str, dict[str, Any]]]:
    """(row id, event id, type, payload) in commit order, optionally of one type."""
    rows = query(path, "SELECT id, event_id, type, payload FROM outbox ORDER BY id")
    return [
        (row_id, event_id, kind, json.loads(payload))
        for row_id, event_id, kind, payload in rows
        if type_ is None or kind == type_
    ]


def unlocks(path: Path) -> list[tuple[Any, ...]]:
    """(achievement, cause_tx_id, reward_tx_id, revoked_tx_id) of every unlock row."""
    return query(
        path,
        "SELECT achievement, cause_tx_id, reward_tx_id, revoked_tx_id FROM unlocks"
        " ORDER BY achievement",
    )


def kinds(path: Path) -> list[tuple[int, int, str, int | None]]:
    """(id, amount, kind, reverts_id) of every transaction in commit order."""
    return query(path, "SELECT id, amount, kind, reverts_id FROM transactions ORDER BY id")


def achievement(id: str, reward: int = 10, hidden: bool = False, **condition: Any) -> Achievement:
    return Achievement.model_validate(
        {
            "id": id,
            "title": id.replace("_", " ").title(),
            "reward": reward,
            "hidden": hidden,
            "condition": condition,
        }
    )


@pytest.fixture
async def open_engine(db_path: Path, clock: FakeClock) -> AsyncIterator[OpenEngine]:
    """`await open_engine(achievements=..., timezone=..., ...)`: closed at teardown."""
    opened: list[PointsEngine] = []

    async def open_(timezone: str = "UTC", **rules: Any) -> PointsEngine:
        engine = await PointsEngine.open(
            db_path,
            clock=clock,
            policy=LedgerPolicy(max_amount=100_000, timezone=timezone),
            progress=ProgressRules(timezone=timezone, **rules),
        )
        opened.append(engine)
        return engine

    yield open_
    for engine in opened:
        await engine.close()


class Awards:
    """Numbered awards to one account, so every call has a fresh idempotency key."""

    def __init__(self, engine: PointsEngine) -> None:
        self.engine = engine
        self.n = 0

    async def __call__(
        self,
        amount: int = 10,
        *,
        kind: TxKind = TxKind.ACTIVITY,
        tag: str = "text",
        user: int = USER,
    ) -> Receipt:
        self.n += 1
        return await self.engine.award(
            CHAT, user, amount, key=f"k{self.n}", kind=kind, tag=tag, reason="test"
        )


# -- levels -------------------------------------------------------------------------------


def test_the_default_curve_is_mee6s() -> None:
    assert level_thresholds((5, 50, 100))[:4] == [100, 255, 475, 770]
    effects = Effects(ProgressRules())
    expected = {0: 0, 99: 0, 100: 1, 254: 1, 255: 2, 474: 2, 475: 3, 769: 3, 770: 4}
    assert {earned: effects.level_of(earned) for earned in expected} == expected
    assert [effects.level_floor(level) for level in range(4)] == [0, 100, 255, 475]


async def test_level_reached_is_emitted_exactly_when_crossing(
    open_engine: OpenEngine, db_path: Path
) -> None:
    award = Awards(await open_engine())
    for amount, level in [(99, 0), (1, 1), (154, 1), (1, 2), (219, 2), (1, 3), (200, 3)]:
        receipt = await award(amount)
        assert (await award.engine.progress(CHAT, USER)).level == level, receipt.balance

    reached = outbox(db_path, "level.reached")
    assert [(p["previous_level"], p["level"], p["tx_id"]) for *_, p in reached] == [
        (0, 1, 2),
        (1, 2, 4),
        (2, 3, 6),
    ]
    assert [p["earned"] for *_, p in reached] == [100, 255, 475]
    progress = await award.engine.progress(CHAT, USER)
    assert (progress.earned, progress.next_level_at) == (675, 770)


async def test_one_award_across_several_levels_emits_one_row(
    open_engine: OpenEngine, db_path: Path
) -> None:
    award = Awards(await open_engine())
    await award(500)
    ((_, event_id, _, payload),) = outbox(db_path, "level.reached")
    assert (payload["previous_level"], payload["level"]) == (0, 3)
    assert event_id == f"lvl:{CHAT}:{USER}:3:1"


async def test_deductions_and_reverts_do_not_reach_levels(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine()
    award = Awards(engine)
    first = await award(90)
    await engine.deduct(CHAT, USER, 50, key="d1")
    await engine.revert(first.transaction.id, key="r1", actor_id=None)
    # Lifetime earnings count only what was earned: spending does not lower the level.
    await award(100)
    assert (await engine.progress(CHAT, USER)).level == 1
    assert len(outbox(db_path, "level.reached")) == 1


async def test_a_custom_curve(open_engine: OpenEngine, db_path: Path) -> None:
    engine = await open_engine(level_curve=(1, 0, 10))
    assert level_thresholds((1, 0, 10))[:4] == [10, 21, 35, 54]
    award = Awards(engine)
    await award(9)
    await award(1)
    await award(24)
    progress = await engine.progress(CHAT, USER)
    assert (progress.level, progress.earned, progress.next_level_at) == (2, 34, 35)
    assert [(p["previous_level"], p["level"]) for *_, p in outbox(db_path, "level.reached")] == [
        (0, 1),
        (1, 2),
    ]


# -- streaks ------------------------------------------------------------------------------


async def streak_after(
    engine: PointsEngine, clock: FakeClock, moments: list[datetime]
) -> tuple[int, int]:
    """Award once at each moment; (streak length, best) read at the last one."""
    award = Awards(engine)
    for moment in moments:
        clock.set(moment)
        await award(5)
    progress = await engine.progress(CHAT, USER)
    return progress.streak, progress.best_streak


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


async def test_local_midnight_separates_days_in_the_same_utc_day(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine(timezone="America/New_York")
    late, early = local(2026, 11, 25, 23, 59), local(2026, 11, 26, 0, 1)
    assert late.astimezone(UTC).date() == early.astimezone(UTC).date()
    assert await streak_after(engine, clock, [late, early]) == (2, 2)


async def test_utc_midnight_inside_one_local_day_is_not_a_new_day(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine(timezone="America/New_York")
    late = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    early = datetime(2026, 11, 26, 0, 1, tzinfo=UTC)
    assert late.astimezone(NEW_YORK).date() == early.astimezone(NEW_YORK).date()
    # Both fall on local 25 November, so local 26 November is the streak's second day.
    moments = [late, early, local(2026, 11, 26, 20, 0)]
    assert await streak_after(engine, clock, moments) == (2, 2)


@pytest.mark.parametrize(
    "days",
    [
        # Spring forward on Sunday 8 March 2026: that local day lasts 23 hours.
        [(2026, 3, 7, 23, 30), (2026, 3, 8, 23, 30), (2026, 3, 9, 23, 30)],
        [(2026, 3, 7, 0, 30), (2026, 3, 8, 0, 30), (2026, 3, 8, 3, 30), (2026, 3, 9, 0, 30)],
        # Fall back on Sunday 1 November 2026: that local day lasts 25 hours.
        [(2026, 10, 31, 0, 15), (2026, 11, 1, 23, 45), (2026, 11, 2, 0, 15)],
    ],
)
async def test_a_daylight_saving_change_does_not_break_the_streak(
    open_engine: OpenEngine, clock: FakeClock, days: list[tuple[int, int, int, int, int]]
) -> None:
    # Without the grace day, a day lost to a fixed-offset mistake would end the streak.
    engine = await open_engine(timezone="America/New_York", grace_day=False)
    assert await streak_after(engine, clock, [local(*d) for d in days]) == (3, 3)


async def test_two_awards_the_same_day_count_once(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine()
    start = clock.now().replace(hour=0, minute=5)
    moments = [start, start + timedelta(hours=23, minutes=50), start + timedelta(days=1)]
    assert await streak_after(engine, clock, moments) == (2, 2)


@pytest.mark.parametrize(("grace_day", "expected"), [(True, (3, 3)), (False, (1, 2))])
async def test_one_missed_day(
    open_engine: OpenEngine,
    clock: FakeClock,
    grace_day: bool,
    expected: tuple[int, int],
) -> None:
    engine = await open_engine(grace_day=grace_day)
    day = clock.now()
    moments = [day, day + timedelta(days=1), day + timedelta(days=3)]
    assert await streak_after(engine, clock, moments) == expected


async def test_two_missed_days_break_the_streak_even_with_grace(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine(grace_day=True)
    day = clock.now()
    moments = [day + timedelta(days=n) for n in (0, 1, 2, 5)]
    assert await streak_after(engine, clock, moments) == (1, 3)


async def test_the_best_streak_is_kept_after_a_break(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine(grace_day=False)
    day = clock.now()
    moments = [day + timedelta(days=n) for n in (0, 1, 2, 3, 6, 7)]
    assert await streak_after(engine, clock, moments) == (2, 4)


async def test_a_streak_read_after_it_lapsed_is_zero_but_best_remains(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine(grace_day=True)
    day = clock.now()
    await streak_after(engine, clock, [day, day + timedelta(days=1)])
    clock.set(day + timedelta(days=3))  # one day missed: still alive with the grace day
    assert (await engine.progress(CHAT, USER)).streak == 2
    clock.set(day + timedelta(days=4))
    progress = await engine.progress(CHAT, USER)
    assert (progress.streak, progress.best_streak) == (0, 2)


async def test_only_earned_activity_and_events_extend_a_streak(
    open_engine: OpenEngine, clock: FakeClock
) -> None:
    engine = await open_engine()
    award = Awards(engine)
    await award(5)
    clock.advance(timedelta(days=1))
    await engine.adjust(CHAT, USER, 5, key="adm", actor_id=1, reason="bonus")
    await award(5, kind=TxKind.THANKS, tag="thanks")
    await engine.deduct(CHAT, USER, 1, key="ded")
    assert (await engine.progress(CHAT, USER)).streak == 1
    await award(5, kind=TxKind.EVENT, tag="game.won")
    assert (await engine.progress(CHAT, USER)).streak == 2


# -- achievements -------------------------------------------------------------------------

TEXT, PHOTO = (TxKind.ACTIVITY, "text"), (TxKind.ACTIVITY, "photo")
CHAPTER = (TxKind.EVENT, "narrative.chapter_completed")
WON = (TxKind.EVENT, "game.won")
THANKS = (TxKind.THANKS, "thanks")

CONDITIONS: dict[str, tuple[dict[str, Any], list[tuple[TxKind, str]], int]] = {
    # condition, the awards (20 points each, a day apart), index of the award that unlocks
    "earned": ({"type": "earned", "at_least": 50}, [TEXT, THANKS, WON, TEXT, TEXT], 2),
    "activity": ({"type": "activity", "at_least": 3}, [TEXT, WON, PHOTO, TEXT, TEXT], 3),
    "activity_kind": (
        {"type": "activity", "kind": "photo", "at_least": 2},
        [PHOTO, TEXT, TEXT, THANKS, PHOTO, PHOTO],
        4,
    ),
    "event": (
        {"type": "event", "event": "narrative.chapter_completed", "at_least": 2},
        [CHAPTER, WON, TEXT, CHAPTER, CHAPTER],
        3,
    ),
    "streak": ({"type": "streak", "at_least": 3}, [TEXT, THANKS, CHAPTER, TEXT, TEXT], 3),
    "thanks_received": (
        {"type": "thanks_received", "at_least": 2},
        [THANKS, TEXT, CHAPTER, THANKS, THANKS],
        3,
    ),
}


@pytest.mark.parametrize("name", list(CONDITIONS))
async def test_each_condition_unlocks_once_in_the_same_transaction(
    open_engine: OpenEngine, clock: FakeClock, db_path: Path, name: str
) -> None:
    condition, steps, unlocking = CONDITIONS[name]
    engine = await open_engine(achievements=(achievement("goal", reward=7, **condition),))
    award = Awards(engine)
    cause_id = 0
    for index, (kind, tag) in enumerate(steps):
        receipt = await award(20, kind=kind, tag=tag)
        if index == unlocking:
            cause_id = receipt.transaction.id
        # Read right after the award returned: the unlock was committed with it.
        found = unlocks(db_path)
        if index < unlocking:
            assert found == [], index
            assert "goal" not in (await engine.progress(CHAT, USER)).unlocked
        else:
            assert found == [("goal", cause_id, cause_id + 1, None)], index
            assert "goal" in (await engine.progress(CHAT, USER)).unlocked
        clock.advance(timedelta(days=1))

    rewards = [tx for tx in kinds(db_path) if tx[2] == "achievement"]
    assert rewards == [(cause_id + 1, 7, "achievement", None)]
    (reward,) = query(
        db_path, "SELECT idem_key, created_at FROM transactions WHERE id = ?", (cause_id + 1,)
    )
    (caused_at,) = query(db_path, "SELECT created_at FROM transactions WHERE id = ?", (cause_id,))
    assert reward == (f"ach:{CHAT}:{USER}:goal:{cause_id}", caused_at[0])
    ((_, event_id, _, payload),) = outbox(db_path, "achievement.unlocked")
    assert event_id == f"ach:{CHAT}:{USER}:goal:{cause_id}"
    assert payload == {
        "achievement": "goal",
        "title": "Goal",
        "reward": 7,
        "cause_tx_id": cause_id,
        "reward_tx_id": cause_id + 1,
        "hidden": False,
    }
    balance = await engine.balance(CHAT, USER)
    assert balance.balance == 20 * len(steps) + 7
    assert (await engine.check()).ok


async def test_counters_follow_kinds_and_tags(open_engine: OpenEngine) -> None:
    far = 1000  # counters are measured for these conditions; none is reached here
    engine = await open_engine(
        achievements=(
            achievement("any", type="activity", at_least=far),
            achievement("texts", type="activity", kind="text", at_least=far),
            achievement("photos", type="activity", kind="photo", at_least=far),
            achievement("stories", type="event", event=CHAPTER[1], at_least=far),
            achievement("wins", type="event", event="game.won", at_least=far),
            achievement("liked", type="thanks_received", at_least=far),
        )
    )
    award = Awards(engine)
    for kind, tag in [TEXT, TEXT, PHOTO, CHAPTER, WON, THANKS, CHAPTER]:
        await award(3, kind=kind, tag=tag)
    await engine.adjust(CHAT, USER, 5, key="adm", actor_id=1, reason="bonus")
    await engine.revert(7, key="undo", actor_id=1)  # the second chapter is taken back
    progress = await engine.progress(CHAT, USER)
    assert progress.counters == {
        "activity:*": 3,
        "activity:text": 2,
        "activity:photo": 1,
        "event:narrative.chapter_completed": 1,
        "event:game.won": 1,
        "thanks_received": 1,
    }
    conditions = {spec.id: spec.condition for spec in engine.rules.achievements}
    assert {key: progress.value_of(c) for key, c in conditions.items()} == {
        "any": 3,
        "texts": 2,
        "photos": 1,
        "stories": 1,
        "wins": 1,
        "liked": 1,
    }


async def test_an_unlock_under_concurrency_happens_once(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(
            achievement("rich", reward=7, type="earned", at_least=100),
            achievement("busy", reward=3, type="activity", at_least=20),
        )
    )
    award = Awards(engine)
    receipts = await asyncio.gather(*(award(10) for _ in range(50)))
    assert all(not r.duplicate for r in receipts)
    assert sorted(row[0] for row in unlocks(db_path)) == ["busy", "rich"]
    rewards = sorted(tx[1] for tx in kinds(db_path) if tx[2] == "achievement")
    assert rewards == [3, 7]
    unlocked = outbox(db_path, "achievement.unlocked")
    assert sorted(p["achievement"] for *_, p in unlocked) == ["busy", "rich"]
    assert (await engine.balance(CHAT, USER)).balance == 500 + 7 + 3
    assert (await engine.check()).ok


async def test_a_reward_that_unlocks_another_achievement_pays_each_once(
    open_engine: OpenEngine, clock: FakeClock, db_path: Path
) -> None:
    # The defaults: "first_steps" (earn 50, reward 10) listed before "regular" (3-day streak).
    engine = await open_engine(
        achievements=(
            achievement("first_steps", reward=10, type="earned", at_least=50),
            achievement("regular", reward=20, type="streak", at_least=3),
        )
    )
    award = Awards(engine)
    for amount in (15, 15, 20):  # the third award completes both at once
        await award(amount)
        clock.advance(timedelta(days=1))
    rewards = [(tx[1], tx[2]) for tx in kinds(db_path) if tx[2] == "achievement"]
    assert sorted(rewards) == [(10, "achievement"), (20, "achievement")]
    unlocked = outbox(db_path, "achievement.unlocked")
    assert sorted(p["achievement"] for *_, p in unlocked) == ["first_steps", "regular"]
    assert (await engine.balance(CHAT, USER)).balance == 50 + 10 + 20


async def test_a_reward_can_complete_an_earned_achievement(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(
            achievement("starter", reward=60, type="earned", at_least=50),
            achievement("hundred", reward=5, type="earned", at_least=100),
        )
    )
    award = Awards(engine)
    first = await award(50)
    assert kinds(db_path) == [
        (1, 50, "activity", None),
        (2, 60, "achievement", None),
        (3, 5, "achievement", None),
    ]
    assert unlocks(db_path) == [("hundred", 2, 3, None), ("starter", 1, 2, None)]

    # Reverting the first award revokes both: the second was caused by the first's reward.
    revert = await engine.revert(first.transaction.id, key="r", actor_id=1)
    assert (await engine.balance(CHAT, USER)).balance == 0
    assert {row[0]: row[3] for row in unlocks(db_path)} == {
        "hundred": revert.transaction.id + 1,
        "starter": revert.transaction.id,
    }
    assert sorted(tx[3] for tx in kinds(db_path) if tx[2] == "revert") == [1, 2, 3]
    assert len(outbox(db_path, "achievement.revoked")) == 2
    assert (await engine.check()).ok


async def test_reverting_the_cause_revokes_the_unlock_and_its_reward(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(achievement("fifty", reward=10, type="earned", at_least=50),)
    )
    award = Awards(engine)
    await award(30)
    cause = await award(30)
    assert unlocks(db_path) == [("fifty", 2, 3, None)]

    revert = await engine.revert(cause.transaction.id, key="undo", actor_id=99, reason="spam")
    assert revert.transaction.id == 4
    assert kinds(db_path) == [
        (1, 30, "activity", None),
        (2, 30, "activity", None),
        (3, 10, "achievement", None),
        (4, -30, "revert", 2),
        (5, -10, "revert", 3),
    ]
    assert unlocks(db_path) == [("fifty", 2, 3, 4)]
    ((_, event_id, _, payload),) = outbox(db_path, "achievement.revoked")
    assert event_id == f"achrev:{CHAT}:{USER}:fifty:4"
    assert payload == {"achievement": "fifty", "cause_tx_id": 2, "revert_tx_id": 4}
    account = await engine.balance(CHAT, USER)
    assert (account.balance, account.earned) == (30, 30)
    progress = await engine.progress(CHAT, USER)
    assert progress.unlocked == {}
    assert (await engine.check()).ok

    # Neither can be reverted a second time.
    with pytest.raises(RevertError):
        await engine.revert(2, key="again", actor_id=99)
    with pytest.raises(RevertError):
        await engine.revert(3, key="reward", actor_id=99)
    assert len(kinds(db_path)) == 5


async def test_reverting_the_reward_first_then_the_cause(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(achievement("fifty", reward=10, type="earned", at_least=50),)
    )
    award = Awards(engine)
    await award(30)
    await award(30)
    await engine.revert(3, key="reward", actor_id=99)
    await engine.revert(2, key="cause", actor_id=99)

    assert kinds(db_path) == [
        (1, 30, "activity", None),
        (2, 30, "activity", None),
        (3, 10, "achievement", None),
        (4, -10, "revert", 3),
        (5, -30, "revert", 2),
    ]
    assert unlocks(db_path) == [("fifty", 2, 3, 5)]
    assert [p["revert_tx_id"] for *_, p in outbox(db_path, "achievement.revoked")] == [5]
    assert (await engine.balance(CHAT, USER)).balance == 30
    assert (await engine.check()).ok


async def test_an_achievement_unlocks_again_after_revocation(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(achievement("fifty", reward=10, type="earned", at_least=50),)
    )
    award = Awards(engine)
    await award(30)
    await award(30)
    await engine.revert(2, key="undo", actor_id=99)
    assert (await engine.progress(CHAT, USER)).unlocked == {}

    again = await award(30)  # earned 30 + 30 again
    assert again.transaction.id == 6
    assert unlocks(db_path) == [("fifty", 6, 7, None)]
    assert (await engine.progress(CHAT, USER)).unlocked.keys() == {"fifty"}
    causes = [p["cause_tx_id"] for *_, p in outbox(db_path, "achievement.unlocked")]
    assert causes == [2, 6]
    assert (await engine.balance(CHAT, USER)).balance == 70
    assert (await engine.check()).ok


async def test_hidden_achievements_unlock_and_say_so(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(achievement("secret", reward=0, hidden=True, type="earned", at_least=10),)
    )
    await Awards(engine)(10)
    assert unlocks(db_path) == [("secret", 1, None, None)]
    ((*_, payload),) = outbox(db_path, "achievement.unlocked")
    assert (payload["hidden"], payload["reward"], payload["reward_tx_id"]) == (True, 0, None)
    assert [tx[2] for tx in kinds(db_path)] == ["activity"]


async def test_achievements_are_per_account(open_engine: OpenEngine, db_path: Path) -> None:
    engine = await open_engine(achievements=(achievement("one", type="activity", at_least=1),))
    award = Awards(engine)
    await award(5)
    await award(5, user=OTHER_USER)
    await award(5)
    assert query(db_path, "SELECT user_id, achievement FROM unlocks ORDER BY user_id") == [
        (USER, "one"),
        (OTHER_USER, "one"),
    ]


# -- outbox rows --------------------------------------------------------------------------


async def test_points_rows_carry_old_and_new_balance(
    open_engine: OpenEngine, db_path: Path
) -> None:
    engine = await open_engine()
    award = Awards(engine)
    await award(40)
    await engine.deduct(CHAT, USER, 15, key="d", actor_id=3, reason="fine")
    await engine.revert(1, key="r", actor_id=3, reason="oops")
    rows = outbox(db_path)
    assert [(event_id, kind) for _, event_id, kind, _ in rows] == [
        ("tx:1", "points.awarded"),
        ("tx:2", "points.deducted"),
        ("tx:3", "points.reverted"),
    ]
    assert [(p["old_balance"], p["new_balance"], p["amount"]) for *_, p in rows] == [
        (0, 40, 40),
        (40, 25, -15),
        (25, -15, -40),
    ]
    assert rows[2][3]["reverts_id"] == 1
    assert rows[1][3]["actor_id"] == 3
    assert query(db_path, "SELECT DISTINCT chat_id, user_id FROM outbox") == [(CHAT, USER)]


async def test_every_transaction_has_exactly_one_points_row_in_commit_order(
    open_engine: OpenEngine, clock: FakeClock, db_path: Path
) -> None:
    engine = await open_engine(
        achievements=(
            achievement("fifty", reward=10, type="earned", at_least=50),
            achievement("talk", reward=5, type="activity", at_least=4),
        )
    )
    award = Awards(engine)
    await asyncio.gather(*(award(10, user=USER + n % 3) for n in range(30)))
    await engine.deduct(CHAT, USER, 5, key="d")
    await engine.revert(2, key="r", actor_id=1)
    await asyncio.gather(*(award(7, kind=TxKind.EVENT, tag="game.won") for _ in range(10)))

    counts = query(
        db_path,
        "SELECT t.id, COUNT(o.id) FROM transactions AS t LEFT JOIN outbox AS o"
        " ON o.event_id = 'tx:' || t.id AND o.type LIKE 'points.%' GROUP BY t.id ORDER BY t.id",
    )
    assert len(counts) > 40
    assert {count for _, count in counts} == {1}
    rows = outbox(db_path)
    points = [(row_id, p["tx_id"]) for row_id, _, kind, p in rows if kind.startswith("points.")]
    assert len(points) == len(counts)
    assert [tx for _, tx in points] == sorted(tx for _, tx in points)
    assert [tx for _, tx in points] == [tx_id for tx_id, _ in counts]
    # Every other row follows the points rows of the transactions it speaks of.
    position = {tx: row_id for row_id, tx in points}
    for row_id, _, kind, payload in rows:
        if kind == "achievement.unlocked":
            assert row_id > position[payload["cause_tx_id"]]
            assert row_id > position[payload["reward_tx_id"]]
        elif kind == "achievement.revoked":
            assert row_id > position[payload["revert_tx_id"]]
        elif kind == "level.reached":
            assert row_id > position[payload["tx_id"]]
    assert (await engine.check()).ok
