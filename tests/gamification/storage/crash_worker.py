"""Subprocess for test_crash: awards and reverts forever, printing each acknowledged write.

Usage: python crash_worker.py DB_PATH RUN_ID SEED

Each acknowledged write is one line, written and flushed right after its `await` returned:

    A <tx_id> <key> <chat_id> <user_id> <amount> <crc>
    R <tx_id> <key> <original_id> <amount> <crc>

`<crc>` is the CRC-32 (hex) of everything before it on the line, so a reader can tell a
whole line from a torn one; a line is only complete once its newline was written.
"""

from __future__ import annotations

import asyncio
import random
import sys
import zlib

from plugins.gamification import PointsEngine, RevertError, TxKind

CHATS = (-100_777, -100_888)
USERS = tuple(range(1, 11))
ACCOUNTS = tuple((chat, user) for chat in CHATS for user in USERS)
BURST = 50
REVERTS_PER_BURST = 5


def emit(*fields: object) -> None:
    body = " ".join(str(f) for f in fields)
    sys.stdout.write(f"{body} {zlib.crc32(body.encode()):08x}\n")
    sys.stdout.flush()


async def earlier_transactions(engine: PointsEngine) -> list[int]:
    """Ids of non-revert transactions committed by earlier runs: revert candidates."""
    ids: list[int] = []
    for chat, user in ACCOUNTS:
        for tx in await engine.history(chat, user, limit=50):
            if tx.kind is not TxKind.REVERT:
                ids.append(tx.id)
    return ids


async def main(path: str, run_id: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = await PointsEngine.open(path)
    candidates = await earlier_transactions(engine)
    tried: set[int] = set()

    async def award(burst: int, i: int) -> None:
        chat, user = rng.choice(ACCOUNTS)
        key = f"r{run_id}:b{burst}:a{i}"
        receipt = await engine.award(chat, user, rng.randint(1, 100), key=key, reason="crash")
        tx = receipt.transaction
        candidates.append(tx.id)
        emit("A", tx.id, key, tx.chat_id, tx.user_id, tx.amount)

    async def revert(burst: int, j: int, tx_id: int) -> None:
        key = f"r{run_id}:b{burst}:v{j}"
        try:
            receipt = await engine.revert(tx_id, key=key, actor_id=0, reason="crash")
        except RevertError:
            return  # reverted by an earlier run that was killed before it could say so
        emit("R", receipt.transaction.id, key, tx_id, receipt.transaction.amount)

    burst = 0
    while True:
        reverts = []
        for j in range(REVERTS_PER_BURST):
            pool = [t for t in candidates if t not in tried]
            if not pool:
                break
            tx_id = rng.choice(pool)
            tried.add(tx_id)
            reverts.append(revert(burst, j, tx_id))
        await asyncio.gather(*(award(burst, i) for i in range(BURST)), *reverts)
        burst += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
