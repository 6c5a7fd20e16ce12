"""What the gate remembers about each chat: who talked lately, and what was said (copies).

Presence: the last few (time, author) of the chat, to tell a conversation from a
monologue to an empty room, and a short answer in a conversation from padding.

Copies: the sketches of the chat's recent texts and media, with their authors. A message
like another person's recent one earns nothing. Finding candidates must not cost a
comparison per remembered message, so each sketch is indexed by its few smallest hashes:
two texts alike enough to be a copy share their smallest hashes with high probability
(bottom-k MinHash), and only texts sharing one are compared.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field

# Per chat: (time, author) of the latest messages, for presence.
PRESENCE = 24
# Smallest hashes of a sketch that index it for copy candidates.
INDEXED = 4


def hashes(packed: bytes) -> memoryview:
    """A remembered sketch's hashes (packed as int64s), read in place: no set is built."""
    return memoryview(packed).cast("q")


@dataclass(slots=True)
class ChatTrack:
    """One chat's recent presence and sketches; bounded by `memory` sketches."""

    memory: int
    seen: deque[tuple[float, int]] = field(default_factory=deque)
    # (entry number, time, author, packed sketch), oldest first.
    entries: deque[tuple[int, float, int, bytes]] = field(default_factory=deque)
    index: dict[int, list[int]] = field(default_factory=dict)
    serial: int = 0

    def saw(self, t: float, user: int) -> None:
        self.seen.append((t, user))
        while len(self.seen) > PRESENCE:
            self.seen.popleft()

    def others_within(self, user: int, t: float, seconds: float) -> int:
        """How many other people wrote here within `seconds` before `t`."""
        return len(self.people_within(user, t, seconds))

    def people_within(self, user: int, t: float, seconds: float) -> set[int]:
        """The other people who wrote here within `seconds` before `t`."""
        return {u for when, u in self.seen if u != user and t - seconds <= when <= t}

    def remember(self, t: float, user: int, shape: frozenset[int]) -> None:
        self.serial += 1
        self.entries.append((self.serial, t, user, array("q", shape).tobytes()))
        for h in sorted(shape)[:INDEXED]:
            self.index.setdefault(h, []).append(self.serial)
        while len(self.entries) > self.memory:
            number, _, _, packed = self.entries.popleft()
            for h in sorted(hashes(packed))[:INDEXED]:
                bucket = self.index.get(h)
                if bucket is not None:
                    if number in bucket:
                        bucket.remove(number)
                    if not bucket:
                        del self.index[h]

    def copy_candidates(
        self, shape: frozenset[int], user: int, t: float, window: float
    ) -> list[memoryview]:
        """Other people's sketches within `window` sharing one of `shape`'s smallest hashes,
        as their hashes read in place from the packed sketch (no set built per candidate)."""
        numbers = {n for h in sorted(shape)[:INDEXED] for n in self.index.get(h, ())}
        if not numbers:
            return []
        first = self.entries[0][0]
        found = []
        for number in numbers:
            _, when, author, packed = self.entries[number - first]
            if author != user and t - when <= window:
                found.append(hashes(packed))
        return found


class Chats:
    """Every chat's track, the least recently active dropped past `tracked`."""

    def __init__(self, tracked: int, memory: int) -> None:
        self.tracked = tracked
        self.memory = memory
        self._chats: OrderedDict[int, ChatTrack] = OrderedDict()

    def __len__(self) -> int:
        return len(self._chats)

    def adopt(self, chat_id: int, chat: ChatTrack, *, copies: bool) -> None:
        """Keep `chat` as the chat's state in memory (all of it, or with `copies` False only
        its presence): the shared backend's latest copy, for memory to take over from."""
        if copies:
            self._chats[chat_id] = chat
            self._chats.move_to_end(chat_id)
            if len(self._chats) > self.tracked:
                self._chats.popitem(last=False)
        else:
            self.get(chat_id).seen = chat.seen

    def get(self, chat_id: int) -> ChatTrack:
        track = self._chats.get(chat_id)
        if track is None:
            track = self._chats[chat_id] = ChatTrack(self.memory)
            if len(self._chats) > self.tracked:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return track
