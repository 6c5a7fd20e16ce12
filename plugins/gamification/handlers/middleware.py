"""Remembers every person the plugin's routers see, for @username targets and names."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from plugins.gamification.handlers.facts import person_of
from plugins.gamification.services import GamificationServices

log = logging.getLogger(__name__)


class RememberPeople(BaseMiddleware):
    """Outer middleware: runs for every message before any handler of the plugin is chosen."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        services = data.get("gamification")
        if isinstance(event, Message) and isinstance(services, GamificationServices):
            users = [event.from_user]
            if event.reply_to_message is not None:
                users.append(event.reply_to_message.from_user)
            for user in users:
                if user is not None:
                    services.remember(person_of(user))
        return await handler(event, data)
