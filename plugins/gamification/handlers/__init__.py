"""The plugin's aiogram routers: admin and user commands first, the passive listener last."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import BotCommand

from plugins.gamification.config import GamificationConfig
from plugins.gamification.handlers.activity import activity_router
from plugins.gamification.handlers.admin import ADMIN_COMMANDS, admin_router
from plugins.gamification.handlers.middleware import RememberPeople
from plugins.gamification.handlers.user import USER_COMMANDS, user_router


def build_router(config: GamificationConfig) -> Router:
    """A fresh router tree each call: a router can be attached to only one parent."""
    root = Router(name="gamification")
    root.message.outer_middleware(RememberPeople())
    # Commands are matched before the passive listener, which never swallows a message.
    root.include_routers(admin_router(), user_router())
    if config.activity.enabled or config.thanks.enabled:
        root.include_router(activity_router())
    return root


def menu() -> tuple[list[BotCommand], list[BotCommand]]:
    """The command menus: for everyone, and the extra ones shown to chat administrators."""
    return list(USER_COMMANDS), list(ADMIN_COMMANDS)
