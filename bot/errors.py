"""The last-resort errors handler: log the context, tell the person briefly, never a traceback."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent

log = logging.getLogger(__name__)

SORRY = "Sorry, something went wrong on my side. The admins can find it in the logs."


async def on_error(event: ErrorEvent) -> bool:
    update = event.update
    message = update.message or update.edited_message
    chat_id = message.chat.id if message else None
    user_id = message.from_user.id if message and message.from_user else None
    log.error(
        "unhandled error in update %s (chat %s, user %s): %r",
        update.update_id,
        chat_id,
        user_id,
        event.exception,
        exc_info=event.exception,
    )
    if message is not None and message.text and message.text.startswith("/"):
        try:
            await message.answer(SORRY)
        except TelegramAPIError:
            log.warning("could not tell chat %s about the error", chat_id)
    return True
