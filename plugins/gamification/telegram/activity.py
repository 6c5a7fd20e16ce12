"""The passive listener: remembers who wrote, scores group messages and thanks, then lets
the message go on.

When the ledger stays unwritable past `[storage] retry_seconds` (another process holds
its lock, the disk is full), the listener lets the StorageUnavailableError out instead of
raising SkipHandler: its `retry_update` attribute asks the host not to confirm the update,
so Telegram delivers it again and it is scored then. Routers after the plugin see the
message on that delivery; they do not see it twice.
"""

from __future__ import annotations

import logging

from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import Message, MessageReactionUpdated

from plugins.gamification.domain.activity import ThanksFact
from plugins.gamification.domain.errors import GamificationError, TransientStorageError
from plugins.gamification.domain.models import Receipt
from plugins.gamification.services.runtime import Services
from plugins.gamification.telegram.facts import (
    GROUP_TYPES,
    activity_fact,
    person_of,
    reaction_fact,
    replied_message,
    thanks_fact,
)
from plugins.gamification.telegram.i18n import Speaker, _, chat_locale, num
from plugins.gamification.telegram.texts import esc, name_getter, signed

log = logging.getLogger(__name__)


async def on_message(
    message: Message, gamification: Services, gamification_speaker: Speaker
) -> None:
    """Remember the people in the message and score it when it is group activity, then
    raise SkipHandler so the plugin's commands and every router after it still see it.

    It is the first handler of the plugin's router, with no filter of its own: every
    message passes here exactly once, so what it skips costs no filter call.
    """
    remember_people(message, gamification)
    if message.chat.type in GROUP_TYPES and gamification.scoring.scores_messages:
        try:
            await _score(message, gamification, gamification_speaker)
        except TransientStorageError:
            # Already retried (see retry.py) and logged once for the whole outage.
            raise
        except GamificationError as exc:
            log.warning(
                "chat %s message %s not scored: %s", message.chat.id, message.message_id, exc
            )
        except Exception:
            log.exception(
                "chat %s message %s: scoring failed", message.chat.id, message.message_id
            )
    raise SkipHandler


def remember_people(message: Message, gamification: Services) -> None:
    """Keep the author and the replied-to author, for @username targets and names."""
    if message.from_user is not None:
        gamification.people.remember(person_of(message.from_user))
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None:
        gamification.people.remember(person_of(replied.from_user))


async def on_message_reaction(update: MessageReactionUpdated, gamification: Services) -> None:
    """A member's reactions changed: pending engagement and reaction points (they settle
    after `reactions.settle_seconds`, unless taken back). Never swallows the update."""
    fact = reaction_fact(update)
    if fact is not None and fact.chat_id not in gamification.config.activity.ignored_chats:
        try:
            await gamification.engagement.reacted(fact)
        except GamificationError as exc:
            log.warning("chat %s reaction not counted: %s", fact.chat_id, exc)
    raise SkipHandler


async def _engage(message: Message, gamification: Services) -> None:
    """A reply from a person engages the replied-to message (engagement.py decides)."""
    target = replied_message(message)
    user = message.from_user
    if target is None or user is None or user.is_bot or message.sender_chat is not None:
        return
    if message.forward_origin is not None or message.chat.id in (
        gamification.config.activity.ignored_chats
    ):
        return
    await gamification.engagement.replied(
        message.chat.id, user.id, target.message_id, message.date
    )


async def _score(message: Message, gamification: Services, speaker: Speaker) -> None:
    thanked = await score_group_message(message, gamification)
    if thanked is None:
        return
    thanks, outcome = thanked
    # The language is chosen only now that there is something to say.
    language = await chat_locale(
        speaker.i18n, gamification.languages, message.chat.id, message.from_user
    )
    name_of = name_getter(gamification)
    with speaker.speaking(language):
        text = _("{receiver} {change} (thanks from {giver}), now {balance}.").format(
            receiver=esc(await name_of(thanks.receiver_id)),
            change=signed(outcome.transaction.amount),
            giver=esc(await name_of(thanks.giver_id)),
            balance=num(outcome.balance),
        )
    await message.reply(text)


async def score_group_message(
    message: Message, gamification: Services
) -> tuple[ThanksFact, Receipt] | None:
    """Score a group message as activity or as a thanks, and engage what it replies to.

    Returns a new thanks award for the caller to announce; the live listener replies with
    it, a replay of a chat's history (ops/history_import.py) only counts it. Both go
    through here, so history earns by exactly the rules live messages do.
    """
    thanks = thanks_fact(message, gamification.config, gamification.thanks.triggers)
    if thanks is None:
        fact = activity_fact(message, gamification.config)
        if fact is not None:
            await gamification.scoring.score_message(fact)
        await _engage(message, gamification)
        return None
    # A thanks earns through the thanks rules; it is not also engagement (a ring of
    # accounts thanking each other would lift each other's engagement record).
    # A thanks earns the thanked person points; it is not also activity of its own,
    # otherwise a ring of people thanking each other would farm both.
    gamification.stats.messages_seen[message.chat.id] += 1
    outcome = await gamification.thanks.thank(thanks)
    if isinstance(outcome, Receipt) and not outcome.duplicate:
        return thanks, outcome
    return None
