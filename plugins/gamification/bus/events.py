"""Events between plugins: the Event record, the EventBus protocol and the in-process bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Annotated, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.errors import GamificationError

log = logging.getLogger(__name__)

# "namespace.name" with at least one dot, so subscriptions can select a namespace by glob.
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

EventType = Annotated[str, StringConstraints(max_length=100, pattern=EVENT_TYPE_PATTERN)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class BusClosedError(GamificationError):
    """The event bus was closed; it accepts no more events or subscriptions."""


class BusUnavailableError(GamificationError):
    """The event bus cannot take the event now (its broker is unreachable); publish it later.

    The outbox relay keeps the event's row pending and tries again, so nothing is lost.
    """


class Event(BaseModel):
    """Something that happened, addressed by type; `id` is unique and is the idempotency key.

    Delivery is at least once, so a consumer that changes anything must be idempotent on `id`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EventId
    type: EventType
    occurred_at: AwareDatetime
    chat_id: int | None = None
    user_id: int | None = None
    payload: dict[str, JsonValue] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        type: str,
        *,
        chat_id: int | None = None,
        user_id: int | None = None,
        payload: dict[str, JsonValue] | None = None,
        clock: Clock | None = None,
    ) -> Event:
        """A fresh event with a random id, stamped now by `clock`."""
        return cls(
            id=uuid.uuid4().hex,
            type=type,
            occurred_at=(clock or SystemClock()).now(),
            chat_id=chat_id,
            user_id=user_id,
            payload=payload or {},
        )


EventHandler = Callable[[Event], Awaitable[None]]


def redelivers(bus: object) -> bool:
    """Whether `bus` delivers an event again when its handler raises (a durable bus, such as
    NatsBus, sets `redelivers = True`).

    Such a bus acknowledges an event only once its handler returned, so a handler that
    changes anything must return only after the change is committed, and raise to have the
    event delivered again later. The in-process bus never redelivers.
    """
    return getattr(bus, "redelivers", False) is True


# Distinct event types whose matching subscriptions the in-process bus remembers.
MATCH_CACHE = 1024


class Subscription:
    """One subscriber: which event types it wants and what happened to the events it matched.

    `delivered`: the handler returned; `failed`: the handler raised; `dropped`: the event never
    reached the handler (its queue was full, or the bus closed or unsubscribed it first).
    """

    __slots__ = ("active", "delivered", "dropped", "failed", "handler", "name", "pattern")

    def __init__(self, pattern: str, handler: EventHandler, name: str) -> None:
        self.pattern = pattern
        self.handler = handler
        self.name = name
        self.active = True
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def matches(self, event_type: str) -> bool:
        return fnmatchcase(event_type, self.pattern)

    def __repr__(self) -> str:
        return (
            f"Subscription({self.name!r}, {self.pattern!r}, delivered={self.delivered},"
            f" failed={self.failed}, dropped={self.dropped})"
        )


class EventBus(Protocol):
    """Publish/subscribe by event type glob. The in-process bus is the embedded default."""

    async def publish(self, event: Event) -> None:
        """Hand the event to every matching subscription; never waits for their handlers."""
        ...

    def subscribe(
        self, pattern: str, handler: EventHandler, *, name: str | None = None
    ) -> Subscription:
        """Call `handler` for every later event whose type matches the glob `pattern`."""
        ...

    async def close(self) -> None:
        """Deliver what is queued (within a timeout), then stop; publish raises afterwards."""
        ...


class _Route:
    """The in-process machinery behind one subscription: its queue and its worker."""

    __slots__ = ("queue", "streak", "task", "unfinished")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.task: asyncio.Task[None] | None = None
        # Queued plus in the handler: drain() is done only when this is zero everywhere.
        self.unfinished = 0
        # Drops since the last event that fit, so a slow subscriber logs once per stall.
        self.streak = 0


class InProcessBus:
    """An EventBus inside this process: one bounded queue and one worker per subscription.

    Each subscription sees events in publish order and runs concurrently with the others.
    Publishing never waits for a subscriber: a subscription whose queue is full loses that
    event (counted in its `dropped`), and a handler that raises is counted in `failed`;
    neither affects the publisher or any other subscription.
    """

    # A handler that raised has lost that event: nothing delivers it again.
    redelivers = False

    def __init__(self, *, queue_size: int = 1000, timeout: float = 5.0) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        # How long close(), unsubscribe() and drain() wait for subscribers to catch up.
        self._timeout = timeout
        self._routes: dict[Subscription, _Route] = {}
        # Event type -> the routes whose pattern matches it, in subscription order; emptied
        # whenever a subscription comes or goes. A busy bot publishes a handful of types
        # thousands of times, and each glob match costs more than the put itself.
        self._matching: dict[str, tuple[tuple[Subscription, _Route], ...]] = {}
        self._closed = False
        self.published = 0

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._routes)

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(
        self, pattern: str, handler: EventHandler, *, name: str | None = None
    ) -> Subscription:
        if self._closed:
            raise BusClosedError("The event bus is closed and accepts no more subscriptions.")
        if not pattern:
            raise ValueError("A subscription needs a non-empty pattern, e.g. 'game.*' or '*'.")
        label = name or getattr(handler, "__qualname__", None) or repr(handler)
        subscription = Subscription(pattern, handler, label)
        route = _Route(self._queue_size)
        self._routes[subscription] = route
        self._matching.clear()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # Subscribed before the loop runs: the first matching publish starts the worker.
        else:
            self._start(subscription, route)
        return subscription

    async def publish(self, event: Event) -> None:
        if self._closed:
            raise BusClosedError(f"The event bus is closed; event {event.id} was not published.")
        self.published += 1
        # No await between the checks and the puts: every queue receives events in the same
        # order publish was called, which is what gives each subscriber publish order.
        matching = self._matching.get(event.type)
        if matching is None:
            if len(self._matching) >= MATCH_CACHE:
                self._matching.clear()  # types are free-form: never let them pile up
            matching = self._matching[event.type] = tuple(
                (subscription, route)
                for subscription, route in self._routes.items()
                if subscription.matches(event.type)
            )
        for subscription, route in matching:
            if route.task is None:
                self._start(subscription, route)
            try:
                route.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.dropped += 1
                route.streak += 1
                if route.streak == 1:
                    log.warning(
                        "event bus: subscriber %s is %d events behind; dropping event %s (%s)"
                        " and any more until it catches up",
                        subscription.name,
                        route.queue.qsize(),
                        event.id,
                        event.type,
                    )
                continue
            route.unfinished += 1
            if route.streak:
                log.info(
                    "event bus: subscriber %s caught up after %d dropped events",
                    subscription.name,
                    route.streak,
                )
                route.streak = 0

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop routing to `subscription` now; let it finish what it queued, within the timeout."""
        route = self._routes.pop(subscription, None)
        if route is None:
            return
        self._matching.clear()
        await self._retire([(subscription, route)])

    async def drain(self) -> None:
        """Wait until every queue is empty and every handler has returned.

        Raises TimeoutError when that does not happen within the bus's timeout.
        """
        async with asyncio.timeout(self._timeout):
            # A handler may publish again, into a queue this pass already waited for.
            while any(route.unfinished for route in self._routes.values()):
                for route in list(self._routes.values()):
                    await route.queue.join()

    async def close(self) -> None:
        """Refuse new events, deliver what is queued within the timeout, stop every worker."""
        if self._closed:
            return
        self._closed = True
        routes = list(self._routes.items())
        self._routes.clear()
        self._matching.clear()
        await self._retire(routes)

    def _start(self, subscription: Subscription, route: _Route) -> None:
        route.task = asyncio.create_task(
            self._work(subscription, route), name=f"event-bus:{subscription.name}"
        )

    async def _retire(self, routes: list[tuple[Subscription, _Route]]) -> None:
        for subscription, _ in routes:
            subscription.active = False
        # One deadline for all of them: close() must return in bounded time.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                for _, route in routes:
                    await route.queue.join()
        tasks = [r.task for _, r in routes if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self._timeout)
        for subscription, route in routes:
            left = route.queue.qsize()
            if left:
                subscription.dropped += left
                log.warning(
                    "event bus: subscriber %s stopped with %d events undelivered",
                    subscription.name,
                    left,
                )

    @staticmethod
    async def _work(subscription: Subscription, route: _Route) -> None:
        queue = route.queue
        while True:
            event = await queue.get()
            try:
                await subscription.handler(event)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    subscription.dropped += 1  # stopped by close() or unsubscribe() mid-handler
                    raise
                # The handler's own cancelled await must not end this subscription's worker.
                subscription.failed += 1
                log.error(
                    "event bus: subscriber %s was cancelled on event %s (%s)",
                    subscription.name,
                    event.id,
                    event.type,
                )
            except Exception as exc:
                subscription.failed += 1
                log.error(
                    "event bus: subscriber %s failed on event %s (%s): %s: %s",
                    subscription.name,
                    event.id,
                    event.type,
                    type(exc).__name__,
                    exc,
                )
            else:
                subscription.delivered += 1
            finally:
                route.unfinished -= 1
                queue.task_done()
