"""Languages through the real Dispatcher: /language per chat, the person's Telegram language,
the default, plurals, menus, announcements and reports in the chat's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import DeleteMyCommands, SetMyCommands
from aiogram.types import BotCommandScopeChat, BotCommandScopeChatAdministrators

from bot.config import ConfigError, load_config
from bot.registry import default_registry
from plugins.gamification.bus.events import InProcessBus
from plugins.gamification.telegram.i18n import Speaker
from plugins.gamification.telegram.jobs import integrity_job, weekly_job
from tests.gamification.conftest import MakeHarness
from tests.support.chat import ALICE, BOB, CAROL, CHAT, CHAT_ID, DAVE, FIXED, MOD, SENTENCES
from tests.support.telegram_harness import TelegramHarness

NBSP = "\xa0"


@pytest.fixture
async def h(make_harness: MakeHarness) -> TelegramHarness:
    return await make_harness(admins={CHAT_ID: {9}}, gamification=FIXED)


async def reply(h: TelegramHarness, user: dict[str, Any], text: str) -> str:
    before = len(h.texts())
    await h.say(CHAT, user, text)
    new = h.texts()[before:]
    assert len(new) == 1, new
    return new[0]


async def meet(h: TelegramHarness, *users: dict[str, Any]) -> None:
    """Each writes one scoring message (10 points), so the bot knows their @username."""
    for i, user in enumerate(users):
        await h.say(CHAT, user, SENTENCES[i % len(SENTENCES)])
    h.clock.advance(61)


def spanish(user: dict[str, Any]) -> dict[str, Any]:
    return {**user, "language_code": "es-ES"}


async def test_a_russian_chat_gets_russian_replies_plurals_and_help(h: TelegramHarness) -> None:
    assert await reply(h, MOD, "/language ru") == "Теперь я говорю здесь на языке: Русский."
    await meet(h, ALICE, BOB, CAROL, DAVE)
    # Balances of 1, 2, 5 and 21 points: the three Russian plural forms.
    await reply(h, MOD, "/deduct @alice 9")
    await reply(h, MOD, "/deduct @bob 8")
    await reply(h, MOD, "/deduct @carol 5")
    assert await reply(h, MOD, "/award @dave 11") == "Dave +11 (#8). Баланс: 21."
    points = {u["first_name"]: await reply(h, u, "/points") for u in (ALICE, BOB, CAROL, DAVE)}
    assert points["Alice"].startswith("Alice: <b>1</b> балл (место №4), всего заработано 10.")
    assert points["Bob"].startswith("Bob: <b>2</b> балла (")
    assert points["Carol"].startswith("Carol: <b>5</b> баллов (")
    assert points["Dave"] == (
        "Dave: <b>21</b> балл (место №1), всего заработано 21.\n"
        "Уровень 0 (до уровня 1 осталось 79), серия: 1 день (лучшая: 1)."
    )
    # Refusals, in Russian too, whoever asks.
    assert await reply(h, ALICE, "/award @bob 5") == (
        "Команду /award могут использовать только администраторы этого чата."
    )
    assert await reply(h, MOD, "/award @bob lots") == "'lots' — это не целое число баллов."
    assert await reply(h, MOD, "/revert 999") == "Здесь нет транзакции #999."
    assert await reply(h, ALICE, "/top someday") == (
        "Используйте /top day, /top week, /top month или /top all."
    )
    assert await reply(h, MOD, "/deduct @alice 110 spam") == (
        "Не списано: у Alice на балансе 1, и после списания 110 останется -109 — ниже нуля."
        " Чтобы списать всё равно: /deduct @alice 110 spam --force"
    )
    assert await reply(h, MOD, "/deduct @alice 110 spam --force") == (
        "Alice -110 (#9): spam. Баланс: -109, ниже нуля."
    )
    assert await reply(h, MOD, "/web") == (
        "У этого бота нет веб-страниц (их может включить его оператор в разделе [web])."
    )
    help_text = await reply(h, MOD, "/help")
    assert help_text.startswith("<b>Как начисляются баллы</b>\n")
    assert "<b>Администраторам</b>" in help_text
    assert await reply(h, ALICE, "/top all") == (
        "<b>Лучшие за всё время</b>\n1. Dave: 21\n2. Carol: 5\n3. Bob: 2\n4. Alice: -109"
    )
    h.assert_sent_html_valid()


async def test_numbers_are_written_the_chat_language_way(h: TelegramHarness) -> None:
    await meet(h, ALICE)
    await reply(h, MOD, "/award @alice 1224")
    assert (await reply(h, ALICE, "/points")).startswith("Alice: <b>1,234</b> points")
    await reply(h, MOD, "/language ru")
    assert (await reply(h, ALICE, "/points")).startswith(f"Alice: <b>1{NBSP}234</b> балла")
    await reply(h, MOD, "/language es")
    assert (await reply(h, ALICE, "/points")).startswith("Alice: <b>1.234</b> puntos")


async def test_the_person_s_telegram_language_serves_where_the_chat_chose_none(
    h: TelegramHarness,
) -> None:
    await meet(h, ALICE)
    await reply(h, MOD, "/award @alice 1")
    assert await reply(h, spanish(ALICE), "/points") == (
        "Alice: <b>11</b> puntos (puesto n.º 1), 11 ganados en total.\n"
        "Nivel 0 (faltan 89 para el nivel 1), racha de 1 día (mejor: 1)."
    )
    # The default stays English; an unsupported language falls back to it.
    assert (await reply(h, ALICE, "/points")).startswith("Alice: <b>11</b> points (rank #1)")
    klingon = {**ALICE, "language_code": "tlh"}
    assert (await reply(h, klingon, "/points")).startswith("Alice: <b>11</b> points")
    # A chat's choice wins over the person's own.
    await reply(h, MOD, "/language ru")
    assert (await reply(h, spanish(ALICE), "/points")).startswith("Alice: <b>11</b> баллов")
    # Thanks replies too, in the chat's language.
    alice_says = await h.say(CHAT, ALICE, SENTENCES[2])
    h.clock.advance(61)
    await h.say(CHAT, spanish(BOB), "спасибо", reply_to=alice_says.message.message_id)
    assert "(благодарность от Bob), теперь" in h.last_text(CHAT_ID)


async def test_language_is_for_chat_admins_and_shows_the_choice(h: TelegramHarness) -> None:
    assert await reply(h, ALICE, "/language ru") == "Only admins of this chat can use /language."
    assert await h.services.languages.of(CHAT_ID) is None
    assert h.rows("SELECT COUNT(*) FROM chat_settings") == [(0,)]
    assert await reply(h, ALICE, "/language") == (
        "This chat has no language of its own: everyone gets their Telegram language,"
        " else English.\n"
        "Admins can choose one of en (English), es (Español), ru (Русский), or auto:"
        " /language ru."
    )
    assert await reply(h, MOD, "/language xx") == (
        "I don't speak 'xx': choose one of en (English), es (Español), ru (Русский), or auto."
    )
    await reply(h, MOD, "/language es-MX")
    assert (await reply(h, ALICE, "/language")).startswith("El idioma de este chat es: Español.")
    # Stored in the ledger, with its audit row: a restart keeps it.
    assert h.rows("SELECT chat_id, language, updated_by FROM chat_settings") == [
        (CHAT_ID, "es", 9)
    ]
    assert h.rows("SELECT action, detail FROM admin_actions") == [("language", "es")]
    await h.restart()
    assert (await reply(h, ALICE, "/top")).startswith("<b>Los mejores de esta semana</b>")
    # Said in the admin's own language now: the chat has none any more.
    assert await reply(h, MOD, "/language auto") == (
        "From now on everyone here gets their own Telegram language."
    )
    assert (await reply(h, ALICE, "/top")).startswith("<b>Top this week</b>")


async def test_menus_are_registered_per_language_and_follow_the_chat(h: TelegramHarness) -> None:
    await h.app.register_menus()
    calls = [c for c in h.session.calls if isinstance(c, SetMyCommands)]
    by_language = {(c.language_code, c.scope.type): c.commands for c in calls}
    assert set(by_language) == {
        (code, scope)
        for code in (None, "en", "es", "ru")
        for scope in ("default", "all_chat_administrators")
    }
    descriptions = {
        code: {c.command: c.description for c in by_language[(code, "default")]}
        for code in (None, "en", "es", "ru")
    }
    assert descriptions[None]["help"] == descriptions["en"]["help"] == "how points work"
    assert descriptions["ru"]["help"] == "как начисляются баллы"
    assert descriptions["es"]["points"] == "tus puntos, tu puesto y tu total histórico aquí"
    admin_ru = {c.command for c in by_language[("ru", "all_chat_administrators")]}
    assert {"points", "award", "language"} <= admin_ru

    h.session.clear()
    await reply(h, MOD, "/language ru")
    chat_menus = [c for c in h.session.calls if isinstance(c, SetMyCommands)]
    assert [(c.scope, c.language_code) for c in chat_menus] == [
        (BotCommandScopeChat(chat_id=CHAT_ID), None),
        (BotCommandScopeChatAdministrators(chat_id=CHAT_ID), None),
    ]
    assert (
        chat_menus[0].commands[0].description
        == "ваши баллы, место и сколько заработано здесь за всё время"
    )
    h.session.clear()
    await reply(h, MOD, "/language auto")
    removed = [c for c in h.session.calls if isinstance(c, DeleteMyCommands)]
    assert [c.scope for c in removed] == [
        BotCommandScopeChat(chat_id=CHAT_ID),
        BotCommandScopeChatAdministrators(chat_id=CHAT_ID),
    ]


async def test_announcements_and_reports_speak_the_chat_language(
    make_harness: MakeHarness,
) -> None:
    achievements = {
        "progress": {
            "achievements": [
                {
                    "id": "big",
                    "title": "Сотня",
                    "description": "100 баллов.",
                    "condition": {"type": "earned", "at_least": 100},
                    "reward": 5,
                }
            ]
        }
    }
    h = await make_harness(admins={CHAT_ID: {9}}, gamification={**FIXED, **achievements})
    await reply(h, MOD, "/language ru")
    await meet(h, ALICE)
    await reply(h, MOD, "/award @alice 1500")
    relay, bus, announcer = h.runtime.relay, h.runtime.bus, h.runtime.announcer
    assert relay is not None
    assert isinstance(bus, InProcessBus)
    assert announcer is not None
    await relay.run_once()
    await bus.drain()
    await announcer.flush()
    assert sorted(h.last_text(CHAT_ID).split("\n")) == [
        "⬆️ Alice достигает уровня <b>5</b>",
        "🏆 Alice получает достижение <b>Сотня</b> (+5)",
    ]
    speaker = h.app.dispatcher.workflow_data["gamification_speaker"]
    assert isinstance(speaker, Speaker)
    posts: list[tuple[int, str]] = []

    async def notify(chat_id: int, text: str) -> None:
        posts.append((chat_id, text))

    assert await weekly_job(h.services, notify, [CHAT_ID], speaker=speaker) == 1
    assert posts[-1] == (CHAT_ID, f"<b>🏆 Лучшие за неделю</b>\n1. Alice: 1{NBSP}515")
    report = await integrity_job(h.services, notify, CHAT_ID, speaker=speaker)
    assert report is not None
    assert report.ok
    assert posts[-1][1].startswith("<b>✅ Проверка реестра: нарушений нет.</b>\n<pre>")
    assert "Проверен 1 счёт и 3 транзакции за " in posts[-1][1]
    # Without a speaker (an operator's run, an old caller), the texts are English.
    await integrity_job(h.services, notify, CHAT_ID)
    assert posts[-1][1].startswith("<b>✅ Ledger check: clean.</b>")


def test_an_unknown_bot_language_is_one_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[bot]\nlanguage = "fr"\n', encoding="utf-8")
    registry = default_registry()
    with pytest.raises(ConfigError) as refused:
        load_config(config, plugin_models=registry.config_models(), environ={})
    message = str(refused.value)
    assert "bot.language" in message
    assert "unknown language 'fr' (the bot speaks en, es, ru)" in message
    assert "\n" not in message.strip()
    config.write_text('[bot]\nlanguage = "ru"\n', encoding="utf-8")
    assert (
        load_config(config, plugin_models=registry.config_models(), environ={}).bot.language
        == "ru"
    )
