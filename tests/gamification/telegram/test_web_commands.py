"""The chat pages from the chat: the button under /top and /points (the kind Telegram allows
in each chat), and /web public on|off for the chat's admins only."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardMarkup

from bot.testing import UpdateFactory
from plugins.gamification.telegram.user import GROUP_ONLY
from tests.gamification.conftest import MakeHarness
from tests.support.chat import ALICE, BOB, CHAT, CHAT_ID, FIXED, MOD, SENTENCES
from tests.support.telegram_harness import TelegramHarness

WEB = {"listen": "127.0.0.1:0", "public_url": "https://points.example.org/board"}


@pytest.fixture
async def h(make_harness: MakeHarness) -> TelegramHarness:
    harness = await make_harness(admins={CHAT_ID: {9}}, gamification=FIXED, web=WEB)
    await harness.say(CHAT, BOB, SENTENCES[0])
    return harness


def last_sent(h: TelegramHarness) -> SendMessage:
    assert h.session.sent, "the bot sent nothing"
    return h.session.sent[-1]


def button(message: SendMessage) -> dict[str, Any]:
    markup = message.reply_markup
    assert isinstance(markup, InlineKeyboardMarkup)
    [[only]] = markup.inline_keyboard
    return only.model_dump(exclude_none=True)


@pytest.mark.parametrize("command", ["/top", "/points", "/top all"])
async def test_in_a_group_the_button_leads_to_the_private_chat(
    h: TelegramHarness, command: str
) -> None:
    await h.say(CHAT, BOB, command)
    found = button(last_sent(h))
    # Inline web_app buttons are refused by Telegram outside private chats: a URL it is.
    assert set(found) == {"text", "url"}
    assert found["url"] == f"https://t.me/points_bot?start=c{CHAT_ID}"


async def test_start_from_that_link_answers_with_a_web_app_button(h: TelegramHarness) -> None:
    await h.say(UpdateFactory.private(BOB), BOB, f"/start c{CHAT_ID}")
    found = button(last_sent(h))
    assert found["web_app"] == {"url": f"https://points.example.org/board/app?chat=c{CHAT_ID}"}
    await h.say(UpdateFactory.private(BOB), BOB, "/start")
    assert last_sent(h).reply_markup is None
    assert "Hi!" in (last_sent(h).text or "")


async def test_a_named_mini_app_gets_its_direct_link(make_harness: MakeHarness) -> None:
    h = await make_harness(gamification=FIXED, web={**WEB, "app_short_name": "board"})
    await h.say(CHAT, BOB, SENTENCES[0])
    await h.say(CHAT, BOB, "/top")
    assert button(last_sent(h))["url"] == f"https://t.me/points_bot/board?startapp=c{CHAT_ID}"


async def test_public_pages_get_a_plain_link_to_the_page(h: TelegramHarness) -> None:
    await h.say(CHAT, MOD, "/web public on")
    await h.say(CHAT, BOB, "/points")
    assert button(last_sent(h))["url"] == f"https://points.example.org/board/c/{CHAT_ID}"


async def test_in_private_the_commands_say_where_to_use_them_without_a_button(
    h: TelegramHarness,
) -> None:
    private = UpdateFactory.private(BOB)
    for command in ("/top", "/points"):
        await h.say(private, BOB, command)
        sent = last_sent(h)
        assert sent.text == GROUP_ONLY
        assert sent.reply_markup is None


async def test_no_button_when_the_bot_serves_no_pages(make_harness: MakeHarness) -> None:
    h = await make_harness(gamification=FIXED)
    await h.say(CHAT, BOB, SENTENCES[0])
    await h.say(CHAT, BOB, "/top")
    assert last_sent(h).reply_markup is None
    await h.say(CHAT, MOD, "/web public on")
    # Not an admin in this harness: refused before anything else.
    assert last_sent(h).text == "Only admins of this chat can use /web."


async def test_web_public_on_and_off_by_an_admin_is_stored_and_audited(
    h: TelegramHarness,
) -> None:
    replies = []
    for command in ("/web", "/web public on", "/web public on", "/web", "/web public off"):
        await h.say(CHAT, MOD, command)
        replies.append(last_sent(h).text)
    assert replies[0].startswith("This chat's pages open for its members")
    assert replies[1].startswith("This chat's pages are now public")
    assert replies[2].startswith("This chat's pages are already public")
    assert (
        replies[3] == f"This chat's pages are public: https://points.example.org/board/c/{CHAT_ID}"
    )
    assert replies[4].startswith("This chat's pages are now for its members only")
    assert h.rows("SELECT chat_id, public, changed_by FROM web_access") == [(CHAT_ID, 0, 9)]
    audit = h.rows("SELECT actor_id, action, detail FROM admin_actions ORDER BY id")
    assert audit == [(9, "web", "public on"), (9, "web", "public off")]


@pytest.mark.parametrize("command", ["/web public on", "/web public off", "/web"])
async def test_web_is_refused_to_members_who_are_not_admins(
    h: TelegramHarness, command: str
) -> None:
    await h.say(CHAT, ALICE, command)
    assert last_sent(h).text == "Only admins of this chat can use /web."
    assert h.rows("SELECT COUNT(*) FROM web_access") == [(0,)]


@pytest.mark.parametrize("args", ["public", "public maybe", "private on", "public on now"])
async def test_web_with_wrong_words_says_how(h: TelegramHarness, args: str) -> None:
    await h.say(CHAT, MOD, f"/web {args}")
    assert last_sent(h).text == "Use /web public on, or /web public off (this chat's admins only)."
    assert h.rows("SELECT COUNT(*) FROM web_access") == [(0,)]


async def test_a_redelivered_web_command_changes_nothing_more(h: TelegramHarness) -> None:
    update = await h.say(CHAT, MOD, "/web public on")
    await h.feed(update)
    assert h.rows("SELECT COUNT(*) FROM admin_actions") == [(1,)]
    assert h.rows("SELECT public FROM web_access") == [(1,)]


async def test_a_scored_message_does_nothing_more_with_pages_on(h: TelegramHarness) -> None:
    h.session.clear()
    h.clock.advance(61)
    await h.say(CHAT, ALICE, SENTENCES[3])
    assert await h.balance(CHAT_ID, 1) == 10
    # No getMe, no getChatMember, no reply: the pages cost an ordinary message nothing.
    assert h.session.calls == []
