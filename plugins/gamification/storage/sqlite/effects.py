"""What a committed transaction sets off, inside the writer's transaction (SQLite side).

Progress counters, streaks, levels, achievement unlocks (and their revocation when the
transaction that caused them is reverted) and the outbox rows announcing all of it are
written in the same SQLite transaction as the ledger row, so they are committed or lost
together with it. Runs on the write connection's thread; no awaits, no aiogram.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.config import Achievement
from plugins.gamification.domain.errors import DailyCapError
from plugins.gamification.domain.models import Transaction, TxKind
from plugins.gamification.domain.progression import (
    Levels,
    ProgressRules,
    counter_of,
    level_thresholds,
    streak_if_active,
)
from plugins.gamification.storage.hashing import compact_json
from plugins.gamification.storage.operations import Posting
from plugins.gamification.storage.sqlite.rows import AccountRow

__all__ = [
    "INSERT_OUTBOX",
    "Effects",
    "ProgressRules",
    "counter_of",
    "level_thresholds",
]

INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, type, chat_id, user_id, payload, occurred_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
BUMP_COUNTER = (
    "INSERT INTO progress (chat_id, user_id, name, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (chat_id, user_id, name) DO UPDATE SET value = value + excluded.value"
    " RETURNING value"
)
UPSERT_UNLOCK = (
    "INSERT INTO unlocks (chat_id, user_id, achievement, unlocked_at, cause_tx_id)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id, achievement) DO UPDATE SET"
    " unlocked_at = excluded.unlocked_at, cause_tx_id = excluded.cause_tx_id,"
    " reward_tx_id = NULL, revoked_tx_id = NULL"
)
SET_UNLOCK_REWARD = (
    "UPDATE unlocks SET reward_tx_id = ? WHERE chat_id = ? AND user_id = ? AND achievement = ?"
)
SELECT_CAUSED = (
    "SELECT achievement, reward_tx_id FROM unlocks WHERE cause_tx_id = ? AND revoked_tx_id IS NULL"
)
REVOKE_UNLOCK = (
    "UPDATE unlocks SET revoked_tx_id = ? WHERE chat_id = ? AND user_id = ? AND achievement = ?"
)
SELECT_ACHIEVEMENTS = "SELECT achievements FROM accounts WHERE chat_id = ? AND user_id = ?"
SET_ACHIEVEMENTS = "UPDATE accounts SET achievements = ? WHERE chat_id = ? AND user_id = ?"

Append = Callable[[int, int, int, str, str, str], Transaction]
Revert = Callable[[int, str, str], Transaction | None]
# Told (chat_id, user_id) whenever the effects write that account's row themselves.
Forget = Callable[[int, int], object]


class Effects:
    """Called by the batch writer around every appended transaction, in its savepoint."""

    def __init__(self, rules: ProgressRules) -> None:
        self.rules = rules
        self._zone = ZoneInfo(rules.timezone)
        self._levels = Levels(rules.level_curve)
        # Counters exist to measure achievements: only the ones some condition reads are
        # kept, so a deployment without such achievements pays nothing for them.
        self._tracked = frozenset(
            counter_of(a.condition)
            for a in rules.achievements
            if a.condition.type in ("activity", "event", "thanks_received")
        )
        # What _at last worked out, and for which moment (Effects runs only on the
        # writer's thread).
        self._moment: datetime | None = None
        self._facts = (date.min, "", "")

    def level_of(self, earned: int) -> int:
        return self._levels.level_of(earned)

    def level_floor(self, level: int) -> int:
        """Lifetime points at which `level` is reached (0 for level 0)."""
        return self._levels.level_floor(level)

    def _at(self, moment: datetime) -> tuple[date, str, str]:
        """(local day, that day as text, `moment` as stored by format_utc).

        A batch's transactions share one moment, so this is worked out once per batch.
        """
        if moment != self._moment:
            day = moment.astimezone(self._zone).date()
            self._moment, self._facts = moment, (day, day.isoformat(), format_utc(moment))
        return self._facts

    def check_day_limit(self, p: Posting, account: AccountRow, moment: datetime) -> None:
        """Refuse activity points past the posting's day limit (DailyCapError), counting
        what the account earned on `moment`'s local day, as `streak` counts it."""
        if p.day_limit is None or p.kind is not TxKind.ACTIVITY or p.amount <= 0:
            return
        today = account.activity_today if account.activity_day == self._at(moment)[1] else 0
        if today + p.amount > p.day_limit:
            raise DailyCapError(p.day_limit, today)

    def streak(self, tx: Transaction, account: AccountRow) -> AccountRow:
        """The account after `tx`: its streak and today's activity points.

        Activity and events on a new local day extend the streak; activity points add to
        the day's total that the daily cap is measured against.
        """
        if tx.kind not in (TxKind.ACTIVITY, TxKind.EVENT) or tx.amount <= 0:
            return account
        today, day, _ = self._at(tx.created_at)
        activity_day, activity_today = account.activity_day, account.activity_today
        # A day before the account's last active one (a chat's history imported after the
        # bot went live) leaves that day's total alone: the daily cap goes on measuring the
        # latest day, and the streak keeps its last day (streak_if_active leaves it).
        if tx.kind is TxKind.ACTIVITY and (activity_day is None or day >= activity_day):
            activity_today = (activity_today if activity_day == day else 0) + tx.amount
            activity_day = day
        length, best = account.streak_length, account.streak_best
        if account.streak_day != day:
            last = None if account.streak_day is None else date.fromisoformat(account.streak_day)
            length = streak_if_active(last, length, today, self.rules.grace_day)
        return AccountRow(
            account.balance, account.earned, account.seq, account.head,
            day if account.streak_day is None or day > account.streak_day else account.streak_day,
            length, max(best, length), account.achievements, activity_day, activity_today,
        )  # fmt: skip

    def after_append(
        self,
        conn: sqlite3.Connection,
        tx: Transaction,
        before: AccountRow,
        after: AccountRow,
        original: Transaction | None,
        append: Append,
        revert: Revert,
        forget: Forget,
    ) -> None:
        self._outbox_points(conn, tx, before.balance)
        if tx.kind is TxKind.REVERT and original is not None:
            self._count(conn, original, -1)
            self._revoke(conn, tx, original, revert, forget)
            return
        counters = self._count(conn, tx, +1)
        level = self.level_event(tx, before.earned, after.earned)
        if level is not None:
            self._emit(conn, *level)
        if self.rules.achievements and tx.amount > 0:
            self._unlock(conn, tx, after, counters, append, forget)

    # -- what every backend's writer shares: decisions and event rows, no I/O ------------

    @property
    def tracked_counters(self) -> frozenset[str]:
        """The counters kept: those some achievement's condition reads."""
        return self._tracked

    def tracks(self, name: str) -> bool:
        """Whether counter `name` is kept (some achievement's condition reads it)."""
        return name in self._tracked

    def level_event(
        self, tx: Transaction, earned_before: int, earned_after: int
    ) -> tuple[str, str, Transaction, object] | None:
        """The level.reached event `tx` sets off, if it crossed a level."""
        old_level, new_level = self.level_of(earned_before), self.level_of(earned_after)
        if new_level <= old_level:
            return None
        return (
            f"lvl:{tx.chat_id}:{tx.user_id}:{new_level}:{tx.id}", "level.reached", tx,
            {"level": new_level, "previous_level": old_level, "earned": earned_after,
             "tx_id": tx.id},
        )  # fmt: skip

    def due(self, after: AccountRow, counters: dict[str, int]) -> list[Achievement]:
        """Achievements not yet unlocked on the account that this transaction may complete."""
        unlocked = after.unlocked()
        return [
            spec
            for spec in self.rules.achievements
            if spec.id not in unlocked and self._reached(spec, after, counters)
        ]

    @staticmethod
    def unlock_event(
        tx: Transaction, spec: Achievement, reward_tx_id: int | None
    ) -> tuple[str, str, Transaction, object]:
        return (
            f"ach:{tx.chat_id}:{tx.user_id}:{spec.id}:{tx.id}", "achievement.unlocked", tx,
            {"achievement": spec.id, "title": spec.title, "reward": spec.reward,
             "cause_tx_id": tx.id, "reward_tx_id": reward_tx_id, "hidden": spec.hidden},
        )  # fmt: skip

    @staticmethod
    def reward_key(tx: Transaction, spec: Achievement) -> str:
        return f"ach:{tx.chat_id}:{tx.user_id}:{spec.id}:{tx.id}"

    @staticmethod
    def revoke_event(
        tx: Transaction, original: Transaction, achievement: str
    ) -> tuple[str, str, Transaction, object]:
        return (
            f"achrev:{tx.chat_id}:{tx.user_id}:{achievement}:{tx.id}", "achievement.revoked", tx,
            {"achievement": achievement, "cause_tx_id": original.id, "revert_tx_id": tx.id},
        )  # fmt: skip

    @staticmethod
    def points_event(tx: Transaction, old_balance: int) -> tuple[str, str, Transaction, object]:
        if tx.kind is TxKind.REVERT:
            kind = "points.reverted"
        else:
            kind = "points.awarded" if tx.amount > 0 else "points.deducted"
        payload = {
            "tx_id": tx.id, "amount": tx.amount, "kind": tx.kind.value, "tag": tx.breakdown.tag,
            "old_balance": old_balance, "new_balance": tx.balance_after, "reason": tx.reason,
            "reverts_id": tx.reverts_id, "actor_id": tx.actor_id,
        }  # fmt: skip
        return f"tx:{tx.id}", kind, tx, payload

    def outbox_row(
        self, event_id: str, kind: str, tx: Transaction, payload: object
    ) -> tuple[str, str, int, int, str, str]:
        """The outbox row of an event about `tx`: (event_id, type, chat, user, JSON, time)."""
        return (
            event_id, kind, tx.chat_id, tx.user_id, compact_json(payload),
            self._at(tx.created_at)[2],
        )  # fmt: skip

    # -- counters -----------------------------------------------------------------------

    @staticmethod
    def counter_names(tx: Transaction) -> tuple[str, ...]:
        tag = tx.breakdown.tag
        if tx.kind is TxKind.ACTIVITY:
            if tag == "engagement":
                return ()  # a bonus on an earlier message, not a message of its own
            return ("activity:*", f"activity:{tag}") if tag else ("activity:*",)
        if tx.kind is TxKind.EVENT and tag:
            return (f"event:{tag}",)
        if tx.kind is TxKind.THANKS:
            return ("thanks_received",)
        return ()

    def _count(self, conn: sqlite3.Connection, tx: Transaction, step: int) -> dict[str, int]:
        """Move the counters `tx` feeds by `step`; their new values."""
        if tx.amount <= 0 or not self._tracked:
            return {}
        values = {}
        for name in self.counter_names(tx):
            if name not in self._tracked:
                continue
            (value,) = conn.execute(BUMP_COUNTER, (tx.chat_id, tx.user_id, name, step)).fetchone()
            values[name] = int(value)
        return values

    # -- achievements -------------------------------------------------------------------

    def _reached(self, spec: Achievement, after: AccountRow, counters: dict[str, int]) -> bool:
        """Whether this transaction may have completed `spec`, from values already at hand.

        A counter this transaction did not move cannot have just crossed its threshold, so
        only the moved ones, lifetime points and the streak are looked at.
        """
        condition = spec.condition
        if condition.type == "earned":
            value = after.earned
        elif condition.type == "streak":
            value = after.streak_length
        else:
            value = counters.get(counter_of(condition), 0)
        return value >= condition.at_least

    def _unlock(
        self,
        conn: sqlite3.Connection,
        tx: Transaction,
        after: AccountRow,
        counters: dict[str, int],
        append: Append,
        forget: Forget,
    ) -> None:
        due = self.due(after, counters)
        if not due:
            return
        # Rewards run these effects again and may unlock more; the account row is the one
        # place that knows what is unlocked now, so it is re-read before each unlock.
        for spec in due:
            (current,) = conn.execute(SELECT_ACHIEVEMENTS, (tx.chat_id, tx.user_id)).fetchone()
            taken = frozenset(current.split(",")) - {""}
            if spec.id in taken:
                continue
            at = self._at(tx.created_at)[2]
            conn.execute(UPSERT_UNLOCK, (tx.chat_id, tx.user_id, spec.id, at, tx.id))
            ids = ",".join(sorted(taken | {spec.id}))
            conn.execute(SET_ACHIEVEMENTS, (ids, tx.chat_id, tx.user_id))
            forget(tx.chat_id, tx.user_id)
            reward_tx_id = None
            if spec.reward:
                reward = append(
                    tx.chat_id, tx.user_id, spec.reward, self.reward_key(tx, spec),
                    f"achievement: {spec.title}", spec.id,
                )  # fmt: skip
                reward_tx_id = reward.id
                conn.execute(SET_UNLOCK_REWARD, (reward.id, tx.chat_id, tx.user_id, spec.id))
            self._emit(conn, *self.unlock_event(tx, spec, reward_tx_id))

    def _revoke(
        self,
        conn: sqlite3.Connection,
        tx: Transaction,
        original: Transaction,
        revert: Revert,
        forget: Forget,
    ) -> None:
        for achievement, reward_tx_id in conn.execute(SELECT_CAUSED, (original.id,)).fetchall():
            conn.execute(REVOKE_UNLOCK, (tx.id, tx.chat_id, tx.user_id, achievement))
            (current,) = conn.execute(SELECT_ACHIEVEMENTS, (tx.chat_id, tx.user_id)).fetchone()
            ids = ",".join(sorted(frozenset(current.split(",")) - {"", achievement}))
            conn.execute(SET_ACHIEVEMENTS, (ids, tx.chat_id, tx.user_id))
            forget(tx.chat_id, tx.user_id)
            if reward_tx_id is not None:
                revert(reward_tx_id, f"revoke:{reward_tx_id}", f"{achievement} revoked")
            self._emit(conn, *self.revoke_event(tx, original, achievement))

    # -- outbox -------------------------------------------------------------------------

    def _outbox_points(self, conn: sqlite3.Connection, tx: Transaction, old_balance: int) -> None:
        self._emit(conn, *self.points_event(tx, old_balance))

    def _emit(
        self, conn: sqlite3.Connection, event_id: str, kind: str, tx: Transaction, payload: object
    ) -> None:
        conn.execute(INSERT_OUTBOX, self.outbox_row(event_id, kind, tx, payload))
