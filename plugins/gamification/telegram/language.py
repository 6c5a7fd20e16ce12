"""/language: a chat's admins choose the language the bot speaks there; the chat's command
menus follow. Also the menus themselves, in every language with a catalog."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeChatAdministrators,
    Message,
)
from aiogram.utils.i18n import I18n

from plugins.gamification.domain.errors import GamificationError, TransientStorageError
from plugins.gamification.telegram.admin import ADMIN_COMMANDS, gate
from plugins.gamification.telegram.facts import GROUP_TYPES
from plugins.gamification.telegram.i18n import _, chat_locale, language_of, native_name, refusal
from plugins.gamification.telegram.phrasing import esc
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.user import USER_COMMANDS

log = logging.getLogger(__name__)

# `/language auto`: no language of the chat's own; each person gets their Telegram one.
AUTO = "auto"

Menu = tuple[list[BotCommand], list[BotCommand]]


def menu_in(i18n: I18n, language: str) -> Menu:
    """The menus in `language`: for everyone, and the extra ones for chat administrators."""

    def entries(commands: tuple[tuple[str, str], ...]) -> list[BotCommand]:
        return [
            BotCommand(command=name, description=i18n.gettext(text, locale=language))
            for name, text in commands
        ]

    return entries(USER_COMMANDS), entries(ADMIN_COMMANDS)


def menus(i18n: I18n) -> dict[str, Menu]:
    """The menus in every language with a catalog."""
    return {language: menu_in(i18n, language) for language in sorted(i18n.available_locales)}


async def set_chat_menus(bot: Bot, chat_id: int, menu: Menu | None) -> None:
    """The chat's own menus, in its language (None: the chat's own are removed, so everyone
    sees the bot's menus in their own language)."""
    everyone = BotCommandScopeChat(chat_id=chat_id)
    admins = BotCommandScopeChatAdministrators(chat_id=chat_id)
    try:
        if menu is None:
            await bot.delete_my_commands(scope=everyone)
            await bot.delete_my_commands(scope=admins)
            return
        user, admin = menu
        await bot.set_my_commands(user, scope=everyone)
        await bot.set_my_commands(user + admin, scope=admins)
    except TelegramAPIError as exc:
        log.warning("could not set the command menus of chat %s: %s", chat_id, exc)


def _choices(i18n: I18n) -> str:
    return ", ".join(f"{code} ({native_name(code)})" for code in sorted(i18n.available_locales))


async def language_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    gamification_runtime: Runtime,
    i18n: I18n,
    command_menu: Callable[[str], Menu] | None = None,
) -> None:
    """`command_menu`, where the host gives it: the whole bot's menu in a language (every
    plugin's commands); else this plugin's own."""
    services = gamification_runtime.services
    arg = (command.args or "").strip()
    if not arg and message.chat.type in GROUP_TYPES:
        await message.reply(await _current(message, gamification_runtime, i18n))
        return
    if not await gate(message, bot, services, "language"):
        return
    user = message.from_user
    assert user is not None  # the gate refuses anonymous senders
    chosen: str | None = None
    if arg.lower() != AUTO:
        chosen = language_of(arg, i18n.locales)
        if chosen is None:
            await message.reply(
                _("I don't speak {code}: choose one of {choices}, or auto.").format(
                    code=esc(repr(arg[:20])), choices=_choices(i18n)
                )
            )
            return
    try:
        await services.languages.choose(message.chat.id, chosen, user.id)
    except TransientStorageError:
        raise  # asks for the update again (see admin.py)
    except GamificationError as exc:
        await message.reply(esc(refusal(exc)))
        return
    now = chosen or await chat_locale(i18n, services.languages, message.chat.id, user)
    with i18n.use_locale(now):
        if chosen is None:
            text = _("From now on everyone here gets their own Telegram language.")
        else:
            text = _("From now on I speak {language} here.").format(language=native_name(now))
        await message.reply(text)
    if chosen is None:
        menu = None
    else:
        menu = command_menu(chosen) if command_menu is not None else menu_in(i18n, chosen)
    await set_chat_menus(bot, message.chat.id, menu)


async def _current(message: Message, runtime: Runtime, i18n: I18n) -> str:
    current = await runtime.services.languages.of(message.chat.id)
    if current is None:
        head = _(
            "This chat has no language of its own: everyone gets their Telegram language,"
            " else {default}."
        ).format(default=native_name(i18n.default_locale))
    else:
        head = _("This chat's language is {language}.").format(language=native_name(current))
    hint = _("Admins can choose one of {choices}, or auto: /language {example}.").format(
        choices=_choices(i18n), example="ru" if current != "ru" else "en"
    )
    return f"{head}\n{hint}"
