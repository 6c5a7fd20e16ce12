"""Chat languages: what each chat's admins chose, read once and kept in a bounded cache.

Nothing here runs for a message that sends nothing: the Telegram side asks for a chat's
language only when it is about to send to that chat. A chat's choice is read from the ledger
the first time and then answered from memory for `ttl` seconds, so a choice made through
another instance sharing the ledger reaches this one within that time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from plugins.gamification.domain.clock import Clock, format_utc
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import AdminAction

CHAT_LANGUAGES_CACHE = 10_000
CHAT_LANGUAGE_TTL = 60.0


class ChatLanguages:
    """The language each chat's admins chose (None: each person's own)."""

    def __init__(
        self,
        store: LedgerStorage,
        clock: Clock,
        retry: StorageRetry,
        *,
        size: int = CHAT_LANGUAGES_CACHE,
        ttl: float = CHAT_LANGUAGE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._retry = retry
        self._size = size
        self._ttl = ttl
        self._monotonic = monotonic
        # chat -> (expires at, language or None); the oldest entries are dropped first.
        self._cache: OrderedDict[int, tuple[float, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    async def of(self, chat_id: int) -> str | None:
        """The chat's chosen language; None when it chose none."""
        now = self._monotonic()
        cached = self._cache.get(chat_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        language = await self._store.chat_language(chat_id)
        self._keep(chat_id, language, now)
        return language

    async def choose(self, chat_id: int, language: str | None, actor_id: int) -> None:
        """Store the chat's language (None: each person's own), audited as the admin's."""
        now = format_utc(self._clock.now())
        audit = AdminAction(chat_id, actor_id, "language", None, language or "auto")
        await self._retry(self._store.set_chat_language, chat_id, language, now, audit)
        self._keep(chat_id, language, self._monotonic())

    def _keep(self, chat_id: int, language: str | None, now: float) -> None:
        self._cache[chat_id] = (now + self._ttl, language)
        self._cache.move_to_end(chat_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
