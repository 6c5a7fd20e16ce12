"""The outbox relay's delivery rate: a pre-filled outbox drained onto an in-process bus."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.ledger import drive, ours
from plugins.gamification.bus.events import Event, InProcessBus
from plugins.gamification.bus.relay import OutboxRelay
from plugins.gamification.domain.clock import SystemClock
from plugins.gamification.engine import PointsEngine


@dataclass(frozen=True, slots=True)
class Outbound:
    pending: int
    delivered: int
    received: int
    dropped: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds


async def outbound(path: Path, awards: int, accounts: int) -> Outbound:
    """Fill the outbox with `awards` awards (no relay running), then time run_once() until
    the lag is zero and a counting subscriber has seen every event."""
    async with ours(path) as factory:
        await drive(factory(accounts, "fill"), awards, 1_000, timed=False)
    engine = await PointsEngine.open(path, synchronous="FULL")
    bus = InProcessBus()
    received = 0

    async def count(event: Event) -> None:
        nonlocal received
        received += 1

    subscription = bus.subscribe("*", count, name="bench.counter")
    relay = OutboxRelay(engine.store, bus, clock=SystemClock())
    try:
        pending = await engine.store.outbox_lag()
        started = time.perf_counter()
        delivered = 0
        while True:
            delivered += await relay.run_once()
            if relay.lag == 0 or relay.breaker_state != "closed":
                break
        await bus.drain()
        seconds = time.perf_counter() - started
    finally:
        await bus.close()
        await engine.close()
    return Outbound(int(pending), delivered, received, subscription.dropped, seconds)
