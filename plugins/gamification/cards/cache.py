"""Rendered cards kept in memory, keyed by everything they show, least recently used out."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from plugins.gamification.cards.card import CardData


@dataclass(slots=True)
class CachedCard:
    png: bytes
    # Telegram's id of the photo once sent: the same card is sent again by id, not uploaded.
    file_id: str | None = None


class CardCache:
    """The key is the whole CardData (name, numbers, labels in the reader's language, the
    photo's id), so a cached card can never show anything but what a fresh one would."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.renders = 0
        self._cards: OrderedDict[CardData, CachedCard] = OrderedDict()

    def get(self, data: CardData) -> CachedCard | None:
        found = self._cards.get(data)
        if found is not None:
            self._cards.move_to_end(data)
        return found

    def put(self, data: CardData, png: bytes) -> CachedCard:
        self.renders += 1
        card = self._cards[data] = CachedCard(png)
        self._cards.move_to_end(data)
        while len(self._cards) > self.size:
            self._cards.popitem(last=False)
        return card

    def __len__(self) -> int:
        return len(self._cards)
