"""Every table of a ledger, as both backends hold it: what `migrate` and a backup copy.

The schemas (sqlite/schema.py version 9, postgres/schema.py version 4) have the same tables
and columns. The tables are listed parents first (transactions before the unlocks naming
them, checkpoints before their heads); each is read in a fixed order, so two ledgers can be
compared row for row. `booleans` are the columns SQLite keeps as 0/1 and PostgreSQL as
BOOLEAN: rows are read with them as bool on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    select: str
    count: str
    sqlite_insert: str
    # PostgreSQL's identity column, moved past the copied ids after a copy.
    identity: str | None = None
    booleans: tuple[int, ...] = ()

    def normalise(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self.booleans:
            return tuple(row)
        return tuple(
            bool(value) if i in self.booleans and value is not None else value
            for i, value in enumerate(row)
        )


TABLES: tuple[Table, ...] = (
    Table(
        "accounts",
        (
            "chat_id",
            "user_id",
            "balance",
            "earned",
            "seq",
            "head_hash",
            "updated_at",
            "streak_day",
            "streak_length",
            "streak_best",
            "achievements",
            "activity_day",
            "activity_today",
        ),
        "SELECT chat_id, user_id, balance, earned, seq, head_hash, updated_at, streak_day,"
        " streak_length, streak_best, achievements, activity_day, activity_today"
        " FROM accounts ORDER BY chat_id, user_id",
        "SELECT COUNT(*) FROM accounts",
        "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at,"
        " streak_day, streak_length, streak_best, achievements, activity_day, activity_today)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    Table(
        "transactions",
        (
            "id",
            "chat_id",
            "user_id",
            "seq",
            "amount",
            "balance_after",
            "kind",
            "idem_key",
            "request_hash",
            "actor_id",
            "reason",
            "breakdown",
            "created_at",
            "reverts_id",
            "prev_hash",
            "hash",
        ),
        "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, request_hash,"
        " actor_id, reason, breakdown, created_at, reverts_id, prev_hash, hash"
        " FROM transactions ORDER BY id",
        "SELECT COUNT(*) FROM transactions",
        "INSERT INTO transactions (id, chat_id, user_id, seq, amount, balance_after, kind,"
        " idem_key, request_hash, actor_id, reason, breakdown, created_at, reverts_id,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    Table(
        "checkpoints",
        (
            "id",
            "created_at",
            "high_water",
            "tx_count",
            "accounts",
            "digest",
            "violations",
            "report",
        ),
        "SELECT id, created_at, high_water, tx_count, accounts, digest, violations, report"
        " FROM checkpoints ORDER BY id",
        "SELECT COUNT(*) FROM checkpoints",
        "INSERT INTO checkpoints (id, created_at, high_water, tx_count, accounts, digest,"
        " violations, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        identity="id",
    ),
    Table(
        "checkpoint_heads",
        ("checkpoint_id", "chat_id", "user_id", "seq", "hash"),
        "SELECT checkpoint_id, chat_id, user_id, seq, hash FROM checkpoint_heads"
        " ORDER BY checkpoint_id, chat_id, user_id",
        "SELECT COUNT(*) FROM checkpoint_heads",
        "INSERT INTO checkpoint_heads (checkpoint_id, chat_id, user_id, seq, hash)"
        " VALUES (?, ?, ?, ?, ?)",
    ),
    Table(
        "freezes",
        ("chat_id", "user_id", "frozen_at", "frozen_by", "reason"),
        "SELECT chat_id, user_id, frozen_at, frozen_by, reason FROM freezes"
        " ORDER BY chat_id, user_id",
        "SELECT COUNT(*) FROM freezes",
        "INSERT INTO freezes (chat_id, user_id, frozen_at, frozen_by, reason)"
        " VALUES (?, ?, ?, ?, ?)",
    ),
    Table(
        "suspicions",
        ("id", "chat_id", "user_id", "reason", "detail", "created_at"),
        "SELECT id, chat_id, user_id, reason, detail, created_at FROM suspicions ORDER BY id",
        "SELECT COUNT(*) FROM suspicions",
        "INSERT INTO suspicions (id, chat_id, user_id, reason, detail, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        identity="id",
    ),
    Table(
        "known_users",
        ("user_id", "username", "full_name", "is_bot", "updated_at"),
        "SELECT user_id, username, full_name, is_bot, updated_at FROM known_users"
        " ORDER BY user_id",
        "SELECT COUNT(*) FROM known_users",
        "INSERT INTO known_users (user_id, username, full_name, is_bot, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        booleans=(3,),
    ),
    Table(
        "admin_actions",
        ("id", "chat_id", "actor_id", "action", "target_id", "detail", "created_at"),
        "SELECT id, chat_id, actor_id, action, target_id, detail, created_at FROM admin_actions"
        " ORDER BY id",
        "SELECT COUNT(*) FROM admin_actions",
        "INSERT INTO admin_actions (id, chat_id, actor_id, action, target_id, detail,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        identity="id",
    ),
    Table(
        "outbox",
        (
            "id",
            "event_id",
            "type",
            "chat_id",
            "user_id",
            "payload",
            "occurred_at",
            "delivered_at",
        ),
        "SELECT id, event_id, type, chat_id, user_id, payload, occurred_at, delivered_at"
        " FROM outbox ORDER BY id",
        "SELECT COUNT(*) FROM outbox",
        "INSERT INTO outbox (id, event_id, type, chat_id, user_id, payload, occurred_at,"
        " delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        identity="id",
    ),
    Table(
        "progress",
        ("chat_id", "user_id", "name", "value"),
        "SELECT chat_id, user_id, name, value FROM progress ORDER BY chat_id, user_id, name",
        "SELECT COUNT(*) FROM progress",
        "INSERT INTO progress (chat_id, user_id, name, value) VALUES (?, ?, ?, ?)",
    ),
    Table(
        "unlocks",
        (
            "chat_id",
            "user_id",
            "achievement",
            "unlocked_at",
            "cause_tx_id",
            "reward_tx_id",
            "revoked_tx_id",
        ),
        "SELECT chat_id, user_id, achievement, unlocked_at, cause_tx_id, reward_tx_id,"
        " revoked_tx_id FROM unlocks ORDER BY chat_id, user_id, achievement",
        "SELECT COUNT(*) FROM unlocks",
        "INSERT INTO unlocks (chat_id, user_id, achievement, unlocked_at, cause_tx_id,"
        " reward_tx_id, revoked_tx_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ),
    # Claims of scheduled runs: copied, so a ledger moved mid-day does not run today's
    # check or this week's posts again on its new backend.
    Table(
        "job_runs",
        ("job", "slot", "claimed_at", "claimed_by"),
        "SELECT job, slot, claimed_at, claimed_by FROM job_runs ORDER BY job, slot",
        "SELECT COUNT(*) FROM job_runs",
        "INSERT INTO job_runs (job, slot, claimed_at, claimed_by) VALUES (?, ?, ?, ?)",
    ),
    # Which chats' pages are public: a moved ledger keeps each chat's choice.
    Table(
        "web_access",
        ("chat_id", "public", "changed_by", "changed_at"),
        "SELECT chat_id, public, changed_by, changed_at FROM web_access ORDER BY chat_id",
        "SELECT COUNT(*) FROM web_access",
        "INSERT INTO web_access (chat_id, public, changed_by, changed_at) VALUES (?, ?, ?, ?)",
        booleans=(1,),
    ),
    # What each chat's admins chose (its language): a moved ledger keeps speaking it.
    Table(
        "chat_settings",
        ("chat_id", "language", "updated_at", "updated_by"),
        "SELECT chat_id, language, updated_at, updated_by FROM chat_settings ORDER BY chat_id",
        "SELECT COUNT(*) FROM chat_settings",
        "INSERT INTO chat_settings (chat_id, language, updated_at, updated_by)"
        " VALUES (?, ?, ?, ?)",
    ),
)
