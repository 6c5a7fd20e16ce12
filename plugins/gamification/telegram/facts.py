"""Turning aiogram messages into the domain's plain facts, and deciding what never scores."""

from __future__ import annotations

from datetime import UTC

from aiogram.enums import ChatType
from aiogram.types import Message, MessageReactionUpdated, User

from plugins.gamification.domain.activity import ActivityFact, ReactionFact, ThanksFact, is_thanks
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.services.people import Person

GROUP_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})

# Content a person sends, mapped to the kinds the config prices; anything else is a
# service message (joins, pins, topic changes, payments...) and never scores.
USER_CONTENT = {
    "text": "text",
    "photo": "photo",
    "live_photo": "photo",
    "video": "video",
    "animation": "animation",
    "sticker": "sticker",
    "voice": "voice",
    "video_note": "video_note",
    "audio": "audio",
    "document": "document",
    "poll": "poll",
    "location": "location",
    "venue": "location",
    "contact": "contact",
    "dice": "dice",
    "story": "other",
    "game": "other",
    "paid_media": "other",
    "checklist": "other",
}


def person_of(user: User) -> Person:
    return Person(user.id, user.username, user.full_name, user.is_bot)


def is_command(message: Message) -> bool:
    return bool(message.text and message.text.startswith("/"))


def activity_fact(message: Message, config: GamificationConfig) -> ActivityFact | None:
    """The fact to score, or None for everything that never scores."""
    user = message.from_user
    if not config.activity.enabled:
        return None
    if user is None or user.is_bot or message.sender_chat is not None:
        return None  # channels, anonymous admins, automatic forwards, bots
    if message.chat.type not in GROUP_TYPES or message.chat.id in config.activity.ignored_chats:
        return None
    if message.forward_origin is not None and not config.activity.score_forwarded:
        return None
    if message.via_bot is not None or is_command(message):
        return None
    kind = USER_CONTENT.get(message.content_type)
    if kind is None:
        return None
    target = replied_message(message)
    replied_to = target.from_user if target is not None else None
    if target is None or replied_to is None or replied_to.is_bot or target.sender_chat:
        target = replied_to = None  # only a reply to a person is an answer
    return ActivityFact(
        chat_id=message.chat.id,
        user_id=user.id,
        message_id=message.message_id,
        kind=kind,
        text=message.text or message.caption or "",
        sent_at=message.date.astimezone(UTC),
        media_id=media_id(message),
        reply_to_message=target.message_id if target is not None else None,
        reply_to_user=replied_to.id if replied_to is not None else None,
    )


def media_id(message: Message) -> str:
    """The file's file_unique_id (the same for the same file, whoever sends it), or ''."""
    if message.photo:
        return message.photo[-1].file_unique_id
    for media in (
        message.sticker, message.video, message.animation, message.voice,
        message.video_note, message.audio, message.document,
    ):  # fmt: skip
        if media is not None:
            return media.file_unique_id
    return ""


def reaction_fact(update: MessageReactionUpdated) -> ReactionFact | None:
    """A member's reactions on a group message changed; None for anonymous or bot ones."""
    user = update.user
    if user is None or user.is_bot or update.actor_chat is not None:
        return None
    if update.chat.type not in GROUP_TYPES:
        return None
    return ReactionFact(
        chat_id=update.chat.id,
        user_id=user.id,
        message_id=update.message_id,
        added=bool(update.new_reaction),
        at=update.date.astimezone(UTC),
    )


def replied_message(message: Message) -> Message | None:
    """The message this one really replies to.

    In a forum topic every message carries the topic's opening service message as
    `reply_to_message`; that is not a reply a person made.
    """
    target = message.reply_to_message
    if target is None:
        return None
    if message.is_topic_message and target.message_id == message.message_thread_id:
        return None
    return target


def thanks_fact(
    message: Message, config: GamificationConfig, triggers: frozenset[str]
) -> ThanksFact | None:
    if not config.thanks.enabled or message.chat.type not in GROUP_TYPES:
        return None
    if is_command(message):
        return None  # "/award 30 thanks for the help" is a command, never a thanks
    giver = message.from_user
    target = replied_message(message)
    if giver is None or giver.is_bot or message.sender_chat is not None or target is None:
        return None
    if message.forward_origin is not None or message.chat.id in config.activity.ignored_chats:
        return None
    receiver = target.from_user
    if receiver is None or target.sender_chat is not None:
        return None
    if not is_thanks(message.text or message.caption or "", triggers):
        return None
    return ThanksFact(
        chat_id=message.chat.id,
        giver_id=giver.id,
        receiver_id=receiver.id,
        receiver_is_bot=receiver.is_bot,
        message_id=message.message_id,
        target_sent_at=target.date.astimezone(UTC),
        sent_at=message.date.astimezone(UTC),
    )
