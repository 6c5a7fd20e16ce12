"""Subprocess for test_postgres_stress: awards into one PostgreSQL ledger, as a bot would.

Usage: python pg_worker.py DSN RUN_ID COUNT IN_FLIGHT

Awards COUNT points (COUNT 0: forever) to the 50 accounts every worker shares, IN_FLIGHT at
a time, with keys `RUN_ID:<n>`. Each acknowledged award is one line, written and flushed
right after its `await` returned:

    A <key> <tx_id>

and each error a caller saw is one line `E <error class> <message>`; the same key is then
tried again, so nothing is lost and nothing doubled. Imports nothing from tests/.
"""

from __future__ import annotations

import asyncio
import sys

from plugins.gamification import PointsEngine

CHAT = -100_5050
USERS = 50


async def award(engine: PointsEngine, run_id: str, n: int) -> None:
    key = f"{run_id}:{n}"
    while True:
        try:
            receipt = await engine.award(CHAT, 1 + n % USERS, 1 + n % 7, key=key)
        except Exception as exc:  # reported, then tried again: the test judges the errors
            message = " ".join(str(exc).split())
            print(f"E {type(exc).__name__} {message}", flush=True)
            await asyncio.sleep(0.05)
            continue
        print(f"A {key} {receipt.transaction.id}", flush=True)
        return


async def main(dsn: str, run_id: str, count: int, in_flight: int) -> None:
    engine = await PointsEngine.open(dsn)
    try:
        n = 0
        while count == 0 or n < count:
            size = in_flight if count == 0 else min(in_flight, count - n)
            await asyncio.gather(*(award(engine, run_id, n + i) for i in range(size)))
            n += size
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
