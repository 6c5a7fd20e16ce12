"""Prometheus metrics for the points service, read from its counters only when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plugins.gamification.services import GamificationServices

QUANTILES = (0.5, 0.95, 0.99)


class PointsCollector(Collector):
    """Nothing on the hot path: every figure is computed from existing counters at scrape."""

    def __init__(self, services: GamificationServices) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        s = self.services
        stats, store = s.stats, s.store
        yield CounterMetricFamily(
            "gamification_awards", "Points awards committed.", value=stats.awards
        )
        yield CounterMetricFamily(
            "gamification_points", "Points awarded by scored messages and thanks.",
            value=stats.points,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_duplicates", "Redelivered awards ignored.", value=stats.duplicates
        )
        refusals = CounterMetricFamily(
            "gamification_refusals", "Messages and thanks refused, by reason.", labels=["reason"]
        )
        for reason, count in stats.refusals.items():
            refusals.add_metric([str(reason)], count)
        yield refusals
        latency = GaugeMetricFamily(
            "gamification_award_latency_ms",
            "Award latency over the last 10,000 awards.",
            labels=["quantile"],
        )
        for quantile in QUANTILES:
            latency.add_metric([str(quantile)], stats.latency(quantile))
        yield latency
        yield CounterMetricFamily(
            "gamification_writer_operations", "Operations committed by the writer.",
            value=store.stats.operations,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_writer_batches", "Transactions committed by the writer.",
            value=store.stats.batches,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_writer_failed_batches", "Batches that failed as a whole.",
            value=store.stats.failed_batches,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_writer_largest_batch", "Largest batch committed.",
            value=store.stats.largest_batch,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "gamification_writer_queue_depth", "Operations waiting for the writer.",
            value=store.queue_depth,
        )  # fmt: skip
        yield from self._storage()
        yield from self._bus()
        yield from self._integrity()

    def _storage(self) -> Iterator[Metric]:
        health = self.services.store.health
        yield GaugeMetricFamily(
            "gamification_storage_unavailable",
            "1 while the ledger cannot be written (locked by another process, disk full).",
            value=1 if health.unavailable else 0,
        )
        yield CounterMetricFamily(
            "gamification_storage_outages", "Times the ledger became unwritable.",
            value=health.outages,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_storage_retries", "Waits of a write for another try.",
            value=health.retries,
        )  # fmt: skip
        yield CounterMetricFamily(
            "gamification_storage_handed_back",
            "Updates left unconfirmed and events parked after the retries ran out.",
            value=health.handed_back,
        )

    def _bus(self) -> Iterator[Metric]:
        relay = self.services.relay
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
        inbound = self.services.inbound
        if inbound is not None:
            events = CounterMetricFamily(
                "gamification_inbound_events", "Bus events received, by outcome.",
                labels=["outcome"],
            )  # fmt: skip
            for outcome, count in inbound.counts.items():
                events.add_metric([outcome], count)
            yield events
            yield GaugeMetricFamily(
                "gamification_inbound_parked", "Bus events waiting for the ledger.",
                value=inbound.parked,
            )  # fmt: skip

    def _integrity(self) -> Iterator[Metric]:
        report = self.services.last_report
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
