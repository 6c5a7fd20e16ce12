"""The passive listener: scores group messages and thanks, then lets the message go on."""

from __future__ import annotations

import html
import logging

from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import Message

from plugins.gamification.errors import GamificationError
from plugins.gamification.handlers.facts import (
    activity_fact,
    thanks_fact,
)
from plugins.gamification.handlers.filters import InGroup
from plugins.gamification.models import Receipt
from plugins.gamification.services import GamificationServices

log = logging.getLogger(__name__)


async def on_group_message(message: Message, gamification: GamificationServices) -> None:
    """Score the message, then raise SkipHandler so routers after this one still see it."""
    try:
        await _score(message, gamification)
    except GamificationError as exc:
        log.warning("chat %s message %s not scored: %s", message.chat.id, message.message_id, exc)
    except Exception:
        log.exception("chat %s message %s: scoring failed", message.chat.id, message.message_id)
    raise SkipHandler


async def _score(message: Message, gamification: GamificationServices) -> None:
    thanks = thanks_fact(message, gamification.config, gamification.thanks_triggers)
    if thanks is None:
        fact = activity_fact(message, gamification.config)
        if fact is not None:
            await gamification.score_message(fact)
        return
    # A thanks earns the thanked person points; it is not also activity of its own,
    # otherwise a ring of people thanking each other would farm both.
    gamification.stats.messages_seen[message.chat.id] += 1
    outcome = await gamification.thank(thanks)
    if isinstance(outcome, Receipt) and not outcome.duplicate:
        giver = await gamification.name_of(thanks.giver_id)
        receiver = await gamification.name_of(thanks.receiver_id)
        await message.reply(
            f"{html.escape(receiver)} +{outcome.transaction.amount} "
            f"(thanks from {html.escape(giver)}), now {outcome.balance}."
        )


def activity_router() -> Router:
    router = Router(name="gamification.activity")
    router.message.register(on_group_message, InGroup())
    return router
