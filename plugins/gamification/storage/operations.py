"""The operations a ledger's writer applies: postings, reversals and side-table writes.

Backend-neutral records: the SQLite and the PostgreSQL writers take the same operations
and give the same outcomes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.models import Breakdown, Receipt, TxKind
from plugins.gamification.storage.hashing import request_hash
from plugins.gamification.storage.records import AuditNote

# Both backends store 64-bit integers; staying far below keeps every sum exact.
MAX_BALANCE = 2**53
# Account rows the writer keeps after writing them (about 0.5 KB each).
ACCOUNT_CACHE = 16_384


class Posting(NamedTuple):
    """Credit or debit one account by an already computed amount.

    A named tuple: immutable like the other operations, and built for every award on the
    event loop at a fraction of a frozen dataclass's cost.
    """

    chat_id: int
    user_id: int
    amount: int
    kind: TxKind
    key: str
    actor_id: int | None
    reason: str
    breakdown: Breakdown
    allow_negative: bool = False
    # The breakdown's JSON and the request fingerprint, when the caller computed them
    # already (the engine does, on the event loop, to keep them off the writer's thread).
    breakdown_json: str = ""
    request: str = ""
    # The admin's audit row, written with the transaction (never for a repeat of the key).
    audit: AuditNote | None = None
    # For activity points: the most the account may hold of them for the day (the ledger
    # timezone's) with this posting; past it, DailyCapError. Not part of the request: a
    # retry with another limit is still the same request.
    day_limit: int | None = None

    def fingerprint(self, breakdown: str) -> str:
        """What makes a repeat of this key the same request; `breakdown` is its JSON."""
        return posting_request(
            self.chat_id, self.user_id, self.amount, self.kind, self.actor_id, self.reason,
            breakdown,
        )  # fmt: skip


# A person's awards for the same kind of message repeat the same request; the hash of a
# repeat is looked up rather than computed again. Sized like the writer's account cache:
# one entry (about 300 bytes) per recently active account.
@functools.lru_cache(maxsize=ACCOUNT_CACHE)
def posting_request(
    chat_id: int,
    user_id: int,
    amount: int,
    kind: TxKind,
    actor_id: int | None,
    reason: str,
    breakdown: str,
) -> str:
    """The fingerprint of a posting (see Posting.fingerprint)."""
    return request_hash("post", chat_id, user_id, amount, kind, actor_id, reason, breakdown)


@dataclass(frozen=True, slots=True)
class Reversal:
    """Compensate an earlier transaction; `chat_id` scopes it when not None."""

    tx_id: int
    key: str
    actor_id: int | None
    reason: str
    chat_id: int | None = None
    # The admin's audit row, written with the transaction (never for a repeat of the key).
    audit: AuditNote | None = None

    def fingerprint(self) -> str:
        return request_hash("revert", self.tx_id, self.actor_id, self.reason, self.chat_id)


@dataclass(frozen=True, slots=True)
class SideWrite:
    """Writes to tables beside the ledger (freezes, people seen, the audit log, the outbox).

    All statements commit together. Each SQL text is one of the store's module-level
    statement constants (in the backend's own dialect), never built from input.
    """

    statements: tuple[tuple[str, tuple[object, ...]], ...]


Operation = Posting | Reversal | SideWrite
Outcome = Receipt | None | GamificationError
