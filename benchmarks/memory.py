"""Resident memory growth over many awards, measured in a fresh child process.

A process that has already run other measurements holds freed memory it reuses, which
hides growth (the parent's RSS did not move over a million awards); a child starts clean.
Run as `python -m benchmarks.memory PATH AWARDS ACCOUNTS`: prints JSON.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.ledger import drive, ours
from benchmarks.report import rss_bytes

WIDTH = 1_000
CHILD_TIMEOUT = 1_800.0


@dataclass(frozen=True, slots=True)
class Memory:
    awards: int
    accounts: int
    before: int | None
    after: int | None
    seconds: float

    @property
    def growth_mb(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return (self.after - self.before) / 2**20


async def rss_growth(path: Path, count: int, accounts: int) -> Memory:
    """VmRSS before and after `count` awards over `accounts` accounts, WIDTH in flight.

    Measured after a warm-up on the same engine, with garbage collected at both ends; the
    run keeps no per-award data of its own, so the growth is the engine's.
    """
    async with ours(path) as factory:
        warmup = 10_000 if count >= 100_000 else 1_000
        await drive(factory(accounts, "warm"), warmup, WIDTH, timed=False)
        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        await drive(factory(accounts, "mem"), count, WIDTH, timed=False)
        seconds = time.perf_counter() - started
        gc.collect()
        after = rss_bytes()
    return Memory(count, accounts, before, after, seconds)


def _child_env() -> dict[str, str]:
    """This environment, with the folder holding `plugins` first on the child's path."""
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


async def rss_growth_in_child(path: Path, count: int, accounts: int) -> Memory:
    env = _child_env()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", __name__, str(path), str(count), str(accounts),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(CHILD_TIMEOUT):
            out, err = await child.communicate()
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"the memory child exited {child.returncode}: {' / '.join(tail)}")
    return Memory(**json.loads(out))


def main(argv: Sequence[str]) -> int:
    path, count, accounts = Path(argv[0]), int(argv[1]), int(argv[2])
    print(json.dumps(asdict(asyncio.run(rss_growth(path, count, accounts)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
