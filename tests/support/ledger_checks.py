"""Whole-ledger checks for half-written operations, read from the file on a connection of its own.

`run_check` proves balances, chains and revert links. What it does not look at is everything
the writer commits beside a ledger row: the outbox row of each transaction, the counters, the
unlock rows and their rewards, the revocations. A crash or a fault in the middle of a batch
would show up there first, so these checks recompute all of it from the transactions.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugins.gamification.domain.config import Achievement
from plugins.gamification.domain.models import Breakdown
from plugins.gamification.domain.progression import counter_of
from plugins.gamification.storage.sqlite.integrity import run_check

COUNTED = ("activity", "event", "thanks_received")


@dataclass(frozen=True, slots=True)
class Tx:
    id: int
    chat_id: int
    user_id: int
    amount: int
    kind: str
    key: str
    tag: str
    reverts_id: int | None


@dataclass(slots=True)
class LedgerFigures:
    transactions: int = 0
    reverts: int = 0
    outbox: int = 0
    unlock_events: int = 0
    revoke_events: int = 0
    rewards: int = 0
    unlocked_now: int = 0


def read_ledger(conn: sqlite3.Connection) -> dict[int, Tx]:
    rows = conn.execute(
        "SELECT id, chat_id, user_id, amount, kind, idem_key, breakdown, reverts_id"
        " FROM transactions ORDER BY id"
    ).fetchall()
    return {
        r[0]: Tx(r[0], r[1], r[2], r[3], r[4], r[5], Breakdown.from_json(r[6]).tag, r[7])
        for r in rows
    }


def point_type(tx: Tx) -> str:
    if tx.kind == "revert":
        return "points.reverted"
    return "points.awarded" if tx.amount > 0 else "points.deducted"


def partial_writes(
    path: Path, achievements: Iterable[Achievement]
) -> tuple[list[str], LedgerFigures]:
    """Every sign of a half-written operation in the ledger at `path`, and what it holds.

    Assumes the outbox was never pruned (no relay ran), so every transaction still has its
    `tx:<id>` row.
    """
    specs = {a.id: a for a in achievements}
    tracked = {counter_of(a.condition) for a in specs.values() if a.condition.type in COUNTED}
    conn = sqlite3.connect(path)
    try:
        conn.execute("BEGIN")  # one snapshot for every table
        txs = read_ledger(conn)
        outbox: dict[str, tuple[str, int | None, int | None, dict[str, Any]]] = {
            event_id: (kind, chat, user, json.loads(payload))
            for event_id, kind, chat, user, payload in conn.execute(
                "SELECT event_id, type, chat_id, user_id, payload FROM outbox"
            )
        }
        unlocks = conn.execute(
            "SELECT chat_id, user_id, achievement, cause_tx_id, reward_tx_id, revoked_tx_id"
            " FROM unlocks"
        ).fetchall()
        accounts = {
            (chat, user): frozenset(ids.split(",")) - {""}
            for chat, user, ids in conn.execute(
                "SELECT chat_id, user_id, achievements FROM accounts"
            )
        }
        progress = {
            (chat, user, name): value
            for chat, user, name, value in conn.execute(
                "SELECT chat_id, user_id, name, value FROM progress"
            )
            if value
        }
        conn.execute("ROLLBACK")
    finally:
        conn.close()

    problems: list[str] = []
    figures = LedgerFigures(transactions=len(txs), outbox=len(outbox))
    reverted_by = {tx.reverts_id: tx.id for tx in txs.values() if tx.reverts_id is not None}
    figures.reverts = len(reverted_by)

    # Each transaction has its points.* event, and each points.* event its transaction.
    for tx in txs.values():
        event = outbox.get(f"tx:{tx.id}")
        if event is None:
            problems.append(f"transaction #{tx.id} ({tx.key}) has no outbox row")
        elif event[0] != point_type(tx) or event[3].get("amount") != tx.amount:
            problems.append(f"transaction #{tx.id} has a wrong outbox row {event}")
    for event_id, (kind, chat, user, payload) in outbox.items():
        if not kind.startswith("points."):
            continue
        tx_id = payload.get("tx_id")
        if event_id != f"tx:{tx_id}" or tx_id not in txs:
            problems.append(f"outbox row {event_id} ({kind}) names no transaction")
        elif (chat, user) != (txs[tx_id].chat_id, txs[tx_id].user_id):
            problems.append(f"outbox row {event_id} is addressed to another account")

    # Each reward transaction was earned by a committed cause and announced with it.
    for tx in txs.values():
        if tx.kind != "achievement":
            continue
        figures.rewards += 1
        spec_id, cause_id = tx.key.split(":")[3:]
        cause_tx = txs.get(int(cause_id))
        event = outbox.get(tx.key)
        if cause_tx is None or cause_tx.id > tx.id:
            problems.append(f"reward #{tx.id} ({tx.key}) has no earlier cause")
        elif (cause_tx.chat_id, cause_tx.user_id) != (tx.chat_id, tx.user_id):
            problems.append(f"reward #{tx.id} was paid to another account than its cause")
        if spec_id not in specs or tx.amount != specs[spec_id].reward:
            problems.append(f"reward #{tx.id} pays {tx.amount} for {spec_id}")
        if event is None or event[0] != "achievement.unlocked":
            problems.append(f"reward #{tx.id} ({tx.key}) has no achievement.unlocked event")
        elif event[3].get("reward_tx_id") != tx.id:
            problems.append(f"the unlock event {tx.key} names reward {event[3]}, not #{tx.id}")

    # Each unlock announced: its cause exists, its reward was paid, and when the cause was
    # reverted the unlock was revoked and its reward taken back.
    for event_id, (kind, chat, user, payload) in outbox.items():
        if kind == "achievement.unlocked":
            figures.unlock_events += 1
            spec_id, cause = payload["achievement"], payload["cause_tx_id"]
            cause_tx = txs.get(cause)
            if cause_tx is None or (cause_tx.chat_id, cause_tx.user_id) != (chat, user):
                problems.append(f"unlock event {event_id} has no cause in its account")
                continue
            reward_id = payload.get("reward_tx_id")
            if specs[spec_id].reward:
                reward = txs.get(reward_id) if isinstance(reward_id, int) else None
                if reward is None or reward.key != event_id:
                    problems.append(f"unlock event {event_id} has no reward transaction")
                    continue
            elif reward_id is not None:
                problems.append(f"unlock event {event_id} names a reward for a free achievement")
            revert_id = reverted_by.get(cause)
            if revert_id is not None:
                if f"achrev:{chat}:{user}:{spec_id}:{revert_id}" not in outbox:
                    problems.append(f"cause of {event_id} was reverted but nothing was revoked")
                if isinstance(reward_id, int) and reward_id not in reverted_by:
                    problems.append(
                        f"cause of {event_id} was reverted, its reward #{reward_id} not"
                    )
        elif kind == "achievement.revoked":
            figures.revoke_events += 1
            revert = txs.get(payload["revert_tx_id"])
            cause = payload["cause_tx_id"]
            if revert is None or revert.reverts_id != cause:
                problems.append(f"revoke event {event_id} has no revert of its cause")
            elif f"ach:{chat}:{user}:{payload['achievement']}:{cause}" not in outbox:
                problems.append(f"revoke event {event_id} revokes an unlock never announced")

    # The unlock rows and each account's set of achievements agree with the events.
    held: dict[tuple[int, int], set[str]] = {}
    for chat, user, spec_id, cause, reward_id, revoked_id in unlocks:
        event = outbox.get(f"ach:{chat}:{user}:{spec_id}:{cause}")
        if cause not in txs or event is None:
            problems.append(f"unlock {chat}/{user}/{spec_id} of #{cause} was never announced")
        elif event[3].get("reward_tx_id") != reward_id:
            problems.append(f"unlock {chat}/{user}/{spec_id} names reward #{reward_id}")
        if revoked_id is None:
            held.setdefault((chat, user), set()).add(spec_id)
            if cause in reverted_by:
                problems.append(f"unlock {chat}/{user}/{spec_id} outlived the revert of #{cause}")
        elif revoked_id not in txs or txs[revoked_id].reverts_id != cause:
            problems.append(f"unlock {chat}/{user}/{spec_id} revoked by #{revoked_id}, no revert")
    figures.unlocked_now = sum(len(ids) for ids in held.values())
    for account, ids in accounts.items():
        if set(ids) != held.get(account, set()):
            problems.append(f"account {account} lists {sorted(ids)}, unlock rows say otherwise")

    # Counters: +1 for every credited activity, event or thanks, -1 when it was reverted.
    expected: Counter[tuple[int, int, str]] = Counter()
    for tx in txs.values():
        if tx.amount <= 0:
            continue
        if tx.kind == "activity":
            names = ["activity:*", f"activity:{tx.tag}"] if tx.tag else ["activity:*"]
        elif tx.kind == "event" and tx.tag:
            names = [f"event:{tx.tag}"]
        elif tx.kind == "thanks":
            names = ["thanks_received"]
        else:
            continue
        for name in names:
            if name in tracked:
                expected[(tx.chat_id, tx.user_id, name)] += 0 if tx.id in reverted_by else 1
    wanted = {k: v for k, v in expected.items() if v}
    if progress != wanted:
        wrong = sorted(set(progress.items()) ^ set(wanted.items()))[:5]
        problems.append(f"progress counters differ from the ledger: {wrong}")
    return problems[:20], figures


def assert_sound(path: Path, achievements: Iterable[Achievement] = ()) -> LedgerFigures:
    """The file is a sound SQLite database, the ledger checks clean, nothing is half-written."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    report = run_check(path)
    assert report.ok, report.to_text()
    assert report.quick_check == "ok"
    problems, figures = partial_writes(path, achievements)
    assert problems == [], "\n".join(problems)
    return figures


def assert_one_sentence(error: BaseException) -> None:
    """What a person reads: one line, one sentence, no traceback, no exception repr."""
    message = str(error)
    assert message, error
    assert "\n" not in message, message
    assert "Traceback" not in message, message
    assert "Error(" not in message, message
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert not re.search(r"[.!?]\s+[A-Z]", message[:-1]), message
