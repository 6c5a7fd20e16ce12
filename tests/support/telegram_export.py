"""Generated chat histories, written as Telegram Desktop exports and as the live updates the
bot would have received for the same messages.

The export follows Telegram Desktop's "Machine-readable JSON" (result.json): a top-level
object with name, type, id and messages; messages with id, type ("message" / "service"),
date (local ISO) and date_unixtime (a string), from / from_id ("user<id>", "channel<id>"),
text as a string or a list of strings and entity objects, text_entities, reply_to_message_id,
forwarded_from, via_bot, media fields (photo, file, media_type, file_size, width, height,
duration_seconds, sticker_emoji), edited / edited_unixtime, inline_bot_buttons, and service
messages with actor / actor_id / action / members.

The live side is built independently (Bot API fields by hand), so a test comparing an import
with the live bot compares two renderings of the same truth, not one conversion with itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram.types import Update

EXPORT_ID = 1987654321
CHAT_ID = -(10**12 + EXPORT_ID)
CHANNEL_EXPORT_ID = 1555000111
BOT_ID = 7000001
START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)

MEMBERS = {
    101: "Alice",
    102: "Boris",
    103: "Chen",
    104: "Dana",
    105: "Emeka",
    106: "Farah",  # leaves the chat halfway; her messages still count for her id
    107: "Gosha",
}
LEAVER = 106
WORDS = [
    "deploy",
    "the",
    "staging",
    "build",
    "tonight",
    "review",
    "migration",
    "schema",
    "index",
    "query",
    "latency",
    "cache",
    "window",
    "budget",
    "design",
    "meeting",
    "notes",
    "release",
    "branch",
    "rollback",
    "fixture",
    "docs",
    "typo",
    "queue",
    "worker",
    "timeout",
    "retry",
    "backoff",
    "ledger",
    "balance",
    "report",
    "weekly",
    "plan",
    "sprint",
    "metric",
]
THANKS = ("thanks!", "спасибо)", "thank you so much", "+1", "gracias")
STICKERS = ("😀", "👍", "🔥")


@dataclass
class Said:
    """One generated message: the truth both renderings come from."""

    message_id: int
    at: int  # unix seconds
    kind: str  # text, photo, sticker, voice, video, document, service, channel, bot
    user_id: int = 0
    text: str = ""
    entities: bool = False  # the export's text is a list with entity objects
    file_key: int = 0  # the same key is the same file
    reply_to: int | None = None
    forwarded: bool = False
    via_bot: bool = False
    edited_at: int | None = None
    action: str = ""
    members: list[str] = field(default_factory=list)


def history(count: int, seed: int = 7) -> Iterator[Said]:
    """`count` messages over about a week of a lively chat, lazily (any length)."""
    rng = random.Random(seed)
    at = int(START.timestamp())
    recent: list[Said] = []
    joined = False
    left = False
    for message_id in range(1, count + 1):
        # Bursts of quick messages, pauses, and now and then a night.
        at += rng.choice((2, 5, 20, 45, 90, 300, 900)) if rng.random() > 0.01 else 9 * 3600
        people = [u for u in MEMBERS if not (left and u == LEAVER)]
        roll = rng.random()
        said: Said
        if not joined:
            joined = True
            said = Said(message_id, at, "service", user_id=101, action="invite_members",
                        members=["Boris", "Chen"])  # fmt: skip
        elif not left and message_id > count // 2:
            left = True
            said = Said(message_id, at, "service", user_id=LEAVER, action="remove_members",
                        members=[MEMBERS[LEAVER]])  # fmt: skip
        elif roll < 0.02:
            said = Said(message_id, at, "service", user_id=rng.choice(people),
                        action="pin_message")  # fmt: skip
        elif roll < 0.04:
            said = Said(message_id, at, "channel", text=_sentence(rng, 8))
        elif roll < 0.06:
            said = Said(message_id, at, "bot", user_id=BOT_ID, text="Daily digest: all good")
        else:
            said = _member_message(rng, message_id, at, rng.choice(people), recent)
        recent.append(said)
        if len(recent) > 30:
            recent.pop(0)
        yield said


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _member_message(
    rng: random.Random, message_id: int, at: int, user_id: int, recent: list[Said]
) -> Said:
    said = Said(message_id, at, "text", user_id=user_id)
    targets = [s for s in recent if s.kind not in ("service",)]
    if targets and rng.random() < 0.35:
        said.reply_to = rng.choice(targets).message_id
    roll = rng.random()
    if said.reply_to is not None and roll < 0.15:
        said.text = rng.choice(THANKS)
    elif roll < 0.25:
        said.kind = "photo"
        said.file_key = rng.randrange(1, 40)
        said.text = _sentence(rng, rng.randrange(0, 6))  # a caption, or none
    elif roll < 0.32:
        said.kind = "sticker"
        said.file_key = 1000 + rng.randrange(3)
    elif roll < 0.36:
        said.kind = rng.choice(("voice", "video", "document"))
        said.file_key = 2000 + rng.randrange(50)
    elif roll < 0.40:
        said.text = "same old spam line, buy now"  # repeats and copies
    elif roll < 0.42:
        said.text = "/top"
    else:
        said.text = _sentence(rng, rng.randrange(1, 14))
        said.entities = rng.random() < 0.3
    said.forwarded = rng.random() < 0.04
    said.via_bot = said.kind == "text" and rng.random() < 0.02
    if rng.random() < 0.05:
        said.edited_at = at + rng.randrange(10, 600)
    return said


# -- the export -----------------------------------------------------------------------------


def _local(at: int) -> str:
    # Telegram Desktop writes the exporting computer's local time; here it is UTC+3.
    return datetime.fromtimestamp(at + 3 * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _media_fields(said: Said) -> dict[str, Any]:
    size = 10_000 + said.file_key * 37
    if said.kind == "photo":
        return {"photo": "(File not included. Change data exporting settings to download.)",
                "photo_file_size": size, "width": 1280, "height": 960}  # fmt: skip
    common = {"file": "(File not included. Change data exporting settings to download.)",
              "file_size": size}  # fmt: skip
    if said.kind == "sticker":
        emoji = STICKERS[said.file_key % 3]
        return {**common, "media_type": "sticker", "width": 512, "height": 512,
                "sticker_emoji": emoji, "mime_type": "image/webp"}  # fmt: skip
    if said.kind == "voice":
        return {**common, "media_type": "voice_message", "mime_type": "audio/ogg",
                "duration_seconds": 3 + said.file_key % 7}  # fmt: skip
    if said.kind == "video":
        return {**common, "media_type": "video_file", "mime_type": "video/mp4",
                "duration_seconds": 9, "width": 640, "height": 360}  # fmt: skip
    return {**common, "file_name": f"notes-{said.file_key}.pdf", "mime_type": "application/pdf"}


def export_entry(said: Said) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": said.message_id,
        "type": "service" if said.kind == "service" else "message",
        "date": _local(said.at),
        "date_unixtime": str(said.at),
    }
    if said.kind == "service":
        entry |= {"actor": MEMBERS.get(said.user_id, "?"), "actor_id": f"user{said.user_id}",
                  "action": said.action}  # fmt: skip
        if said.members:
            entry["members"] = said.members
        entry |= {"text": "", "text_entities": []}
        return entry
    if said.edited_at is not None:
        entry |= {"edited": _local(said.edited_at), "edited_unixtime": str(said.edited_at)}
    if said.kind == "channel":
        entry |= {"from": "Release Notes", "from_id": f"channel{CHANNEL_EXPORT_ID}"}
    elif said.kind == "bot":
        entry |= {"from": "Digest Bot", "from_id": f"user{BOT_ID}",
                  "inline_bot_buttons": [[{"type": "callback", "text": "Open",
                                           "data": "b3Blbg=="}]]}  # fmt: skip
    else:
        entry |= {"from": MEMBERS[said.user_id], "from_id": f"user{said.user_id}"}
    if said.forwarded:
        entry["forwarded_from"] = "Some Channel"
    if said.via_bot:
        entry["via_bot"] = "@gif"
    if said.reply_to is not None:
        entry["reply_to_message_id"] = said.reply_to
    if said.kind in ("photo", "sticker", "voice", "video", "document"):
        entry |= _media_fields(said)
    text: Any = said.text
    entities = [{"type": "plain", "text": said.text}] if said.text else []
    if said.entities and " " in said.text:
        head, tail = said.text.split(" ", 1)
        text = [{"type": "bold", "text": head}, " ", {"type": "link", "text": tail}]
        entities = [{"type": "bold", "text": head}, {"type": "plain", "text": " "},
                    {"type": "link", "text": tail}]  # fmt: skip
    elif said.text.startswith("/"):
        text = [{"type": "bot_command", "text": said.text}]
        entities = [{"type": "bot_command", "text": said.text}]
    entry |= {"text": text, "text_entities": entities}
    return entry


def write_export(path: Path, messages: Iterator[Said], name: str = "Builders Lounge") -> Path:
    """Write the messages as result.json, one at a time (any length, little memory)."""
    with path.open("w", encoding="utf-8") as out:
        out.write('{\n "name": ' + json.dumps(name, ensure_ascii=False) + ",\n")
        out.write(f' "type": "private_supergroup",\n "id": {EXPORT_ID},\n "messages": [')
        first = True
        for said in messages:
            out.write("\n  " if first else ",\n  ")
            out.write(json.dumps(export_entry(said), ensure_ascii=False, indent=None))
            first = False
        out.write("\n ]\n}\n")
    return path


# -- the live updates -----------------------------------------------------------------------

CHAT = {"id": CHAT_ID, "type": "supergroup", "title": "Builders Lounge"}


def _user(user_id: int) -> dict[str, Any]:
    if user_id == BOT_ID:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Digest Bot", "username": "digest_bot"}
    return {"id": user_id, "is_bot": False, "first_name": MEMBERS[user_id]}


def _live_body(said: Said) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": said.message_id, "date": said.at, "chat": CHAT}
    if said.kind == "channel":
        body["from"] = {"id": 136817688, "is_bot": True, "first_name": "Channel"}
        body["sender_chat"] = {"id": -(10**12 + CHANNEL_EXPORT_ID), "type": "channel",
                               "title": "Release Notes"}  # fmt: skip
    else:
        body["from"] = _user(said.user_id)
    file = {"file_id": f"f{said.file_key}", "file_unique_id": f"u{said.file_key}"}
    if said.kind == "photo":
        body["photo"] = [{**file, "width": 1280, "height": 960}]
    elif said.kind == "sticker":
        body["sticker"] = {**file, "type": "regular", "width": 512, "height": 512,
                           "is_animated": False, "is_video": False}  # fmt: skip
    elif said.kind == "voice":
        body["voice"] = {**file, "duration": 3 + said.file_key % 7}
    elif said.kind == "video":
        body["video"] = {**file, "width": 640, "height": 360, "duration": 9}
    elif said.kind == "document":
        body["document"] = file
    if said.kind in ("photo", "sticker", "voice", "video", "document"):
        if said.text:
            body["caption"] = said.text
    else:
        body["text"] = said.text
        if said.text.startswith("/"):
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(said.text)}]
    if said.forwarded:
        body["forward_origin"] = {"type": "hidden_user", "sender_user_name": "Some Channel",
                                  "date": said.at - 3600}  # fmt: skip
    if said.via_bot:
        body["via_bot"] = {"id": 140267078, "is_bot": True, "first_name": "GIF", "username": "gif"}
    return body


def live_updates(messages: Iterator[Said]) -> Iterator[tuple[int, Update]]:
    """(unix time, Update) as the bot would have received them, edits included."""
    sent: dict[int, dict[str, Any]] = {}
    update_id = 0
    edits: list[tuple[int, Said]] = []
    for said in messages:
        while edits and edits[0][0] <= said.at:
            update_id += 1
            yield _edit(update_id, edits.pop(0)[1], sent)
        if said.kind == "service":
            body: dict[str, Any] = {"message_id": said.message_id, "date": said.at, "chat": CHAT,
                                    "from": _user(said.user_id)}  # fmt: skip
            if said.action == "remove_members":
                body["left_chat_member"] = _user(said.user_id)
            elif said.action == "invite_members":
                body["new_chat_members"] = [_user(102), _user(103)]
            else:
                body["pinned_message"] = {"message_id": 1, "date": said.at, "chat": CHAT}
        else:
            body = _live_body(said)
            if said.reply_to is not None and said.reply_to in sent:
                body["reply_to_message"] = sent[said.reply_to]
        sent[said.message_id] = {k: v for k, v in body.items() if k != "reply_to_message"}
        update_id += 1
        yield said.at, Update.model_validate({"update_id": update_id, "message": body})
        if said.edited_at is not None:
            edits.append((said.edited_at, said))
            edits.sort(key=lambda item: item[0])
    for _, said in edits:
        update_id += 1
        yield _edit(update_id, said, sent)


def _edit(update_id: int, said: Said, sent: dict[int, dict[str, Any]]) -> tuple[int, Update]:
    assert said.edited_at is not None
    body = {**sent[said.message_id], "edit_date": said.edited_at}
    return said.edited_at, Update.model_validate({"update_id": update_id, "edited_message": body})
