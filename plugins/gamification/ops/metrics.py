"""Prometheus metrics for the points service, read from its counters only when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plugins.gamification.services.figures import Figures
from plugins.gamification.telegram.runtime import Runtime


class PointsCollector(Collector):
    """Nothing on the hot path: every figure is read (read_figures, as /gstats) at scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        f = self.runtime.figures()
        yield CounterMetricFamily(
            "gamification_awards", "Points awards committed.", value=f.awards
        )
        yield CounterMetricFamily(
            "gamification_points", "Points awarded by scored messages and thanks.",
            value=f.points,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_duplicates", "Redelivered awards ignored.", value=f.duplicates
        )
        refusals = CounterMetricFamily(
            "gamification_refusals", "Messages and thanks refused, by reason.", labels=["reason"]
        )
        for reason, count in f.refusals.items():
            refusals.add_metric([str(reason)], count)
        yield refusals
        latency = GaugeMetricFamily(
            "gamification_award_latency_ms",
            "Award latency over the last 10,000 awards.",
            labels=["quantile"],
        )
        for quantile, value in f.latency_ms.items():
            latency.add_metric([str(quantile)], value)
        yield latency
        yield CounterMetricFamily(
            "gamification_writer_operations", "Operations committed by the writer.",
            value=f.writer_operations,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_writer_batches", "Transactions committed by the writer.",
            value=f.writer_batches,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_writer_failed_batches", "Batches that failed as a whole.",
            value=f.writer_failed_batches,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_writer_largest_batch", "Largest batch committed.",
            value=f.writer_largest_batch,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_writer_queue_depth", "Operations waiting for the writer.",
            value=f.queue_depth,
        )  # fmt: skip
        yield from self._storage(f)
        yield from self._anti_abuse(f)
        yield from self._bus(f)
        yield from self._integrity(f)

    @staticmethod
    def _storage(f: Figures) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "gamification_storage_unavailable",
            "1 while the ledger cannot be written (locked by another process, disk full).",
            value=1 if f.storage_unavailable else 0,
        )
        yield CounterMetricFamily(
            "gamification_storage_outages", "Times the ledger became unwritable.",
            value=f.storage_outages,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_storage_retries", "Waits of a write for another try.",
            value=f.storage_retries,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_storage_handed_back",
            "Updates left unconfirmed and events parked after the retries ran out.",
            value=f.storage_handed_back,
        )

    @staticmethod
    def _anti_abuse(f: Figures) -> Iterator[Metric]:
        backend = GaugeMetricFamily(
            "gamification_anti_abuse_backend",
            "1 for where the anti-abuse state lives now (memory while Redis is away).",
            labels=["backend"],
        )
        for name in ("memory", "redis"):
            backend.add_metric([name], 1 if f.anti_abuse_active == name else 0)
        yield backend
        yield CounterMetricFamily(
            "gamification_anti_abuse_fallback",
            "Times Redis went away and this instance's memory took over the anti-abuse state.",
            value=f.anti_abuse_fallbacks,
        )
        yield CounterMetricFamily(
            "gamification_anti_abuse_conflicts",
            "Judgements done again because another instance changed the same state first.",
            value=f.anti_abuse_conflicts,
        )

    @staticmethod
    def _bus(f: Figures) -> Iterator[Metric]:
        relay = f.relay
        if relay is None:
            return
        yield GaugeMetricFamily(
            "gamification_outbox_lag", "Committed events not yet published.", value=relay.lag
        )
        yield CounterMetricFamily(
            "gamification_outbox_delivered", "Outbox events published.", value=relay.delivered
        )
        yield CounterMetricFamily(
            "gamification_bus_publish_failures", "Failed publishes to the bus.",
            value=relay.failures,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_bus_breaker_open", "1 while the relay's circuit breaker is open.",
            value=1 if relay.breaker_state == "open" else 0,
        )  # fmt: skip
        if relay.inbound is not None:
            events = CounterMetricFamily(
                "gamification_inbound_events", "Bus events received, by outcome.",
                labels=["outcome"],
            )  # fmt: skip
            for outcome, count in relay.inbound.items():
                events.add_metric([outcome], count)
            yield events
            yield GaugeMetricFamily(
                "gamification_inbound_parked", "Bus events waiting for the ledger.",
                value=relay.parked,
            )  # fmt: skip

    @staticmethod
    def _integrity(f: Figures) -> Iterator[Metric]:
        report = f.last_report
        if report is None:
            return
        yield GaugeMetricFamily(
            "gamification_integrity_violations", "Violations found by the last check.",
            value=report.violation_count,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_integrity_transactions", "Transactions verified by the last check.",
            value=report.transactions,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_integrity_duration_seconds", "Duration of the last check.",
            value=report.duration_s,
        )  # fmt: skip
