"""The plugin's aiogram router: the passive listener first, then the commands.

The shape is kept shallow on purpose: every group message crosses it, and each router
level an update enters costs aiogram about a sixth of a whole no-op dispatch (measured
with `python -m bot bench`'s end-to-end harness). An ordinary message runs the listener
(one handler, no filter), which raises SkipHandler, and is then turned away by the
commands router's single cheap IsCommand filter; the command routers below it are only
entered by commands. The language of a reply is chosen by an inner middleware of the
commands router, which runs only for a command a handler takes.
"""

from __future__ import annotations

from aiogram import BaseMiddleware, Router
from aiogram.filters import Command

from plugins.gamification.telegram.activity import on_message, on_message_reaction
from plugins.gamification.telegram.admin import admin_router
from plugins.gamification.telegram.filters import IsCommand
from plugins.gamification.telegram.language import Menu, language_command, menu_in, menus
from plugins.gamification.telegram.user import user_router

__all__ = ["Menu", "build_router", "menu_in", "menus"]


def build_router(locale_middleware: BaseMiddleware | None = None) -> Router:
    """A fresh router tree each call: a router can be attached to only one parent.

    `locale_middleware` (i18n.ChatLocaleMiddleware) sets each command's language; without
    one, commands answer in English.
    """
    root = Router(name="gamification")
    # Remembers people and scores, then lets the message go on, commands included.
    root.message.register(on_message)
    # Reactions engage messages (the bot must be a chat admin to receive them).
    root.message_reaction.register(on_message_reaction)
    commands = Router(name="gamification.commands")
    commands.message.filter(IsCommand())
    if locale_middleware is not None:
        commands.message.middleware(locale_middleware)
    admin = admin_router()
    admin.message.register(language_command, Command("language"))
    commands.include_routers(admin, user_router())
    root.include_router(commands)
    return root
