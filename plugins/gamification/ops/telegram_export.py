"""Reading a Telegram Desktop chat export (`result.json`) one message at a time.

The file can be gigabytes: the header (name, type, id) is read by ijson's event parser up to
the messages array, and the messages are then built one by one by ijson's C backend, so
memory stays that of one message whatever the file's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson

from plugins.gamification.domain.errors import GamificationError

SUPERGROUP_TYPES = frozenset({"private_supergroup", "public_supergroup"})
GROUP_TYPES = frozenset({"private_group", "public_group"}) | SUPERGROUP_TYPES
# The Bot API's id of a supergroup is -100 followed by the id the export shows.
SUPERGROUP_OFFSET = 10**12
TAIL_BYTES = 64


class ExportError(GamificationError):
    """The file is not a readable Telegram Desktop chat export; the message says why."""


@dataclass(frozen=True, slots=True)
class ExportHeader:
    name: str
    type: str
    id: int

    @property
    def bot_api_id(self) -> int:
        """The chat's id as bots see it: -100<id> for a supergroup, -<id> for a group."""
        if self.type in SUPERGROUP_TYPES:
            return -(SUPERGROUP_OFFSET + self.id)
        return -self.id


class CountingReader:
    """A binary file that counts the bytes read from it, for the progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.position += len(data)
        return data


def read_header(path: Path) -> ExportHeader:
    """The export's chat, checked before anything is written; ExportError if it is none.

    Also checks the file's end: an export cut short (a copy interrupted) ends inside the
    messages, and is refused before a single message is replayed.
    """
    name, kind, chat_id, messages = None, None, None, False
    try:
        with path.open("rb") as raw:
            events = ijson.parse(raw)
            first = next(events, None)
            if first is None or first[1] != "start_map":
                raise ExportError(f"{path} is not a Telegram Desktop chat export (JSON).")
            for prefix, event, value in events:
                if prefix == "name" and event == "string":
                    name = value
                elif prefix == "type" and event == "string":
                    kind = value
                elif prefix == "id" and event == "number":
                    chat_id = value
                elif prefix == "messages" and event == "start_array":
                    messages = True
                    break
                elif prefix == "" and event == "end_map":
                    break
            raw.seek(max(0, os.fstat(raw.fileno()).st_size - TAIL_BYTES))
            tail = raw.read().rstrip()
    except ijson.JSONError:
        raise ExportError(f"{path} is not a Telegram Desktop chat export (not JSON).") from None
    except OSError as exc:
        raise ExportError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if not messages or not isinstance(chat_id, int) or not isinstance(kind, str):
        raise ExportError(
            f"{path} is not a Telegram Desktop chat export: it lacks the chat's id, type or"
            " messages (export one chat in the format 'Machine-readable JSON')."
        )
    if kind not in GROUP_TYPES:
        raise ExportError(
            f"{path} is the export of a {kind.replace('_', ' ')}, not of a group: only group"
            " messages earn points."
        )
    if not tail.endswith(b"}") or not tail[:-1].rstrip().endswith(b"]"):
        raise ExportError(
            f"{path} ends before its messages do: the file is cut short (copy it again)."
        )
    return ExportHeader(str(name or ""), kind, chat_id)


def read_messages(stream: CountingReader) -> Iterator[dict[str, Any]]:
    """Each message object of the export, in the file's order; ExportError if the JSON
    breaks off or goes wrong midway (what was replayed before stays: it is consistent)."""
    try:
        for item in ijson.items(stream, "messages.item", use_float=True):
            if isinstance(item, dict):
                yield item
    except ijson.JSONError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "not JSON"
        raise ExportError(
            f"The export's JSON breaks off near byte {stream.position:,} ({reason})."
        ) from None
