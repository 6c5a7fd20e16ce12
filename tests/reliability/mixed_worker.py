"""Subprocess for test_crash_mixed: chat awards, bus events and admin reverts, forever.

Usage: python mixed_worker.py DB_PATH RUN_ID SEED

Achievements are configured, so awards unlock them (and their rewards) and reverts of the
transactions that unlocked them revoke them again. Each acknowledged write is one line,
written and flushed right after its `await` returned:

    A <tx_id> <key> <chat_id> <user_id> <amount> <kind> <crc>
    R <tx_id> <key> <original_id> <amount> <crc>

`<crc>` is the CRC-32 (hex) of everything before it on the line, so a reader can tell a
whole line from a torn one. Imports nothing from tests/: it runs as a plain script.
"""

from __future__ import annotations

import asyncio
import random
import sys
import zlib
from collections.abc import Coroutine

from plugins.gamification import (
    PointsEngine,
    RevertError,
    TxKind,
    admin_key,
    event_key,
    message_key,
)
from plugins.gamification.domain.config import Achievement
from plugins.gamification.domain.progression import ProgressRules


def _achievement(id: str, reward: int, **condition: object) -> Achievement:
    return Achievement.model_validate(
        {"id": id, "title": id.replace("_", " ").title(), "reward": reward,
         "condition": condition}
    )  # fmt: skip


ACHIEVEMENTS = (
    _achievement("first_steps", 10, type="earned", at_least=50),
    _achievement("chatter", 5, type="activity", kind="text", at_least=3),
    _achievement("regular", 25, type="activity", at_least=6),
    _achievement("gamer", 15, type="event", event="game.won", at_least=2),
    # No reward: an unlock with nothing to take back when it is revoked.
    _achievement("centurion", 0, type="earned", at_least=300),
)
# Accounts every run shares (so later runs revert earlier runs' work) and, per run, fresh
# ones that have unlocked nothing yet.
SHARED_CHAT = -100_1001
FRESH_CHAT = -100_1002
SHARED_USERS = tuple(range(1, 9))
FRESH_PER_RUN = 12
ADMIN = 9
CHAT_AWARDS = 24
EVENT_AWARDS = 8
REVERTS = 4
EVENTS = (("game.won", 20), ("narrative.chapter_completed", 50))
KINDS = ("text", "text", "photo")


def emit(*fields: object) -> None:
    body = " ".join(str(f) for f in fields)
    sys.stdout.write(f"{body} {zlib.crc32(body.encode()):08x}\n")
    sys.stdout.flush()


async def revert_candidates(engine: PointsEngine, rng: random.Random) -> list[tuple[int, int]]:
    """(tx_id, chat_id) to revert: transactions that unlocked something first, then others."""
    causes = await engine.store.fetchall(
        "SELECT u.cause_tx_id, u.chat_id FROM unlocks AS u WHERE u.revoked_tx_id IS NULL", ()
    )
    others = await engine.store.fetchall(
        "SELECT id, chat_id FROM transactions WHERE kind != 'revert' AND id NOT IN"
        " (SELECT reverts_id FROM transactions WHERE reverts_id IS NOT NULL)"
        " ORDER BY random() LIMIT 20",
        (),
    )
    picked = rng.sample(list(causes), min(len(causes), REVERTS // 2 + 1))
    return [(int(t), int(c)) for t, c in [*picked, *others]]


async def main(path: str, run_id: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = await PointsEngine.open(path, progress=ProgressRules(achievements=ACHIEVEMENTS))
    accounts = [(SHARED_CHAT, u) for u in SHARED_USERS] + [
        (FRESH_CHAT, run_id * 1000 + u) for u in range(1, FRESH_PER_RUN + 1)
    ]
    message_ids = iter(range(run_id * 1_000_000, (run_id + 1) * 1_000_000))
    tried: set[int] = set()

    async def chat_award() -> None:
        chat, user = rng.choice(accounts)
        kind = rng.choice(KINDS)
        key = message_key(chat, next(message_ids))
        receipt = await engine.award(
            chat, user, rng.randint(5, 40), key=key, reason=f"{kind} message", tag=kind
        )
        tx = receipt.transaction
        emit("A", tx.id, key, tx.chat_id, tx.user_id, tx.amount, tx.kind.value)

    async def event_award(n: int) -> None:
        chat, user = rng.choice(accounts)
        event_type, points = rng.choice(EVENTS)
        key = event_key(f"r{run_id}-e{n}")
        receipt = await engine.award(
            chat, user, points, key=key, kind=TxKind.EVENT, reason=event_type, tag=event_type
        )
        tx = receipt.transaction
        emit("A", tx.id, key, tx.chat_id, tx.user_id, tx.amount, tx.kind.value)

    async def revert(tx_id: int, chat: int) -> None:
        key = admin_key(chat, next(message_ids))
        try:
            receipt = await engine.revert(
                tx_id, key=key, actor_id=ADMIN, reason="admin revert", chat_id=chat
            )
        except RevertError:
            # Reverted already: by a run killed before it could say so, by the revocation
            # of what earned this reward, or this is a reward's own compensation.
            return
        emit("R", receipt.transaction.id, key, tx_id, receipt.transaction.amount)

    events = 0
    while True:
        reverts: list[Coroutine[None, None, None]] = []
        for tx_id, chat in await revert_candidates(engine, rng):
            if len(reverts) == REVERTS:
                break
            if tx_id not in tried:
                tried.add(tx_id)
                reverts.append(revert(tx_id, chat))
        awards = [chat_award() for _ in range(CHAT_AWARDS)]
        awards += [event_award(events + i) for i in range(EVENT_AWARDS)]
        events += EVENT_AWARDS
        calls = [*awards, *reverts]
        rng.shuffle(calls)
        await asyncio.gather(*calls)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
