"""The chat, people and messages the handler tests share, and two small helpers on them."""

from __future__ import annotations

from typing import Any

from bot.testing import UpdateFactory
from tests.support.telegram_harness import TelegramHarness

CHAT_ID, OTHER_ID, LOG_ID = -100, -200, -999
CHAT = UpdateFactory.group(CHAT_ID, "Club")
OTHER = UpdateFactory.group(OTHER_ID, "Other")
ALICE = UpdateFactory.user(1, "Alice", "alice")
BOB = UpdateFactory.user(2, "Bob", "bob")
CAROL = UpdateFactory.user(3, "Carol", "carol")
DAVE = UpdateFactory.user(4, "Dave", "dave")
MOD = UpdateFactory.user(9, "Mod", "mod")
HELPER_BOT = {"id": 555, "is_bot": True, "first_name": "Helper", "username": "helper_bot"}
CHANNEL = {"id": -100777, "type": "channel", "title": "News"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
PHOTO = {"photo": [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]}

# Unrelated sentences: consecutive messages of one person are never near-repeats.
SENTENCES = (
    "good morning everyone, coffee is ready",
    "has anyone tried the new release yet?",
    "I think the meeting moved to friday",
    "the weather here is grey and rainy",
    "my cat knocked the plant off the shelf",
    "who wants to review my pull request",
    "lunch at the italian place sounds great",
    "the train was late again this morning",
    "finally fixed that flaky test suite",
    "reading a book about medieval castles",
    "our football team won on sunday night",
    "please remind me about the deadline",
    "new keyboard arrived, typing feels weird",
    "does the wiki explain the deploy steps",
)
FIXED = {"activity": {"points": {"text": 10}}}


async def bob_says(h: TelegramHarness, text: str = SENTENCES[0], **kw: Any) -> int:
    update = await h.say(kw.pop("chat", CHAT), BOB, text, **kw)
    assert update.message is not None
    return update.message.message_id


def thanks_rows(h: TelegramHarness) -> list[tuple[Any, ...]]:
    return [row for row in h.transactions() if row[4] == "thanks"]
