"""setup_gamification on a bot that is not ours: its own Dispatcher, routers and middleware.

The first test runs essentially the README's "add it to your bot" example, fed real
`Update`s through `Dispatcher.feed_update` with the recording session (no network).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.filters import Command
from aiogram.types import Message, TelegramObject, Update

from bot.testing import RecordingSession, UpdateFactory
from plugins.gamification import PointsEngine, event_key
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.setup import SettingsError, load_settings, setup_gamification

TOKEN = "42:TEST-token-for-a-foreign-bot"
CHAT = UpdateFactory.group(-1001, "Their group")
ANN = UpdateFactory.user(11, "Ann", "ann")
BEN = UpdateFactory.user(12, "Ben", "ben")
SENTENCES = (
    "Has anyone finished the second chapter already?",
    "I did, the ending surprised me a lot honestly.",
    "Let us meet on Friday to talk about it properly.",
)


def foreign_bot(session: RecordingSession) -> Bot:
    return Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


async def test_a_foreign_bot_keeps_its_handlers_scores_and_commits_at_shutdown(
    tmp_path: Path,
) -> None:
    database = tmp_path / "points.sqlite3"
    session = RecordingSession()
    bot = foreign_bot(session)
    # -- their bot, as it was before the plugin ------------------------------------------
    dispatcher = Dispatcher()
    updates_seen: list[int] = []

    async def count_updates(
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        updates_seen.append(event.update_id)
        return await handler(event, data)

    dispatcher.update.outer_middleware(count_updates)
    theirs = Router(name="theirs")

    @theirs.message(Command("ping"))
    async def ping(message: Message) -> None:
        await message.answer("pong")

    dispatcher.include_router(theirs)
    # -- the README's lines: add points to it --------------------------------------------
    points = await setup_gamification(dispatcher, bot, database=database, admin_ids=[ANN["id"]])
    # -- their catch-all, registered after ours ------------------------------------------
    later = Router(name="theirs.catch_all")
    caught: list[int] = []

    @later.message(F.text)
    async def catch_all(message: Message) -> None:
        caught.append(message.message_id)

    dispatcher.include_router(later)

    await dispatcher.emit_startup(bot=bot)
    factory = UpdateFactory()
    fed: list[Update] = [
        factory.message(CHAT, ANN, SENTENCES[0]),
        factory.message(CHAT, BEN, SENTENCES[1]),
        factory.message(CHAT, BEN, "ok"),  # too short to score, still theirs to see
        factory.message(CHAT, ANN, SENTENCES[2]),  # within the cooldown, still theirs
        factory.message(CHAT, ANN, "/ping"),
    ]
    for update in fed:
        await dispatcher.feed_update(bot, update)

    plain = [u.message.message_id for u in fed[:4] if u.message is not None]
    assert caught == plain, "their catch-all must see every ordinary message"
    assert updates_seen == [u.update_id for u in fed], "their middleware sees every update"
    assert session.texts(CHAT["id"]).count("pong") == 1
    assert (await points.engine.balance(CHAT["id"], ANN["id"])).balance > 0
    assert (await points.engine.balance(CHAT["id"], BEN["id"])).balance > 0
    before = (await points.engine.balance(CHAT["id"], ANN["id"])).balance
    assert dispatcher.workflow_data["gamification"] is points.services
    assert dispatcher.workflow_data["event_bus"] is points.bus
    # The plugin's own command is answered, by the plugin.
    await dispatcher.feed_update(bot, factory.message(CHAT, ANN, "/points"))
    caption = session.photos[-1].caption  # a rank card, the text reply as its caption
    assert caption is not None
    assert caption.startswith("Ann: ")

    # Queued, not yet committed: shutdown must commit them before the ledger closes.
    pending = [
        asyncio.create_task(
            points.engine.award(CHAT["id"], ANN["id"], 7, key=event_key(f"quiz-{n}"))
        )
        for n in range(20)
    ]
    await asyncio.sleep(0)
    await dispatcher.emit_shutdown(bot=bot)
    assert all(task.done() and task.exception() is None for task in pending)
    assert points.scheduler.running is False

    reopened = await PointsEngine.open(database)
    try:
        history = await reopened.history(CHAT["id"], ANN["id"], limit=100)
        assert len([tx for tx in history if tx.amount == 7]) == 20
        assert (await reopened.balance(CHAT["id"], ANN["id"])).balance >= before + 20 * 7
        assert (await reopened.check()).ok
    finally:
        await reopened.close()
    await points.close()  # idempotent after the shutdown hook
    await bot.session.close()


async def test_the_plugin_uses_the_programs_scheduler_and_bus(tmp_path: Path) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from plugins.gamification.bus.events import Event, InProcessBus

    scheduler = AsyncIOScheduler(timezone="Europe/Berlin")
    bus = InProcessBus()
    bot = foreign_bot(RecordingSession())
    dispatcher = Dispatcher()
    points = await setup_gamification(
        dispatcher,
        bot,
        database=tmp_path / "points.sqlite3",
        config={"integrity": {"cron": "15 2 * * *"}, "events": {"rules": {"game.won": 30}}},
        scheduler=scheduler,
        event_bus=bus,
    )
    job = scheduler.get_job("gamification.integrity")
    assert job is not None
    assert str(job.trigger.timezone) == "Europe/Berlin"
    assert "hour='2'" in str(job.trigger)
    assert "minute='15'" in str(job.trigger)
    assert points.bus is bus
    await bus.publish(Event.new("game.won", chat_id=CHAT["id"], user_id=BEN["id"]))
    await bus.drain()
    assert points.runtime.inbound is not None
    await points.runtime.inbound.drain()
    assert (await points.engine.balance(CHAT["id"], BEN["id"])).balance == 30
    await dispatcher.emit_shutdown(bot=bot)
    # Its jobs leave with it; the program's scheduler and bus are the program's to stop.
    assert scheduler.get_job("gamification.integrity") is None
    await bus.close()
    await bot.session.close()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"thanks": {"points": 0}}, "thanks.points: must be from 1 to 1,000,000"),
        ({"nope": {}}, "nope: Extra inputs are not permitted"),
        ({"integrity": {"cron": "every day"}}, "integrity.cron: not a crontab expression"),
    ],
)
def test_bad_settings_are_one_sentence_naming_the_key(
    config: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SettingsError, match=expected) as caught:
        load_settings(config)
    assert isinstance(caught.value, GamificationError)
    assert "\n" not in str(caught.value)


def test_settings_come_from_a_toml_file_or_its_gamification_table(tmp_path: Path) -> None:
    whole = tmp_path / "config.toml"
    whole.write_text("[bot]\nadmin_ids = [1]\n[gamification.thanks]\npoints = 9\n", "utf-8")
    assert load_settings(whole).thanks.points == 9
    own = tmp_path / "points.toml"
    own.write_text("[thanks]\npoints = 8\n", "utf-8")
    assert load_settings(own).thanks.points == 8
    broken = tmp_path / "broken.toml"
    broken.write_text("[thanks\n", "utf-8")
    with pytest.raises(SettingsError, match="cannot be read as TOML"):
        load_settings(broken)


async def test_a_ledger_that_cannot_open_leaves_the_dispatcher_untouched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database" * 200)
    dispatcher = Dispatcher()
    bot = foreign_bot(RecordingSession())
    caplog.set_level(logging.ERROR)
    with pytest.raises(GamificationError):
        await setup_gamification(dispatcher, bot, database=junk)
    assert dispatcher.sub_routers == []
    assert "gamification" not in dispatcher.workflow_data
    await bot.session.close()
