"""Figures: one read of everything /gstats and the Prometheus collector report.

Both phrase the same snapshot, so a figure cannot mean one thing in the chat and another
on the dashboard.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugins.gamification.services.runtime import Services
    from plugins.gamification.storage.integrity import IntegrityReport

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class RelayFigures:
    delivered: int
    lag: int
    failures: int
    breaker_state: str
    last_error: str | None
    # None without inbound bus events wired.
    inbound: Counter[str] | None
    parked: int


@dataclass(frozen=True, slots=True)
class Figures:
    awards: int
    points: int
    duplicates: int
    refusals: Counter[str]
    # Award latency in ms by quantile (QUANTILES).
    latency_ms: dict[float, float]
    writer_operations: int
    writer_batches: int
    writer_failed_batches: int
    writer_largest_batch: int
    queue_depth: int
    storage_unavailable: bool
    storage_outages: int
    storage_retries: int
    storage_handed_back: int
    relay: RelayFigures | None
    last_report: IntegrityReport | None
    # The anti-abuse state: the configured backend, where it lives now (memory while Redis
    # is away), times Redis went away, judgements repeated after another instance's write.
    anti_abuse_backend: str = "memory"
    anti_abuse_active: str = "memory"
    anti_abuse_fallbacks: int = 0
    anti_abuse_conflicts: int = 0


def read_figures(services: Services, relay: RelayFigures | None = None) -> Figures:
    """Everything at once, from in-process counters only (nothing is read from the disk).

    `relay` is the bus side's figures (Runtime.figures reads them): the services know no bus.
    """
    stats, store, gate = services.stats, services.engine.store, services.gate_state
    writer, health = store.stats, store.health
    return Figures(
        awards=stats.awards,
        points=stats.points,
        duplicates=stats.duplicates,
        refusals=Counter(stats.refusals),
        latency_ms={q: stats.latency(q) for q in QUANTILES},
        writer_operations=writer.operations,
        writer_batches=writer.batches,
        writer_failed_batches=writer.failed_batches,
        writer_largest_batch=writer.largest_batch,
        queue_depth=store.queue_depth,
        storage_unavailable=health.unavailable,
        storage_outages=health.outages,
        storage_retries=health.retries,
        storage_handed_back=health.handed_back,
        relay=relay,
        last_report=services.reports.latest,
        anti_abuse_backend=gate.backend,
        anti_abuse_active=gate.active,
        anti_abuse_fallbacks=gate.fallbacks,
        anti_abuse_conflicts=gate.conflicts,
    )
