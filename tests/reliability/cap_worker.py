"""Subprocess for test_day_cap: awards activity points with a day limit, as a bot would.

Usage: python cap_worker.py LEDGER RUN_ID COUNT

Awards 7 points COUNT times to each of three accounts (10 at a time), every award with a
day limit of 100 and the key `RUN_ID:<n>`. Each outcome is one line:

    A <key> <user>     granted
    C <key> <user>     refused for the day's cap

and any other error a caller saw `E <error class> <message>`; that key is tried again.
Imports nothing from tests/.
"""

from __future__ import annotations

import asyncio
import sys

from plugins.gamification import DailyCapError, PointsEngine

CHAT = -100_6060
USERS = (1, 2, 3)
LIMIT = 100


async def award(engine: PointsEngine, run_id: str, n: int) -> None:
    key, user = f"{run_id}:{n}", USERS[n % len(USERS)]
    while True:
        try:
            await engine.award(CHAT, user, 7, key=key, day_limit=LIMIT)
        except DailyCapError:
            print(f"C {key} {user}", flush=True)
            return
        except Exception as exc:  # reported, then tried again
            print(f"E {type(exc).__name__} {' '.join(str(exc).split())}", flush=True)
            await asyncio.sleep(0.05)
            continue
        print(f"A {key} {user}", flush=True)
        return


async def main(ledger: str, run_id: str, count: int) -> None:
    engine = await PointsEngine.open(ledger)
    try:
        total = count * len(USERS)
        for start in range(0, total, 10):
            await asyncio.gather(*(award(engine, run_id, n) for n in range(start, start + 10)))
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
