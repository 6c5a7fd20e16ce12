"""Rows of the ledger's reads turned into records, and records into statement parameters.

Backend-neutral: every store selects the same columns in the same order, so SQLite's and
PostgreSQL's stores build their records (and bind their side writes) the same way here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, Protocol

from plugins.gamification.storage.records import (
    AdminAction,
    KnownPerson,
    OutboxEvent,
    ProgressRow,
    TodayRow,
)


class Row(Protocol):
    """A selected row: a tuple (SQLite) or an asyncpg Record, read by position."""

    def __getitem__(self, index: int, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


def progress_row(
    counters: Iterable[Row], streak: Sequence[Row], unlocked: Iterable[Row]
) -> ProgressRow:
    """An account's progress from its (name, value) counters, its (day, length, best)
    streak row if any, and its (achievement, unlocked_at) unlocks."""
    day, length, best = streak[0] if streak else (None, 0, 0)
    return ProgressRow(
        counters={str(name): int(value) for name, value in counters},
        streak_day=date.fromisoformat(day) if day is not None else None,
        streak_length=int(length),
        streak_best=int(best),
        unlocked={str(a): str(at) for a, at in unlocked},
    )


def today_row(row: Row) -> TodayRow:
    """(streak_day, streak_length, activity_day, activity_today) as a TodayRow."""
    streak_day, length, activity_day, activity_today = row
    return TodayRow(
        date.fromisoformat(streak_day) if streak_day is not None else None,
        int(length),
        activity_day,
        int(activity_today),
    )


def known_person(row: Row) -> KnownPerson:
    """(user_id, username, full_name, is_bot) as a KnownPerson."""
    return KnownPerson(int(row[0]), row[1], row[2], bool(row[3]))


def outbox_params(event: OutboxEvent) -> tuple[object, ...]:
    """The parameters of an outbox INSERT (event_id, type, chat, user, payload, time)."""
    return (
        event.event_id,
        event.type,
        event.chat_id,
        event.user_id,
        event.payload,
        event.occurred_at,
    )


def audit_params(audit: AdminAction, at: str) -> tuple[object, ...]:
    """The parameters of an admin_actions INSERT (chat, actor, action, target, detail, at)."""
    return (audit.chat_id, audit.actor_id, audit.action, audit.target_id, audit.detail, at)
