"""Plain records the storage hands out and takes in beside transactions (no SQL, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An admin_actions row written in the same ledger transaction as the change it records.

    The chat, the actor and the target are those of the transaction itself, and the time
    is the batch's, so the row cannot disagree with the change it describes.
    """

    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class AdminAction:
    """An admin_actions row that is not tied to a transaction (a freeze, an unfreeze)."""

    chat_id: int
    actor_id: int | None
    action: str
    target_id: int | None
    detail: str


class OutboxRow(NamedTuple):
    """One committed event waiting in the outbox, in delivery order."""

    id: int
    event_id: str
    type: str
    chat_id: int | None
    user_id: int | None
    payload: str
    occurred_at: str


@dataclass(frozen=True, slots=True)
class ProgressRow:
    """What the ledger keeps about one account's progress."""

    counters: dict[str, int]
    # Last active local day and the streak's length on it; None before any activity.
    streak_day: date | None
    streak_length: int
    streak_best: int
    # Achievement id -> when it was unlocked (not revoked).
    unlocked: dict[str, str]


@dataclass(frozen=True, slots=True)
class TodayRow:
    """The account's streak and today's activity points, as the scoring service reads them."""

    streak_day: date | None
    streak_length: int
    activity_day: str | None
    activity_today: int


@dataclass(frozen=True, slots=True)
class KnownPerson:
    """A person the bot has seen, as stored."""

    user_id: int
    username: str | None
    full_name: str
    is_bot: bool


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event to queue in the outbox, committed with the write it belongs to."""

    event_id: str
    type: str
    chat_id: int | None
    user_id: int | None
    # The event's JSON body.
    payload: str
    occurred_at: str


class AuditEntry(NamedTuple):
    """One admin_actions row as read back for a chat's audit trail, newest first."""

    id: int
    actor_id: int | None
    action: str
    target_id: int | None
    detail: str
    created_at: str
