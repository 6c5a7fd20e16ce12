"""Scheduled runs across instances: each slot of the daily check and of each chat's weekly
post runs once among all the processes sharing a ledger, on both backends.

"Instances" here are engines opened separately on the same ledger (what two processes hold),
each with its own clock, skewed against the other; the slot comes from the job's real cron
trigger. The last tests wire two whole bots and let their real schedulers fire the jobs.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.triggers.cron import CronTrigger

from bot.app import App, build_app
from bot.config import load_config
from bot.registry import default_registry
from bot.testing import RecordingSession
from plugins.gamification.domain.clock import FakeClock, format_utc
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.services.runtime import Services, build_services
from plugins.gamification.storage.sqlite import schema as sqlite_schema
from plugins.gamification.storage.sqlite.writer import BatchWriter
from plugins.gamification.telegram.jobs import integrity_job, weekly_job
from plugins.gamification.telegram.slots import last_fire_time, slot_of
from tests.support.backends import LedgerBackend, make_backend
from tests.support.postings import CHAT, effects, post

BERLIN = ZoneInfo("Europe/Berlin")
DAILY = CronTrigger.from_crontab("0 3 * * *", timezone=BERLIN)
WEEKLY = CronTrigger.from_crontab("0 18 * * sun", timezone="UTC")
# Sunday 29 November 2026, 18:00 UTC: the weekly post's slot, after that day's check.
SUNDAY = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
SKEW = timedelta(seconds=30)
ADMINS = -99
CHATS = (-5, -6)


class Notes:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def __call__(self, chat_id: int, text: str) -> None:
        self.sent.append((chat_id, text))

    def to(self, chat_id: int) -> list[str]:
        return [text for chat, text in self.sent if chat == chat_id]


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerBackend]:
    """Each backend (the plugin's tests default to SQLite alone): a claim is the ledger's.
    Without a PostgreSQL server its runs skip with the reason (fail where it is required)."""
    backend = make_backend(request.param, tmp_path)
    yield backend
    backend.drop()


# -- the slot -------------------------------------------------------------------------------


def test_the_slot_is_the_latest_fire_time_whatever_the_skew_or_delay() -> None:
    fire = datetime(2026, 11, 29, 3, 0, tzinfo=BERLIN)
    slot = format_utc(fire)
    # On time, 30 s and 20 min late (another clock, a misfire within the grace): one slot.
    for late in (timedelta(0), timedelta(milliseconds=300), SKEW, timedelta(minutes=20)):
        assert slot_of(DAILY, fire + late) == slot
    assert slot_of(DAILY, fire - timedelta(seconds=1)) == format_utc(fire - timedelta(days=1))
    assert slot_of(DAILY, fire + timedelta(days=1)) != slot
    # The weekly post: any moment of the week after Sunday 18:00 names that Sunday.
    assert slot_of(WEEKLY, SUNDAY + timedelta(days=6, hours=23)) == format_utc(SUNDAY)
    assert slot_of(WEEKLY, SUNDAY + timedelta(days=7)) == format_utc(SUNDAY + timedelta(7))
    # Frequent and rare crons are found in a few steps either way.
    every_minute = CronTrigger.from_crontab("* * * * *", timezone="UTC")
    assert last_fire_time(every_minute, SUNDAY + timedelta(seconds=59)) == SUNDAY
    yearly = CronTrigger.from_crontab("0 0 1 1 *", timezone="UTC")
    assert last_fire_time(yearly, SUNDAY) == datetime(2026, 1, 1, tzinfo=UTC)


# -- the claim on each backend -----------------------------------------------------------------


async def test_a_claim_is_first_wins_across_engines(ledger_backend: LedgerBackend) -> None:
    clock = FakeClock(SUNDAY)
    first = await ledger_backend.open_engine(clock=clock)
    second = await ledger_backend.open_engine(clock=clock)
    try:
        won = await asyncio.gather(
            first.claim_job_run("integrity", "s1", "a"),
            second.claim_job_run("integrity", "s1", "b"),
        )
        assert sorted(won) == [False, True]
        winner = "a" if won[0] else "b"
        # The winner's retry (same claimant) wins again; anyone else still loses.
        assert await second.claim_job_run("integrity", "s1", winner)
        assert not await first.claim_job_run("integrity", "s1", "c")
        # Another slot, or another job in the same slot, is a claim of its own.
        assert await second.claim_job_run("integrity", "s2", "b")
        assert await first.claim_job_run("weekly -5", "s1", "a")
        # Claims are kept 60 days, then forgotten with a later claim.
        assert ledger_backend.read("SELECT COUNT(*) FROM job_runs")[0][0] == 3
        clock.advance(timedelta(days=61))
        assert await first.claim_job_run("integrity", "s3", "a")
        assert ledger_backend.read("SELECT job, slot FROM job_runs") == [("integrity", "s3")]
        # The claims are beside the ledger: its check is untouched by them.
        assert ledger_backend.check().ok
    finally:
        await first.close()
        await second.close()


@pytest.fixture
async def instances(ledger_backend: LedgerBackend) -> AsyncIterator[tuple[Services, Services]]:
    """Two instances on one ledger; the second's clock runs 30 s ahead of the first's."""
    opened: list[Services] = []
    for skew in (timedelta(0), SKEW):
        engine = await ledger_backend.open_engine(clock=FakeClock(SUNDAY + skew))
        opened.append(build_services(engine, GamificationConfig()))
    try:
        yield opened[0], opened[1]
    finally:
        for services in opened:
            await services.close()


def advance(instances: tuple[Services, Services], delta: timedelta) -> None:
    for services in instances:
        clock = services.clock
        assert isinstance(clock, FakeClock)
        clock.advance(delta)


async def test_two_instances_post_one_integrity_report_per_slot(
    instances: tuple[Services, Services],
    ledger_backend: LedgerBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notes = Notes()
    caplog.set_level(logging.INFO, logger="plugins.gamification.telegram.jobs")
    reports = await asyncio.gather(
        *(integrity_job(services, notes, ADMINS, DAILY) for services in instances)
    )
    assert len([r for r in reports if r is not None]) == 1
    assert len(notes.to(ADMINS)) == 1
    assert "clean" in notes.to(ADMINS)[0]
    slot = format_utc(datetime(2026, 11, 29, 3, 0, tzinfo=BERLIN))
    lost = [r.getMessage() for r in caplog.records if "another instance" in r.getMessage()]
    assert lost == [f"scheduled run 'integrity' already run by another instance for slot {slot}"]
    # Run again in the same slot (a misfire, a restart): nothing more.
    assert await integrity_job(instances[1], notes, ADMINS, DAILY) is None
    # The next day's slot runs again, once.
    advance(instances, timedelta(days=1))
    await asyncio.gather(*(integrity_job(s, notes, ADMINS, DAILY) for s in instances))
    assert len(notes.to(ADMINS)) == 2
    assert ledger_backend.read("SELECT COUNT(*) FROM checkpoints")[0][0] == 2


async def test_two_instances_post_the_weekly_board_once_per_chat(
    instances: tuple[Services, Services],
) -> None:
    engine = instances[0].engine
    for chat in CHATS:
        await engine.award(chat, 1, 30, key=f"a{chat}")
    notes = Notes()
    posted = await asyncio.gather(
        *(weekly_job(services, notes, CHATS, WEEKLY) for services in instances)
    )
    assert sum(posted) == 2
    assert [len(notes.to(chat)) for chat in CHATS] == [1, 1]
    assert await weekly_job(instances[0], notes, CHATS, WEEKLY) == 0
    # Next Sunday: posted again, once per chat.
    advance(instances, timedelta(days=7))
    for chat in CHATS:
        await engine.award(chat, 2, 10, key=f"b{chat}")
    await asyncio.gather(*(weekly_job(s, notes, CHATS, WEEKLY) for s in instances))
    assert [len(notes.to(chat)) for chat in CHATS] == [2, 2]


async def test_a_claim_that_cannot_be_made_is_the_jobs_failure(
    instances: tuple[Services, Services], caplog: pytest.LogCaptureFixture
) -> None:
    services = instances[0]
    await services.engine.close()
    notes = Notes()
    assert await integrity_job(services, notes, ADMINS, DAILY) is None
    assert len(notes.sent) == 1
    assert "could not run" in notes.sent[0][1]
    assert await weekly_job(services, notes, CHATS, WEEKLY) == 0
    assert len(notes.sent) == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3  # the check, then each chat's post
    assert all(r.exc_info is None for r in errors)


# -- a ledger of the previous schema version ----------------------------------------------


async def test_a_ledger_of_the_previous_version_gains_the_claims(
    ledger_backend: LedgerBackend,
) -> None:
    if ledger_backend.name == "sqlite":
        await asyncio.to_thread(build_sqlite_v6, Path(ledger_backend.location))
    else:
        await build_postgres_v1(str(ledger_backend.location))
    before = ledger_backend.schema_version()
    assert before == (6 if ledger_backend.name == "sqlite" else 1)
    engine = await ledger_backend.open_engine(clock=FakeClock(SUNDAY))
    try:
        assert ledger_backend.schema_version() == ledger_backend.latest_version
        assert (await engine.balance(CHAT, 1)).balance == 30
        assert await engine.claim_job_run("integrity", "s1", "a")
        assert not await engine.claim_job_run("integrity", "s1", "b")
        # The later migrations came along too: the chat pages' access table.
        assert not await engine.store.web_public(CHAT)
    finally:
        await engine.close()
    assert ledger_backend.check().ok


def build_sqlite_v6(path: Path) -> None:
    """A ledger as version 6 of this program left it, with an award in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for script in sqlite_schema.MIGRATIONS[:6]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 6")
        BatchWriter(lambda: SUNDAY, effects()).apply(conn, [post(1, 30, "m1")])
    finally:
        conn.close()


async def build_postgres_v1(dsn: str) -> None:
    """A PostgreSQL ledger at its version 1, with an award in it (over the test's database,
    which comes migrated: emptied first)."""
    from plugins.gamification.storage.postgres import schema as pg_schema
    from plugins.gamification.storage.postgres.connect import connect
    from plugins.gamification.storage.postgres.writer import PgBatchWriter

    conn = await connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.execute(pg_schema.MIGRATIONS[0])
        await conn.execute("CREATE TABLE ledger_schema (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO ledger_schema (version) VALUES (1)")
        await PgBatchWriter(lambda: SUNDAY, effects()).apply(conn, [post(1, 30, "m1")])
    finally:
        await conn.close()


# -- the real scheduler wiring --------------------------------------------------------------


async def build_bot(backend: LedgerBackend, folder: Path, clock: FakeClock) -> App:
    key = "database" if backend.name == "sqlite" else "url"
    config_file = folder / "config.toml"
    config_file.write_text(
        f'[bot]\nadmin_chat_id = {ADMINS}\n[storage]\n{key} = "{backend.location}"\n'
        '[scheduler]\ntimezone = "UTC"\n'
        '[gamification.integrity]\ncron = "0 3 * * *"\ntimezone = "Europe/Berlin"\n'
        f'[gamification.weekly]\nenabled = true\nchats = {list(CHATS)}\ncron = "0 18 * * sun"\n'
    )
    registry = default_registry()
    config = load_config(config_file, plugin_models=registry.config_models(), environ={})
    return await build_app(config, registry, session=RecordingSession(), clock=clock)


async def fire_now(app: App, job_ids: tuple[str, ...]) -> None:
    """Start the bot's scheduler and have it run the jobs now; wait until they ran."""
    loop = asyncio.get_running_loop()
    done: asyncio.Queue[JobExecutionEvent] = asyncio.Queue()
    app.scheduler.add_listener(
        lambda event: loop.call_soon_threadsafe(done.put_nowait, event),
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    )
    app.scheduler.start()
    for job_id in job_ids:
        app.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
    for _ in job_ids:
        event = await asyncio.wait_for(done.get(), timeout=10)
        assert event.exception is None, event.traceback


async def test_two_bots_schedulers_post_once_per_slot(
    ledger_backend: LedgerBackend, tmp_path: Path
) -> None:
    engine = await ledger_backend.open_engine(clock=FakeClock(SUNDAY))
    try:
        for chat in CHATS:
            await engine.award(chat, 1, 30, key=f"a{chat}")
    finally:
        await engine.close()
    apps: list[App] = []
    try:
        for index, skew in enumerate((timedelta(seconds=1), SKEW)):
            folder = tmp_path / f"bot{index}"
            folder.mkdir()
            apps.append(await build_bot(ledger_backend, folder, FakeClock(SUNDAY + skew)))
        jobs = ("gamification.integrity", "gamification.weekly")
        await asyncio.gather(*(fire_now(app, jobs) for app in apps))
        sessions = [app.bot.session for app in apps]
        assert all(isinstance(session, RecordingSession) for session in sessions)
        texts = [t for s in sessions if isinstance(s, RecordingSession) for t in s.texts(ADMINS)]
        assert len(texts) == 1
        assert "Ledger check" in texts[0]
        for chat in CHATS:
            posts = [t for s in sessions if isinstance(s, RecordingSession) for t in s.texts(chat)]
            assert len(posts) == 1
            assert "Top of the week" in posts[0]
    finally:
        for app in apps:
            if app.scheduler.running:
                app.scheduler.shutdown(wait=False)
            await app.close()
