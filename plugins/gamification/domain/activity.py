"""Facts the Telegram layer extracts from a message, and what a message kind is worth."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

_PUNCTUATION = re.compile(r"[^\w+]+")


@dataclass(frozen=True, slots=True)
class ActivityFact:
    """A scoreable chat message, reduced to what the domain needs."""

    chat_id: int
    user_id: int
    message_id: int
    kind: str
    text: str
    sent_at: datetime
    # The file's file_unique_id for media: the same file again is a repeat.
    media_id: str = ""
    # The replied-to message and its author, when it replies to a person.
    reply_to_message: int | None = None
    reply_to_user: int | None = None


@dataclass(frozen=True, slots=True)
class ReactionFact:
    """A member's reactions on a message changed (`message_reaction`)."""

    chat_id: int
    user_id: int
    message_id: int
    added: bool  # the member's reactions went from none to some (False: to none)
    at: datetime


@dataclass(frozen=True, slots=True)
class ThanksFact:
    """A reply that thanks the author of the replied-to message."""

    chat_id: int
    giver_id: int
    receiver_id: int
    receiver_is_bot: bool
    message_id: int
    target_sent_at: datetime
    sent_at: datetime


def points_for(spec: int | tuple[int, int], key: str) -> int:
    """A fixed amount, or one drawn from [low, high] by the message's idempotency key.

    Deriving the draw from the key means a redelivered update earns exactly the same
    amount, so the retry is recognised as the same request, not a conflict.
    """
    if isinstance(spec, int):
        return spec
    low, high = spec
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return low + draw % (high - low + 1)


def is_thanks(text: str, triggers: frozenset[str]) -> bool:
    """True when the message is a thanks: a trigger alone, or a trigger word in a short text.

    "+" and "+1" count only as the whole message, so "+5 to that idea" is not a thanks.
    """
    lowered = text.strip().lower()
    if not lowered:
        return False
    if lowered in triggers:
        return True
    # Punctuation and emoticons around words don't matter: "спасибо)", "thanks:)", "+1!".
    words = _PUNCTUATION.sub(" ", lowered).split()
    if " ".join(words) in triggers:
        return True
    if len(words) > 12:
        return False
    padded = f" {' '.join(words)} "
    return any(
        f" {trigger} " in padded for trigger in triggers if any(ch.isalpha() for ch in trigger)
    )
