"""Cheap async filters for the plugin's routers.

aiogram runs a synchronous filter (a magic `F` expression included) through
`asyncio.to_thread`, a thread hop per message; these are coroutines instead.
"""

from __future__ import annotations

from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import Message

from plugins.gamification.telegram.facts import is_command


class InPrivate(Filter):
    async def __call__(self, message: Message) -> bool:
        return message.chat.type == ChatType.PRIVATE


class IsCommand(Filter):
    """Lets a command router skip ordinary messages before any Command filter parses them."""

    async def __call__(self, message: Message) -> bool:
        return is_command(message)
