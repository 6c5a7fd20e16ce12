"""A message of a Telegram Desktop export, made the aiogram `Message` the bot would have got.

The replay of a chat's history (ops/history_import.py) hands these to the same code the
live listener runs (`score_group_message`), so history earns by exactly the live rules.
What the export does not say is filled in the way Telegram would have said it:

- `from_id` "user<id>" is the author, credited by id even after leaving the chat (or
  deleting the account); "channel<id>" is a chat posting (a linked channel's post in its
  discussion group, an anonymous admin): the Bot API's `sender_chat`, which never scores.
- Bots are not marked in exports: the ids given with `--bot` are bots, and so is the
  author of a message carrying inline buttons without `via_bot` (only bots send those).
- A reply carries the replied-to message's author and time from the last `REPLY_MEMORY`
  messages of the export, as Telegram includes it; a reply to an older one counts as none.
- The export has no `file_unique_id`: the same file sent again is recognised by its kind,
  size, dimensions and duration, which is what the export keeps of it.
- An edited message appears once, as edited: it counts once, at its original time.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiogram.types import Message

# Replies to messages further back than this are rare, and their targets are past every
# engagement and thanks window anyway; the memory stays a few megabytes.
REPLY_MEMORY = 100_000
MAX_BOTS = 10_000
CHANNEL_SENDER = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}
# The export's own words for the Telegram Desktop document kinds, as Bot API fields.
DOCUMENT_KINDS = {
    "sticker": "sticker",
    "animation": "animation",
    "video_file": "video",
    "video_message": "video_note",
    "voice_message": "voice",
    "audio_file": "audio",
}


class Skip(enum.StrEnum):
    """Why an export entry is not replayed at all (reported in the summary)."""

    SERVICE = "service message"
    NO_AUTHOR = "no author"
    MALFORMED = "unreadable entry"


@dataclass(frozen=True, slots=True)
class Sent:
    """What a reply to a message needs to know of it."""

    sender: int  # the user's id, or the sending chat's id (negative)
    is_bot: bool
    date: int
    topic_start: bool


class HistoryReader:
    """Turns export entries into Messages of one chat, remembering recent ones for replies."""

    def __init__(
        self,
        chat_id: int,
        chat_title: str,
        supergroup: bool,
        *,
        bots: frozenset[int] = frozenset(),
        timezone: str = "UTC",
        memory: int = REPLY_MEMORY,
    ) -> None:
        self.chat = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": chat_title,
        }
        self._bots = set(bots)
        self._zone = ZoneInfo(timezone)
        self._sent: OrderedDict[int, Sent] = OrderedDict()
        self._memory = memory

    def when(self, entry: Mapping[str, Any]) -> datetime | None:
        """The entry's time: `date_unixtime`, or (exports before 2021 lack it) `date` read
        in the ledger's timezone."""
        unix = entry.get("date_unixtime")
        try:
            if unix is not None:
                return datetime.fromtimestamp(int(unix), UTC)
            local = datetime.fromisoformat(str(entry["date"]))
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            return None
        if local.tzinfo is None:
            local = local.replace(tzinfo=self._zone)
        return local.astimezone(UTC)

    def message(self, entry: Mapping[str, Any], sent_at: datetime) -> Message | Skip:
        """The Message for `entry`, or why there is none. Remembers it for later replies."""
        message_id = entry.get("id")
        if not isinstance(message_id, int) or message_id <= 0:
            return Skip.MALFORMED
        date = int(sent_at.timestamp())
        if entry.get("type") != "message":
            action = entry.get("action")
            self._remember(message_id, Sent(0, False, date, action == "topic_created"))
            return Skip.SERVICE
        author = _author(entry.get("from_id"))
        if author is None:
            return Skip.NO_AUTHOR
        kind, author_id = author
        body: dict[str, Any] = {"message_id": message_id, "date": date, "chat": self.chat}
        name = str(entry.get("from") or "Deleted Account")
        if kind == "user":
            if entry.get("inline_bot_buttons") and not entry.get("via_bot"):
                self._learn_bot(author_id)
            is_bot = author_id in self._bots
            body["from"] = {"id": author_id, "is_bot": is_bot, "first_name": name}
            self._remember(message_id, Sent(author_id, is_bot, date, False))
        else:
            body["from"] = CHANNEL_SENDER
            body["sender_chat"] = {"id": author_id, "type": "channel", "title": name}
            self._remember(message_id, Sent(author_id, True, date, False))
        text = flatten_text(entry.get("text"))
        content = _content(entry)
        if content:
            body.update(content)
            if text:
                body["caption"] = text
        elif text:
            body["text"] = text
        # Else nothing the rules price (a game, a giveaway, a paid post...): no content.
        self._reply(entry, body)
        _forward(entry, body, date)
        via = entry.get("via_bot")
        if isinstance(via, str) and via:
            username = via.lstrip("@")
            body["via_bot"] = {
                "id": 0,
                "is_bot": True,
                "first_name": username,
                "username": username,
            }
        edited = entry.get("edited_unixtime")
        if isinstance(edited, str) and edited.isdigit():
            body["edit_date"] = int(edited)
        try:
            return Message.model_validate(body)
        except ValueError:
            return Skip.MALFORMED

    def _remember(self, message_id: int, sent: Sent) -> None:
        self._sent[message_id] = sent
        if len(self._sent) > self._memory:
            self._sent.popitem(last=False)

    def _learn_bot(self, user_id: int) -> None:
        if len(self._bots) < MAX_BOTS:
            self._bots.add(user_id)

    def _reply(self, entry: Mapping[str, Any], body: dict[str, Any]) -> None:
        target_id = entry.get("reply_to_message_id")
        if not isinstance(target_id, int):
            return
        target = self._sent.get(target_id)
        if target is None or target.topic_start:
            return  # too far back, deleted, or a forum topic's opening (not a reply)
        replied: dict[str, Any] = {"message_id": target_id, "date": target.date, "chat": self.chat}
        if target.sender > 0:
            replied["from"] = {"id": target.sender, "is_bot": target.is_bot, "first_name": "?"}
        elif target.sender < 0:
            replied["from"] = CHANNEL_SENDER
            replied["sender_chat"] = {"id": target.sender, "type": "channel", "title": "?"}
        body["reply_to_message"] = replied


def _author(from_id: object) -> tuple[str, int] | None:
    """("user", id) or ("chat", the Bot API's id of the channel or group), or None."""
    if not isinstance(from_id, str):
        return None
    for prefix, kind in (("user", "user"), ("channel", "chat"), ("chat", "chat")):
        digits = from_id.removeprefix(prefix)
        if digits != from_id and digits.isdigit():
            number = int(digits)
            if kind == "user":
                return kind, number
            return kind, -(10**12 + number) if prefix == "channel" else -number
    return None


def flatten_text(text: object) -> str:
    """The export's `text`: a string, or a list of strings and entity objects {type, text}."""
    if isinstance(text, str):
        return text
    if not isinstance(text, list):
        return ""
    parts = []
    for part in text:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "".join(parts)


def _fingerprint(entry: Mapping[str, Any], kind: str) -> str:
    """A stand-in for `file_unique_id`: the same file has the same size and shape."""
    size = entry.get("file_size", entry.get("photo_file_size", ""))
    shape = (entry.get("width", ""), entry.get("height", ""), entry.get("duration_seconds", ""))
    return f"x{kind}{size}_{shape[0]}_{shape[1]}_{shape[2]}_{entry.get('sticker_emoji', '')}"


def _file(entry: Mapping[str, Any], kind: str) -> dict[str, Any]:
    unique = _fingerprint(entry, kind)
    return {"file_id": unique, "file_unique_id": unique}


def _content(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Bot API fields of the entry's media, or None for a text message."""
    if "photo" in entry:
        width, height = int(entry.get("width") or 1), int(entry.get("height") or 1)
        return {"photo": [{**_file(entry, "photo"), "width": width, "height": height}]}
    media = entry.get("media_type")
    if "file" in entry or isinstance(media, str):
        field = DOCUMENT_KINDS.get(str(media), "document")
        item = _file(entry, field)
        duration = int(entry.get("duration_seconds") or 0)
        width, height = int(entry.get("width") or 1), int(entry.get("height") or 1)
        if field == "sticker":
            item |= {"type": "regular", "width": width, "height": height,
                     "is_animated": False, "is_video": False}  # fmt: skip
        elif field in ("video", "animation"):
            item |= {"width": width, "height": height, "duration": duration}
        elif field == "video_note":
            item |= {"length": width, "duration": duration}
        elif field in ("voice", "audio"):
            item |= {"duration": duration}
        return {field: item}
    poll = entry.get("poll")
    if isinstance(poll, dict):
        answers = poll.get("answers") or []
        return {
            "poll": {
                "id": str(entry.get("id")),
                "question": str(poll.get("question") or "?"),
                "options": [
                    {"text": str(a.get("text") or "?"), "voter_count": int(a.get("voters") or 0)}
                    for a in answers
                    if isinstance(a, dict)
                ],
                "total_voter_count": int(poll.get("total_voters") or 0),
                "is_closed": bool(poll.get("closed")),
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        }
    location = entry.get("location_information")
    if isinstance(location, dict):
        return {
            "location": {
                "latitude": float(location.get("latitude") or 0),
                "longitude": float(location.get("longitude") or 0),
            }
        }
    contact = entry.get("contact_information")
    if isinstance(contact, dict):
        return {
            "contact": {
                "phone_number": str(contact.get("phone_number") or "?"),
                "first_name": str(contact.get("first_name") or "?"),
            }
        }
    dice = entry.get("dice")
    if isinstance(dice, dict):
        return {
            "dice": {"emoji": str(dice.get("emoji") or "🎲"), "value": int(dice.get("value") or 1)}
        }
    return None


def _forward(entry: Mapping[str, Any], body: dict[str, Any], date: int) -> None:
    origin = entry.get("forwarded_from")
    if origin is None and "forwarded_from" not in entry and "saved_from" not in entry:
        return
    name = str(origin or entry.get("saved_from") or "Hidden")
    # The export names the origin but not its kind or original date: a hidden user is the
    # one origin that needs neither, and any origin is treated alike by the rules.
    body["forward_origin"] = {"type": "hidden_user", "sender_user_name": name, "date": date}
