"""The daily integrity job: scheduled for real in its timezone, and run directly on a ledger."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.app import build_app
from bot.config import load_config
from bot.registry import default_registry
from bot.testing import RecordingSession
from plugins.gamification import PointsEngine
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.services.runtime import Services, build_services
from plugins.gamification.telegram.jobs import integrity_job, weekly_job
from tests.support.sqlite_store import sqlite_store


class Notes:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def __call__(self, chat_id: int, text: str) -> None:
        self.sent.append((chat_id, text))


async def test_job_is_scheduled_in_the_configured_timezone(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[storage]\ndatabase = "{tmp_path / "db.sqlite3"}"\n'
        '[scheduler]\ntimezone = "America/New_York"\nintegrity_cron = "30 4 * * *"\n'
    )
    registry = default_registry()
    config = load_config(config_file, plugin_models=registry.config_models(), environ={})
    app = await build_app(config, registry, session=RecordingSession())
    try:
        app.scheduler.start(paused=True)
        job = app.scheduler.get_job("gamification.integrity")
        assert job is not None
        assert job.max_instances == 1
        now = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # DST starts there on 8 March
        first = job.trigger.get_next_fire_time(None, now)
        assert first.tzinfo is not None
        local = first.astimezone(ZoneInfo("America/New_York"))
        assert (local.hour, local.minute) == (4, 30)
        following = job.trigger.get_next_fire_time(first, first)
        assert following.astimezone(ZoneInfo("America/New_York")).hour == 4
        elapsed = following.astimezone(UTC) - first.astimezone(UTC)
        assert elapsed.total_seconds() == 23 * 3600  # clocks went forward in between
    finally:
        app.scheduler.shutdown(wait=False)
        await app.close()


async def make_services(db_path: Path) -> Services:
    engine = await PointsEngine.open(db_path)
    return build_services(engine, GamificationConfig())


async def test_job_reports_clean_and_records_a_checkpoint(db_path: Path) -> None:
    services = await make_services(db_path)
    try:
        await services.engine.award(-5, 1, 10, key="a")
        notes = Notes()
        report = await integrity_job(services, notes, -99)
        assert report is not None
        assert report.ok
        assert notes.sent[0][0] == -99
        assert "clean" in notes.sent[0][1]
        assert report.digest in notes.sent[0][1]
        assert await integrity_job(services, notes, None) is not None
        assert len(notes.sent) == 1
    finally:
        await services.close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 2
    conn.close()


async def test_job_on_a_tampered_ledger_says_so(db_path: Path) -> None:
    services = await make_services(db_path)
    try:
        for i in range(3):
            await services.engine.award(-5, 1, 10, key=f"a{i}")
        conn = sqlite3.connect(db_path)
        conn.execute("DROP TRIGGER transactions_no_update")
        conn.execute("UPDATE transactions SET reason = 'edited' WHERE id = 2")
        conn.commit()
        conn.close()
        notes = Notes()
        report = await integrity_job(services, notes, -99)
        assert report is not None
        assert not report.ok
        text = notes.sent[0][1]
        assert "LEDGER CHECK FAILED" in text
        assert "account -5/1, transaction #2" in text
        rows = await sqlite_store(services.engine).fetchall(
            "SELECT payload FROM outbox WHERE type = 'integrity.failed'", ()
        )
        assert len(rows) == 1
        assert '"violations":1' in rows[0][0]
    finally:
        await services.close()


async def test_job_that_cannot_run_tells_the_admins(db_path: Path) -> None:
    services = await make_services(db_path)
    await services.close()
    await asyncio.to_thread(db_path.unlink)
    notes = Notes()
    assert await integrity_job(services, notes, -99) is None
    assert "could not run" in notes.sent[0][1]


async def test_weekly_post_is_a_view_over_the_ledger(db_path: Path) -> None:
    services = await make_services(db_path)
    try:
        await services.engine.award(-5, 1, 30, key="a")
        await services.engine.award(-5, 2, 20, key="b")
        notes = Notes()
        assert await weekly_job(services, notes, [-5, -6]) == 1
        chat_id, text = notes.sent[0]
        assert chat_id == -5
        assert "Top of the week" in text
        assert "1. user 1: 30" in text
        assert "2. user 2: 20" in text
        # Posting changed nothing: the balances and the ledger are as they were.
        assert (await services.engine.balance(-5, 1)).balance == 30
        assert await weekly_job(services, notes, [-5]) == 1
        assert notes.sent[1] == notes.sent[0]
    finally:
        await services.close()


async def test_weekly_job_is_scheduled_only_when_enabled(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[storage]\ndatabase = "{tmp_path / "db.sqlite3"}"\n'
        "[gamification.weekly]\nenabled = true\nchats = [-5]\n"
    )
    registry = default_registry()
    config = load_config(config_file, plugin_models=registry.config_models(), environ={})
    app = await build_app(config, registry, session=RecordingSession())
    try:
        assert app.scheduler.get_job("gamification.weekly") is not None
    finally:
        await app.close()
