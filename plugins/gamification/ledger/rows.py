"""Mapping between ledger rows and Transaction records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugins.gamification.clock import parse_utc
from plugins.gamification.models import Breakdown, Transaction, TxKind

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
