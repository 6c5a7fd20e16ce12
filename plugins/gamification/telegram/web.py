"""The chat pages from the chat: the button under /top and /points, and /web public on|off.

Telegram allows an inline `web_app` button only in a private chat with the bot; in a group
the button is a plain URL: to the public page when the chat's pages are public; else to the
Mini App made with @BotFather (t.me/<bot>/<app>?startapp=<chat>), which opens the pages
inside Telegram with signed launch data naming the member; else to the private chat with
the bot (t.me/<bot>?start=<chat>), where /start answers with a `web_app` button.
"""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, WebAppInfo

from plugins.gamification.services.web_access import WebAccess, parse_chat_token
from plugins.gamification.telegram.facts import GROUP_TYPES
from plugins.gamification.telegram.i18n import N_, _
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.texts import esc

BUTTON = N_("🏆 Open the leaderboard")
USAGE = N_("Use /web public on, or /web public off (this chat's admins only).")
NOT_SERVED = N_("This bot serves no pages on the web (its operator can turn them on with [web]).")


async def web_markup(message: Message, runtime: Runtime) -> InlineKeyboardMarkup | None:
    """The button that opens this chat's pages, of the kind Telegram allows in this chat."""
    options, bot = runtime.web, message.bot
    if options is None or bot is None:
        return None
    chat = message.chat
    if chat.type in GROUP_TYPES:
        if await WebAccess(runtime.services.engine).is_public(chat.id):
            url = options.board_url(chat.id)
        else:
            me = await bot.me()
            if not me.username:
                return None
            url = options.group_link(me.username, chat.id)
        button = InlineKeyboardButton(text=_(BUTTON), url=url)
    else:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def start_markup(payload: str | None, runtime: Runtime) -> InlineKeyboardMarkup | None:
    """For /start <chat> in private (from a group's button): the `web_app` button that
    opens that chat's pages; None when the payload names no chat or no pages are served."""
    options = runtime.web
    chat_id = parse_chat_token(payload or "")
    if options is None or chat_id is None:
        return None
    button = InlineKeyboardButton(
        text=_(BUTTON), web_app=WebAppInfo(url=options.web_app_url(chat_id))
    )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


async def web_action(message: Message, tokens: list[str], runtime: Runtime) -> str:
    """/web: where the pages are; /web public on|off: open them to anyone, or to members."""
    options = runtime.web
    if options is None:
        return _(NOT_SERVED)
    access = WebAccess(runtime.services.engine)
    chat_id = message.chat.id
    if not tokens:
        if await access.is_public(chat_id):
            return _("This chat's pages are public: {url}").format(
                url=esc(options.board_url(chat_id))
            )
        return _("This chat's pages open for its members from the button under /top and /points.")
    words = [token.lower() for token in tokens]
    if len(words) != 2 or words[0] != "public" or words[1] not in ("on", "off"):
        return _(USAGE)
    admin = message.from_user
    assert admin is not None  # the admin gate let only a person through
    public = words[1] == "on"
    changed = await runtime.services.retry(access.set_public, chat_id, public, admin.id)
    if public:
        url = esc(options.board_url(chat_id))
        if changed:
            text = _("This chat's pages are now public: anyone with the link can see them: {url}")
        else:
            text = _(
                "This chat's pages are already public: anyone with the link can see them: {url}"
            )
        return text.format(url=url)
    if changed:
        return _("This chat's pages are now for its members only (opened from /top or /points).")
    return _("This chat's pages are already for its members only (opened from /top or /points).")
