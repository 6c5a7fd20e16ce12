"""A lock held past the busy timeout, or a full disk, delays points and drops none.

The whole bot runs in this process: the real Dispatcher and plugin fed by the real Poller
from the local fake Bot API (which, like Telegram, forgets an update once a later offset
confirmed it). While the fault lasts longer than `[storage] retry_seconds`, chat messages,
a thanks, an admin command and bus events arrive: the updates must stay unconfirmed and be
fetched again, the events must wait in the retry queue, and the operator must get one
warning. When the fault ends, every one of them is in the ledger exactly once, and each
reply went out once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.utils.backoff import BackoffConfig

from bot.app import App, build_app
from bot.polling import Poller
from bot.registry import default_registry
from plugins.gamification.bus.events import Event
from plugins.gamification.domain.keys import admin_key, event_key, message_key, thanks_key
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.sqlite.integrity import run_check
from plugins.gamification.telegram.runtime import Runtime
from tests.reliability.conftest import Show
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.faulty import FaultyStore
from tests.support.sqlite_store import sqlite_store
from tests.support.telegram_harness import make_config

TOKEN = "123456:TEST-transient-faults"
CHAT_ID = -100_555
CHAT = {"id": CHAT_ID, "type": "supergroup", "title": "Faults"}
ALICE = {"id": 501, "is_bot": False, "first_name": "Alice", "username": "alice"}
MOD = {"id": 502, "is_bot": False, "first_name": "Mod"}
FAST = BackoffConfig(min_delay=0.05, max_delay=0.2, factor=1.5, jitter=0.01)
HEALTH_LOG = "plugins.gamification.storage.health"
DURING = 12  # chat messages sent while the fault lasts
EVENTS = 8


def body(message_id: int, user: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": CHAT,
        "from": user,
        "text": text,
        **extra,
    }
    if text.startswith("/"):
        message["entities"] = [
            {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
        ]
    return message


def person(n: int) -> dict[str, Any]:
    return {"id": 7_000 + n, "is_bot": False, "first_name": f"Person {n}"}


def rows_per_key(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT idem_key, COUNT(*) FROM transactions GROUP BY idem_key"))
    finally:
        conn.close()


async def until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Poll `condition` every 10 ms; the limit only turns a hang into a failure."""
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.01)


class ExclusiveLock:
    """Another connection holding the ledger with BEGIN EXCLUSIVE until released."""

    name = "lock"

    def __init__(self, app: App, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None

    def start(self) -> None:
        self.conn = sqlite3.connect(self.db, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


class FullDisk:
    """The writer's connection reports SQLITE_FULL at every COMMIT until stopped."""

    name = "disk full"

    def __init__(self, app: App, db: Path) -> None:
        store = sqlite_store(services_of(app).engine)
        # The app's own store, given the fault-injecting writer path of FaultyStore.
        store.__class__ = FaultyStore
        self.store: FaultyStore = store  # type: ignore[assignment]
        self.full = False

        def rule(_index: int, sql: str) -> BaseException | None:
            if self.full and sql.startswith("COMMIT"):
                return sqlite3.OperationalError("database or disk is full")
            return None

        self.store.rule = rule

    def start(self) -> None:
        self.full = True

    def stop(self) -> None:
        self.full = False


def services_of(app: App) -> Services:
    services = app.dispatcher.workflow_data["gamification"]
    assert isinstance(services, Services)
    return services


@asynccontextmanager
async def running_bot(tmp_path: Path, api: FakeBotAPI) -> AsyncIterator[tuple[App, Poller]]:
    """The bot on a fresh ledger: a 0.1 s busy timeout and writes retried for 0.3 s."""
    db = tmp_path / "bot.sqlite3"
    config = make_config(
        db,
        gamification={
            "activity": {"points": {"text": 10}},
            # The messages of the fault are alike on purpose: not copies here.
            "anti_abuse": {"cooldown_seconds": 0, "copy_min_length": 4096},
            "events": {"rules": {"game.won": 20}},
        },
    )
    config = config.model_copy(
        update={
            "storage": config.storage.model_copy(
                update={"busy_timeout_seconds": 0.1, "retry_seconds": 0.3}
            )
        }
    )
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url, is_local=True))
    app = await build_app(config, default_registry(), session=session, token=TOKEN)
    poller = Poller(app.dispatcher, app.bot, timeout=1, backoff=FAST)
    running = asyncio.create_task(poller.run())
    try:
        yield app, poller
    finally:
        poller.stop()
        try:
            await asyncio.wait_for(running, 60)
        finally:
            await app.close()


@pytest.mark.parametrize("fault", [ExclusiveLock, FullDisk], ids=["lock", "disk_full"])
async def test_a_fault_longer_than_the_retries_delays_points_and_drops_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, show: Show, fault: Any
) -> None:
    api = FakeBotAPI(admins={CHAT_ID: {MOD["id"]}})
    await api.start()
    db = tmp_path / "bot.sqlite3"
    try:
        async with running_bot(tmp_path, api) as (app, poller):
            services = services_of(app)
            runtime = app.dispatcher.workflow_data["gamification_runtime"]
            assert isinstance(runtime, Runtime)
            bus, inbound = runtime.bus, runtime.inbound
            assert bus is not None
            assert inbound is not None
            trouble = fault(app, db)

            api.push("message", body(1, ALICE, "Good morning everyone, how are you all?"))
            await until(lambda: message_key(CHAT_ID, 1) in rows_per_key(db), "the first award")
            await until(lambda: api.confirmed() == 2, "the first update confirmed")

            with caplog.at_level(logging.INFO):
                trouble.start()
                for n in range(DURING):
                    text = f"Message number {n} from a person who is new to this chat"
                    api.push("message", body(10 + n, person(n), text))
                thanked = body(1, ALICE, "Good morning everyone, how are you all?")
                api.push("message", body(30, person(0), "thanks", reply_to_message=thanked))
                api.push("message", body(31, MOD, "/award @alice 40 welcome gift"))
                events = [
                    Event.new("game.won", chat_id=CHAT_ID, user_id=8_000 + i)
                    for i in range(EVENTS)
                ]
                for event in events:
                    await bus.publish(event)
                first_held = api.confirmed()
                # Past the retries: the updates are fetched again, the events parked.
                await until(
                    lambda: all(api.served[i] >= 3 for i in range(first_held, first_held + 14)),
                    "every update of the fault delivered again twice",
                )
                await until(lambda: inbound.parked == EVENTS, "the events parked")
                assert services.engine.store.health.unavailable
                assert api.confirmed() == first_held, "an update was confirmed unscored"
                keys = rows_per_key(db)
                assert not any(k.startswith(("evt:", "thx:", "adm:")) for k in keys)
                assert [k for k in keys if k.startswith("msg:")] == [message_key(CHAT_ID, 1)]
                assert not api.sent(), "a reply went out for nothing recorded"

                trouble.stop()
                expected = (
                    [message_key(CHAT_ID, 10 + n) for n in range(DURING)]
                    + [thanks_key(CHAT_ID, 30), admin_key(CHAT_ID, 31)]
                    + [event_key(e.id) for e in events]
                )
                await until(lambda: set(expected) <= set(rows_per_key(db)), "everything recorded")
                await until(lambda: api.confirmed() == first_held + 14, "all confirmed")
                await inbound.drain()
                await asyncio.sleep(0.3)  # a stray second write would land in this time
            assert poller.redeliveries >= 14
        counts = rows_per_key(db)
        assert all(counts[key] == 1 for key in expected), {k: counts.get(k) for k in expected}
        assert counts[message_key(CHAT_ID, 1)] == 1
        assert run_check(db).ok
        replies = [m["text"] for m in api.sent()]
        assert sum("thanks from" in r for r in replies) == 1, replies
        assert sum("Alice +40" in r for r in replies) == 1, replies
        assert len(replies) == 2, replies

        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.name for r in warnings] == [HEALTH_LOG], [r.getMessage() for r in warnings]
        assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"
        ended = [r for r in caplog.records if "writable again" in r.getMessage()]
        assert len(ended) == 1
        health = services.engine.store.health
        assert (health.outages, health.unavailable) == (1, False)
        assert health.handed_back >= 14 + EVENTS
        assert inbound.counts["awarded"] == EVENTS
        assert inbound.counts["refused"] == 0
    finally:
        await api.stop()
    again = sum(count - 1 for count in api.served.values())
    show(
        f"{trouble.name} past the retries: {DURING} messages, a thanks, an /award and"
        f" {EVENTS} bus events arrived; {again} deliveries of held-back updates, events"
        f" parked, {health.retries} retries, {health.handed_back} hand-backs; one warning"
        f" [{warnings[0].getMessage()[:60]}...]; after it ended each is in the ledger once"
        " and each reply went out once"
    )
