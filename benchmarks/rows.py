"""Ledger rows built the way the batch writer builds them, with real hashes, for the baselines.

The naive engine, the raw sqlite3 limit and the integrity check's ledger all write these,
so every comparison is over the same bytes: the transaction row (chain hash and request
fingerprint included), the account row and the `points.awarded` outbox row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from plugins.gamification.domain.models import Breakdown, TxKind
from plugins.gamification.storage.hashing import chain_hash, compact_json, request_hash
from plugins.gamification.storage.sqlite.rows import UPSERT_ACCOUNT, AccountRow
from plugins.gamification.storage.sqlite.schema import migrate

# Every measured award is what a scored text message earns with no multiplier.
AMOUNT = 20
TAG = "text"
REASON = "text message"
BREAKDOWN = Breakdown(base=AMOUNT, result=AMOUNT, tag=TAG).to_json()
CHATS = 10
FIRST_CHAT = -1_001_000_000_000
FIRST_USER = 100_000


def account_of(index: int, accounts: int) -> tuple[int, int]:
    """The (chat, user) the index-th award goes to: round robin over `accounts` accounts."""
    n = index % accounts
    return FIRST_CHAT - n % CHATS, FIRST_USER + n // CHATS


def account_params(chat_id: int, user_id: int, row: AccountRow, now: str) -> tuple[object, ...]:
    """UPSERT_ACCOUNT binds chat, user, the first four AccountRow fields (balance, earned,
    seq, head), updated_at, then the rest of AccountRow in order, as the writer does."""
    return (chat_id, user_id, *row[:4], now, *row[4:])


@dataclass(frozen=True, slots=True)
class AwardRows:
    tx: tuple[object, ...]
    account: tuple[object, ...]
    outbox: tuple[object, ...]
    head: AccountRow


def award_rows(
    head: AccountRow, tx_id: int, chat_id: int, user_id: int, key: str, now: str
) -> AwardRows:
    """The rows one award of AMOUNT writes, in INSERT_TX, UPSERT_ACCOUNT, INSERT_OUTBOX order."""
    seq, balance, earned = head.seq + 1, head.balance + AMOUNT, head.earned + AMOUNT
    fingerprint = request_hash(
        "post", chat_id, user_id, AMOUNT, TxKind.ACTIVITY, None, REASON, BREAKDOWN
    )
    digest = chain_hash(
        head.head, tx_id=tx_id, chat_id=chat_id, user_id=user_id, seq=seq, amount=AMOUNT,
        balance_after=balance, kind="activity", idem_key=key, actor_id=None, reason=REASON,
        breakdown=BREAKDOWN, created_at=now, reverts_id=None,
    )  # fmt: skip
    tx = (
        tx_id, chat_id, user_id, seq, AMOUNT, balance, "activity", key, None, REASON,
        BREAKDOWN, now, None, head.head, digest, fingerprint,
    )  # fmt: skip
    after = head.moved(balance, earned, seq, digest)
    payload = {
        "tx_id": tx_id, "amount": AMOUNT, "kind": "activity", "tag": TAG,
        "old_balance": head.balance, "new_balance": balance, "reason": REASON,
        "reverts_id": None, "actor_id": None,
    }  # fmt: skip
    outbox = (f"tx:{tx_id}", "points.awarded", chat_id, user_id, compact_json(payload), now)
    return AwardRows(tx, account_params(chat_id, user_id, after, now), outbox, after)


def create_ledger(path: Path) -> sqlite3.Connection:
    """A fresh ledger file with the real schema, WAL and synchronous=FULL, in autocommit."""
    if UPSERT_ACCOUNT.count("?") != 3 + len(AccountRow._fields):
        raise RuntimeError(
            "UPSERT_ACCOUNT no longer binds chat, user, updated_at and every AccountRow field;"
            " update benchmarks/rows.py to match the writer"
        )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    migrate(conn)
    return conn
