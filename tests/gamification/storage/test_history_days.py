"""Activity on a day before an account's last active one (history imported after the bot
went live) never moves the account's day total or streak backwards."""

from __future__ import annotations

from datetime import UTC, datetime

from plugins.gamification.domain.models import Breakdown, Transaction, TxKind
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.storage.sqlite.effects import Effects
from plugins.gamification.storage.sqlite.rows import AccountRow


def activity(amount: int, at: datetime) -> Transaction:
    return Transaction(
        id=1, chat_id=-1, user_id=5, seq=1, amount=amount, balance_after=amount,
        kind=TxKind.ACTIVITY, key=f"msg:-1:{at.day}", actor_id=None, reason="text message",
        breakdown=Breakdown(base=amount, result=amount, tag="text"), created_at=at,
        reverts_id=None, prev_hash="", hash="",
    )  # fmt: skip


def test_an_earlier_day_leaves_the_latest_day_and_streak_alone() -> None:
    effects = Effects(ProgressRules())
    live = AccountRow(
        balance=40, earned=40, streak_day="2025-03-10", streak_length=3, streak_best=3,
        activity_day="2025-03-10", activity_today=40,
    )  # fmt: skip
    after = effects.streak(activity(15, datetime(2025, 3, 5, 12, tzinfo=UTC)), live)
    assert (after.activity_day, after.activity_today) == ("2025-03-10", 40)
    assert (after.streak_day, after.streak_length) == ("2025-03-10", 3)

    later = effects.streak(activity(15, datetime(2025, 3, 10, 18, tzinfo=UTC)), live)
    assert (later.activity_day, later.activity_today) == ("2025-03-10", 55)
    nextday = effects.streak(activity(15, datetime(2025, 3, 11, 9, tzinfo=UTC)), live)
    assert (nextday.activity_day, nextday.activity_today) == ("2025-03-11", 15)
    assert (nextday.streak_day, nextday.streak_length) == ("2025-03-11", 4)
