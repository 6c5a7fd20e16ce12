"""The plugin's aiogram router: the passive listener first, then the commands.

The shape is kept shallow on purpose: every group message crosses it, and each router
level an update enters costs aiogram about a sixth of a whole no-op dispatch (measured
with `python -m bot bench`'s end-to-end harness). An ordinary message runs the listener
(one handler, no filter), which raises SkipHandler, and is then turned away by the
commands router's single cheap IsCommand filter; the command routers below it are only
entered by commands.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import BotCommand

from plugins.gamification.telegram.activity import on_message, on_message_reaction
from plugins.gamification.telegram.admin import ADMIN_COMMANDS, admin_router
from plugins.gamification.telegram.filters import IsCommand
from plugins.gamification.telegram.user import USER_COMMANDS, user_router


def build_router() -> Router:
    """A fresh router tree each call: a router can be attached to only one parent."""
    root = Router(name="gamification")
    # Remembers people and scores, then lets the message go on, commands included.
    root.message.register(on_message)
    # Reactions engage messages (the bot must be a chat admin to receive them).
    root.message_reaction.register(on_message_reaction)
    commands = Router(name="gamification.commands")
    commands.message.filter(IsCommand())
    commands.include_routers(admin_router(), user_router())
    root.include_router(commands)
    return root


def menu() -> tuple[list[BotCommand], list[BotCommand]]:
    """The command menus: for everyone, and the extra ones shown to chat administrators."""
    return list(USER_COMMANDS), list(ADMIN_COMMANDS)
