"""Our engine under load: sequential latency, awards in flight, bursts of concurrent awards.

Each run opens a fresh ledger with PointsEngine.open (synchronous=FULL), warms it up with a
few awards, then times awards of AMOUNT spread over many accounts, each one awaited until
its batch is committed: an award's latency is the time until it is durable.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.baselines import NaiveEngine
from benchmarks.report import percentile
from benchmarks.rows import AMOUNT, REASON, TAG, account_of
from plugins.gamification.engine import PointsEngine

Award = Callable[[int], Awaitable[None]]
# (accounts, key prefix) -> an award of the index-th award
AwardFactory = Callable[[int, str], Award]
# Where a ledger lives: a SQLite file, or a PostgreSQL URL for our engine.
Where = Path | str
Opener = Callable[[Where], AbstractAsyncContextManager[AwardFactory]]

BURST = 50


@contextmanager
def frozen_inputs() -> Iterator[None]:
    """Keep what exists now (the engine or app, and any updates or events prepared for the
    run) out of the garbage collector's generations, as `run_bot` does after startup.

    Polling never holds thousands of updates at once; left in the generations, prepared
    inputs would make every full collection walk them, a cost of the harness, not the bot.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@asynccontextmanager
async def ours(where: Where) -> AsyncIterator[AwardFactory]:
    """The real engine, opened the way the plugin opens it, with its own defaults
    (synchronous is SQLite's; PostgreSQL always commits with synchronous_commit = on)."""
    engine = await PointsEngine.open(where, synchronous="FULL")

    def factory(accounts: int, prefix: str) -> Award:
        async def award(index: int) -> None:
            chat_id, user_id = account_of(index, accounts)
            await engine.award(
                chat_id, user_id, AMOUNT, key=f"{prefix}:{index}", reason=REASON, tag=TAG
            )

        return award

    try:
        yield factory
    finally:
        await engine.close()


@asynccontextmanager
async def naive(where: Where) -> AsyncIterator[AwardFactory]:
    engine = await NaiveEngine.open(Path(where))

    def factory(accounts: int, prefix: str) -> Award:
        async def award(index: int) -> None:
            chat_id, user_id = account_of(index, accounts)
            await engine.award(chat_id, user_id, f"{prefix}:{index}")

        return award

    try:
        yield factory
    finally:
        await engine.close()


@dataclass(frozen=True, slots=True)
class Flight:
    """`count` awards with `width` of them in flight: wall time and per-award latency."""

    width: int
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def average_ms(self) -> float:
        return self.seconds * 1000 / self.count


async def drive(award: Award, count: int, width: int, *, timed: bool = True) -> Flight:
    """Run awards 0..count-1 from `width` workers; each worker starts the next when its last
    one is durable, so exactly `width` are in flight until the tail."""
    latencies = [0.0] * count if timed else []
    indexes = iter(range(count))
    clock = time.perf_counter

    async def worker() -> None:
        for index in indexes:
            if timed:
                started = clock()
                await award(index)
                latencies[index] = clock() - started
            else:
                await award(index)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(min(width, count))))
    seconds = clock() - started
    p50 = percentile(latencies, 50) * 1000 if timed else 0.0
    p99 = percentile(latencies, 99) * 1000 if timed else 0.0
    return Flight(width, count, seconds, p50, p99)


def warmup(count: int) -> int:
    return min(1_000, max(count // 10, 10))


async def in_flight(opener: Opener, where: Where, count: int, width: int, accounts: int) -> Flight:
    """`count` awards, `width` in flight (width 1: one after the other), on a fresh ledger."""
    async with opener(where) as factory:
        await drive(factory(accounts, "warm"), warmup(count), width, timed=False)
        with frozen_inputs():
            return await drive(factory(accounts, "award"), count, width)


async def bursts(path: Path, repeats: int, accounts: int) -> list[float]:
    """Seconds from submitting BURST awards at once on an idle engine until all are durable."""
    times: list[float] = []
    async with ours(path) as factory:
        await drive(factory(accounts, "warm"), warmup(repeats * BURST), BURST, timed=False)
        award = factory(accounts, "burst")
        with frozen_inputs():
            for repeat in range(repeats):
                first = repeat * BURST
                started = time.perf_counter()
                await asyncio.gather(*(award(first + i) for i in range(BURST)))
                times.append(time.perf_counter() - started)
                # Idle again before the next burst: the writer has nothing queued.
                await asyncio.sleep(0.002)
    return times
