"""In-process counters for /gstats and monitoring: bounded, cheap, never persisted."""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `samples` (0.0 when there are none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    # Nearest rank: the smallest value with at least `fraction` of the samples at or below.
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


@dataclass(slots=True)
class Stats:
    awards: int = 0
    points: int = 0
    duplicates: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    messages_seen: Counter[int] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def record_award(self, amount: int, latency_ms: float, *, duplicate: bool) -> None:
        self.latencies_ms.append(latency_ms)
        if duplicate:
            self.duplicates += 1
        else:
            self.awards += 1
            self.points += amount

    def latency(self, fraction: float) -> float:
        return percentile(list(self.latencies_ms), fraction)
