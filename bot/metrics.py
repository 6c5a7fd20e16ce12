"""The optional Prometheus endpoint: one registry per app, served on `[metrics] listen`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from bot.config import MetricsSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MetricsServer:
    server: WSGIServer
    thread: Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, settings: MetricsSettings) -> MetricsServer | None:
    """Start serving `registry` when configured; collectors run only when scraped."""
    if not settings.listen:
        return None
    host, port = settings.address()
    server, thread = start_http_server(port, addr=host, registry=registry)
    metrics = MetricsServer(server, thread)
    log.info("Serving metrics at %s", metrics.url)
    return metrics
