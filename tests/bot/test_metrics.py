"""The Prometheus endpoint: off by default, and when on it serves the points counters."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from bot.app import build_app
from bot.config import load_config
from bot.registry import default_registry
from bot.testing import RecordingSession, UpdateFactory


async def scrape(url: str) -> str:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
            return body.decode()

    return await asyncio.to_thread(get)


async def test_metrics_endpoint_serves_the_counters(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[storage]\ndatabase = "{tmp_path / "db.sqlite3"}"\n[metrics]\nlisten = "127.0.0.1:0"\n'
    )
    registry = default_registry()
    config = load_config(config_file, plugin_models=registry.config_models(), environ={})
    app = await build_app(config, registry, session=RecordingSession())
    try:
        assert app.metrics_server is not None
        factory = UpdateFactory()
        chat, alice = factory.group(-5, "g"), factory.user(1, "Alice")
        texts = (
            "hello there all",
            "something else entirely, friends",
            "the weather is lovely today",
            "who wants to play chess tonight?",
        )
        for text in texts:  # the token bucket lets three through, then refuses one
            await app.dispatcher.feed_update(app.bot, factory.message(chat, alice, text))
        body = await scrape(app.metrics_server.url)
    finally:
        await app.close()
    assert "gamification_awards_total 3.0" in body
    assert 'gamification_refusals_total{reason="cooldown"} 1.0' in body
    assert 'gamification_award_latency_ms{quantile="0.99"}' in body
    assert "gamification_writer_batches_total" in body
    assert "gamification_outbox_lag" in body
    assert "gamification_storage_unavailable 0.0" in body
    assert "gamification_storage_retries_total 0.0" in body
    assert "gamification_storage_handed_back_total 0.0" in body
    assert "gamification_inbound_parked 0.0" in body


async def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    registry = default_registry()
    config = load_config(None, plugin_models=registry.config_models(), environ={})
    storage = config.storage.model_copy(update={"database": tmp_path / "db.sqlite3"})
    config = config.model_copy(update={"storage": storage})
    app = await build_app(config, registry, session=RecordingSession())
    try:
        assert app.metrics_server is None
    finally:
        await app.close()
