"""The last-resort errors handler: log the context, tell the person briefly, never a traceback."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent

from bot.i18n import N_, translate

log = logging.getLogger(__name__)

SORRY = N_("Sorry, something went wrong on my side. The admins can find it in the logs.")


def wants_redelivery(exc: BaseException) -> bool:
    """The convention between the host and its plugins for a fault that may pass.

    A handler that could not finish for now (its plugin's storage is locked or full, and
    it already retried as long as it should) raises an exception whose `retry_update`
    attribute is true. The host then neither answers it here nor confirms the update:
    the Poller has it delivered again. An attribute, not a class, because plugins import
    nothing from the host.
    """
    return getattr(exc, "retry_update", False) is True


def not_for_redelivery(event: ErrorEvent) -> bool:
    """Filter of `on_error`: errors that ask for redelivery pass through to the Poller."""
    return not wants_redelivery(event.exception)


async def on_error(event: ErrorEvent, language: str = "en") -> bool:
    """Log the error with its context; to a command, answer briefly in the sender's
    language (else `language`: the host puts `[bot] language` in the dispatcher's data)."""
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
            code = message.from_user.language_code if message.from_user else None
            await message.answer(translate(SORRY, code, language))
        except TelegramAPIError:
            log.warning("could not tell chat %s about the error", chat_id)
    return True
