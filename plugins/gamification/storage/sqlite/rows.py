"""Mapping between ledger rows and Transaction records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from plugins.gamification.domain.clock import parse_utc
from plugins.gamification.domain.models import Breakdown, Transaction, TxKind
from plugins.gamification.storage.sqlite.schema import GENESIS_HASH

# Every statement is a complete literal with ? parameters: SQL is never assembled at run
# time, so no value can change its shape. Selects list the columns in row_to_transaction order.
SELECT_TX_BY_ID = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash FROM transactions WHERE id = ?"
)
SELECT_TX_BY_KEY = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash, request_hash"
    " FROM transactions WHERE idem_key = ?"
)
SELECT_HISTORY = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash FROM transactions"
    " WHERE chat_id = ? AND user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
)
INSERT_TX = (
    "INSERT INTO transactions (id, chat_id, user_id, seq, amount, balance_after, kind, idem_key,"
    " actor_id, reason, breakdown, created_at, reverts_id, prev_hash, hash, request_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


SELECT_REVERT_OF = "SELECT id FROM transactions WHERE reverts_id = ?"
SELECT_ACCOUNT = (
    "SELECT balance, earned, seq, head_hash, streak_day, streak_length, streak_best,"
    " achievements, activity_day, activity_today FROM accounts"
    " WHERE chat_id = ? AND user_id = ?"
)
UPSERT_ACCOUNT = (
    "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at,"
    " streak_day, streak_length, streak_best, achievements, activity_day, activity_today)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE"
    " SET balance = excluded.balance, earned = excluded.earned, seq = excluded.seq,"
    " head_hash = excluded.head_hash, updated_at = excluded.updated_at,"
    " streak_day = excluded.streak_day, streak_length = excluded.streak_length,"
    " streak_best = excluded.streak_best, achievements = excluded.achievements,"
    " activity_day = excluded.activity_day, activity_today = excluded.activity_today"
)


class AccountRow(NamedTuple):
    """An account's cached state as the writer reads and writes it, in SELECT_ACCOUNT order.

    A named tuple rather than a dataclass: the writer makes two for every transaction, and
    a tuple is built several times faster than a frozen dataclass.
    """

    balance: int = 0
    earned: int = 0
    seq: int = 0
    head: str = GENESIS_HASH
    streak_day: str | None = None
    streak_length: int = 0
    streak_best: int = 0
    # Comma-separated ids of the achievements unlocked and not revoked.
    achievements: str = ""
    # Local day of the last activity points and how many were earned that day.
    activity_day: str | None = None
    activity_today: int = 0

    def moved(self, balance: int, earned: int, seq: int, head: str) -> AccountRow:
        # Spelled out rather than dataclasses.replace: this runs for every transaction.
        return AccountRow(
            balance, earned, seq, head, self.streak_day, self.streak_length, self.streak_best,
            self.achievements, self.activity_day, self.activity_today,
        )  # fmt: skip

    def unlocked(self) -> frozenset[str]:
        return frozenset(self.achievements.split(",")) - {""}


def row_to_transaction(row: Sequence[Any]) -> Transaction:
    """Build a Transaction from a row selected by one of the statements above, in that order."""
    return Transaction(
        id=row[0],
        chat_id=row[1],
        user_id=row[2],
        seq=row[3],
        amount=row[4],
        balance_after=row[5],
        kind=TxKind(row[6]),
        key=row[7],
        actor_id=row[8],
        reason=row[9],
        breakdown=Breakdown.from_json(row[10]),
        created_at=parse_utc(row[11]),
        reverts_id=row[12],
        prev_hash=row[13],
        hash=row[14],
    )
