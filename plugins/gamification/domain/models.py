"""Plain domain records shared by the store, the engine and their callers."""

from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@functools.lru_cache(maxsize=1024)
def _plain_json(base: int, result: int, tag: str) -> str:
    """Breakdown.to_json of a breakdown without multipliers (the same text, cached)."""
    data: dict[str, Any] = {"base": base, "multipliers": [], "result": result}
    if tag:
        data["tag"] = tag
    return _compact(data)


class TxKind(enum.StrEnum):
    """Why a transaction exists; stored as text in the ledger."""

    ACTIVITY = "activity"
    THANKS = "thanks"
    REACTION = "reaction"
    ADMIN = "admin"
    EVENT = "event"
    REVERT = "revert"
    ACHIEVEMENT = "achievement"


class Period(enum.StrEnum):
    """Leaderboard windows, as calendar periods in the configured timezone."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Multiplier:
    """A named factor applied to a base amount, for example ("weekend", Decimal("1.5"))."""

    name: str
    factor: Decimal


@dataclass(frozen=True, slots=True)
class Breakdown:
    """How an amount was computed: base times each multiplier, rounded once."""

    base: int
    multipliers: tuple[Multiplier, ...] = ()
    result: int = 0
    # What earned it, for progress counters: a message kind, an event type, "thanks".
    tag: str = ""

    def to_json(self) -> str:
        if not self.multipliers:
            # Most awards: the same few (base, tag) pairs over and over.
            return _plain_json(self.base, self.result, self.tag)
        data: dict[str, Any] = {
            "base": self.base,
            "multipliers": [[m.name, str(m.factor)] for m in self.multipliers],
            "result": self.result,
        }
        if self.tag:
            data["tag"] = self.tag
        return _compact(data)

    @classmethod
    def from_json(cls, text: str) -> Breakdown:
        data: dict[str, Any] = json.loads(text)
        return cls(
            base=int(data["base"]),
            multipliers=tuple(Multiplier(str(n), Decimal(str(f))) for n, f in data["multipliers"]),
            result=int(data["result"]),
            tag=str(data.get("tag", "")),
        )

    def describe(self) -> str:
        """`10 x weekend 1.5 = 15`, or just `15` when nothing multiplied it."""
        if not self.multipliers:
            return str(self.result)
        factors = " ".join(f"x {m.name} {m.factor}" for m in self.multipliers)
        return f"{self.base} {factors} = {self.result}"


@dataclass(frozen=True, slots=True)
class Transaction:
    """One committed ledger row."""

    id: int
    chat_id: int
    user_id: int
    seq: int
    amount: int
    balance_after: int
    kind: TxKind
    key: str
    actor_id: int | None
    reason: str
    breakdown: Breakdown
    created_at: datetime
    reverts_id: int | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a write returns: the transaction and whether it was a repeat of an earlier key."""

    transaction: Transaction
    duplicate: bool = False

    @property
    def balance(self) -> int:
        return self.transaction.balance_after


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An account's cached totals."""

    chat_id: int
    user_id: int
    balance: int
    earned: int
    tx_count: int


@dataclass(frozen=True, slots=True)
class Standing:
    """One leaderboard line."""

    rank: int
    user_id: int
    points: int


@dataclass(frozen=True, slots=True)
class Leaderboard:
    chat_id: int
    period: Period
    lines: tuple[Standing, ...] = field(default_factory=tuple)
