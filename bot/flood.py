"""Keeps the bot inside Telegram's flood limits: paces sends per chat, honours RetryAfter."""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import insort
from collections import OrderedDict, deque
from collections.abc import Callable

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)

MAX_TRACKED_CHATS = 10_000


class _Window:
    """At most `limit` events per `period` seconds, as a sliding window of send times."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self.times: deque[float] = deque()

    def delay(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[0] + self.period - now


class FloodControl(BaseRequestMiddleware):
    """Request middleware for every method that posts into a chat.

    Groups get at most `group_limit` messages per minute and the bot `global_limit` per
    second, as Telegram documents; a `TelegramRetryAfter` is waited out and retried up to
    `retries` times when the wait is at most `max_wait` seconds, else it is raised.
    """

    def __init__(
        self,
        *,
        group_limit: int = 20,
        global_limit: int = 30,
        retries: int = 2,
        max_wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group_limit, self.retries, self.max_wait = group_limit, retries, max_wait
        self._clock = clock
        self._global = _Window(global_limit, 1.0)
        self._chats: OrderedDict[int, _Window] = OrderedDict()
        self._lock = asyncio.Lock()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        chat_id = getattr(method, "chat_id", None)
        if isinstance(chat_id, int) and method.__api_method__.startswith("send"):
            await self._pace(chat_id)
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= self.retries or exc.retry_after > self.max_wait:
                    raise
                attempt += 1
                name = method.__api_method__
                log.warning(
                    "flood control: waiting %s s before retrying %s", exc.retry_after, name
                )
                await asyncio.sleep(exc.retry_after)

    async def _pace(self, chat_id: int) -> None:
        # One lock, held only to reserve a slot: the sleep itself happens outside it.
        async with self._lock:
            now = self._clock()
            window = self._chats.get(chat_id)
            if window is None and chat_id < 0:
                window = self._chats[chat_id] = _Window(self.group_limit, 60.0)
                if len(self._chats) > MAX_TRACKED_CHATS:
                    self._chats.popitem(last=False)
            wait = self._global.delay(now)
            if window is not None:
                self._chats.move_to_end(chat_id)
                wait = max(wait, window.delay(now))
            slot = now + wait
            # Reserved slots can lie in the future and arrive out of order across chats.
            insort(self._global.times, slot)
            if window is not None:
                insort(window.times, slot)
        if wait > 0:
            await asyncio.sleep(wait)
