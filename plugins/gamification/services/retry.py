"""StorageRetry: a write that meets a fault which may pass is tried again, for a bounded time.

A lock held by another process past the busy timeout, a full disk or an I/O error fails
a write with a TransientStorageError and writes nothing. Scoring must not lose the points
to it: the write is tried again after exponentially growing, jittered pauses for up to
`[storage] retry_seconds`. Past that it raises StorageUnavailableError, whose
`retry_update` asks the host to deliver the Telegram update again later (the inbound bus
events park the event instead), so a longer outage delays points and never drops them.
Each try is itself bounded (the busy timeout, the store's write timeout), so every wait
here ends.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from plugins.gamification.domain.errors import StorageUnavailableError, TransientStorageError
from plugins.gamification.storage.health import StorageHealth

P = ParamSpec("P")
T = TypeVar("T")

FIRST_DELAY = 0.05
MAX_DELAY = 5.0


class StorageRetry:
    """Call `retry(fn, *args, **kwargs)` instead of `await fn(*args, **kwargs)` for a write.

    The first try costs one extra frame; only a failed try pays for the rest.
    """

    def __init__(
        self,
        health: StorageHealth,
        *,
        bound: float = 30.0,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.health = health
        self.bound = bound
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._jitter = jitter
        self._ids = itertools.count()

    async def __call__(
        self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        try:
            return await fn(*args, **kwargs)
        except TransientStorageError as exc:
            first = exc
        return await self._again(first, fn, *args, **kwargs)

    def pause(self, attempt: int) -> float:
        """The pause before try `attempt` + 1: doubling from first_delay up to max_delay,
        drawn from its upper half, so callers that failed together do not retry together."""
        ceiling = min(self.max_delay, self.first_delay * 2.0 ** min(attempt, 60))
        return ceiling * (0.5 + 0.5 * self._jitter())

    async def _again(
        self,
        error: TransientStorageError,
        fn: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        health = self.health
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bound
        me = next(self._ids)
        attempt = 0
        while True:
            health.failed(error)
            if isinstance(error, StorageUnavailableError):
                raise error  # a nested retry already waited its bound
            delay = self.pause(attempt)
            if loop.time() + delay > deadline:
                health.gave_up()
                cause = str(error).rstrip(".")
                raise StorageUnavailableError(
                    f"The points ledger could not be written for {self.bound:g} s"
                    f" ({cause}); it will be tried again later."
                ) from error
            health.delayed(me)
            await asyncio.sleep(delay)
            attempt += 1
            try:
                result = await fn(*args, **kwargs)
            except TransientStorageError as exc:
                error = exc
                continue
            health.recovered()
            return result
