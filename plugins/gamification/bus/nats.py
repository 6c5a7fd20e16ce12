"""NatsBus: the EventBus on NATS JetStream, shared by every bot instance and other services.

Events travel on `<subject_prefix>.<event type>` (bot.events.game.won) in one stream that
the bus creates or brings up to date. `publish` waits for JetStream's acknowledgement,
with the event id as `Nats-Msg-Id`, so a second publish of an event within the stream's
duplicate window is dropped by the server; past the window, consumers still count an
event id once (it is the ledger's idempotency key). Subscriptions are durable consumers
shared by name across instances (see nats_consumer.py).

NATS being unreachable never stops the bot: the bus connects and reconnects in the
background, `publish` fails at once (the outbox relay keeps the row and tries again), and
one warning is logged per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from plugins.gamification.bus.events import (
    BusClosedError,
    BusUnavailableError,
    Event,
    EventHandler,
    Subscription,
)
from plugins.gamification.bus.nats_consumer import ConsumerSettings, DurableConsumer, cancel

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
# JetStream's "stream name already in use with a different configuration".
STREAM_NAME_IN_USE = 10058
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# A token an event type can have (see EVENT_TYPE_PATTERN): a pattern token that is one of
# these, and no glob, can go into the server's filter as it is.
_TYPE_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class NatsOptions:
    """Where the bus lives and how it behaves: the host's `[events]` keys and a few more."""

    url: str = "nats://127.0.0.1:4222"
    stream: str = "GAMIFICATION"
    subject_prefix: str = "bot.events"
    durable_prefix: str = "bot"
    duplicate_window: float = 120.0
    max_age: float = 7 * 86_400.0
    ack_wait: float = 30.0
    # None: a failing event is delivered again for as long as the stream keeps it.
    max_deliver: int | None = None
    publish_timeout: float = 2.0
    # Events one instance handles at once per subscription.
    batch: int = 64
    poll: float = 5.0
    # The first redelivery of a failed event waits this long; each next one twice as long.
    retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    connect_timeout: int = 2
    reconnect_wait: int = 1
    close_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.stream) or not _NAME.match(self.durable_prefix):
            raise ValueError("A NATS stream or consumer prefix is letters, digits, '_', '-'.")
        if not _PREFIX.match(self.subject_prefix):
            raise ValueError("A NATS subject prefix is dot-separated words, with no wildcards.")
        if not self.servers:
            raise ValueError("The NATS URL names no server.")
        if min(self.duplicate_window, self.ack_wait, self.publish_timeout, self.poll) <= 0:
            raise ValueError("NATS timeouts and the duplicate window must be above zero.")
        if self.batch < 1 or (self.max_deliver is not None and self.max_deliver < 1):
            raise ValueError("The NATS batch and max_deliver must be at least 1.")
        if self.duplicate_window > self.max_age:
            raise ValueError("The duplicate window must not be longer than the stream keeps.")

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]

    @property
    def where(self) -> str:
        """The servers without any password, for log lines."""
        return ",".join(redact(server) for server in self.servers)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def subject_of(prefix: str, event_type: str) -> str:
    return f"{prefix}.{event_type}"


def filter_subject(prefix: str, pattern: str) -> str:
    """The server-side filter for a subscription's glob: exact where the glob is literal,
    `>` from its first wildcard on (fnmatch's `*` crosses dots, NATS's does not). The
    consumer checks the glob itself too, so a broader filter only costs a few acks."""
    tokens = [prefix]
    for token in pattern.split("."):
        if not _TYPE_TOKEN.match(token):
            tokens.append(">")
            break
        tokens.append(token)
    return ".".join(tokens)


def durable_name(prefix: str, name: str) -> str:
    """`<prefix>_<name>` with what NATS refuses in a name replaced; a short hash of the
    original is added then, so two names never end up as one consumer."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    if cleaned != name:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        cleaned = f"{cleaned}_{digest}" if cleaned else digest
    return f"{prefix}_{cleaned}"


class NatsBus:
    """An EventBus on NATS JetStream; `start()` it inside the running loop.

    Implements the EventBus protocol. Unlike the in-process bus, `publish` waits for the
    server's acknowledgement (and raises BusUnavailableError when it cannot have it), and a
    handler that raises gets its event again later (`redelivers`).
    """

    redelivers = True

    def __init__(self, options: NatsOptions | None = None) -> None:
        self.options = options or NatsOptions()
        self._settings = ConsumerSettings(
            stream=self.options.stream,
            ack_wait=self.options.ack_wait,
            max_deliver=self.options.max_deliver,
            batch=self.options.batch,
            poll=self.options.poll,
            retry_delay=self.options.retry_delay,
            max_retry_delay=self.options.max_retry_delay,
        )
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumers: dict[str, DurableConsumer] = {}
        self._closed = False
        # Whether the current outage was logged: one warning per outage, not per attempt.
        self._outage = False
        self.published = 0
        self.duplicates = 0

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(consumer.subscription for consumer in self._consumers.values())

    @property
    def consumers(self) -> tuple[DurableConsumer, ...]:
        return tuple(self._consumers.values())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ready(self) -> bool:
        """Connected, with the stream in place: publishing can succeed."""
        client = self._client
        return self._ready.is_set() and client is not None and client.is_connected

    def start(self) -> None:
        """Connect in the background (never waits for NATS) and start every consumer."""
        if self._closed:
            raise BusClosedError("The event bus is closed.")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="nats event bus")
        for consumer in self._consumers.values():
            consumer.start()

    async def wait_ready(self) -> None:
        """Wait until publishing can succeed (for tools and tests; bound it with a timeout)."""
        await self._ready.wait()

    # -- the EventBus protocol --------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Store `event` in the stream; returns once JetStream acknowledged it (a duplicate
        of an id within the window is acknowledged too, and dropped by the server)."""
        if self._closed:
            raise BusClosedError(f"The event bus is closed; event {event.id} was not published.")
        js = self._js
        if js is None or not self.ready:
            # Fail at once: the relay keeps the row and tries again with its backoff.
            raise BusUnavailableError(
                f"NATS at {self.options.where} is not reachable; event {event.id} waits."
            )
        options = self.options
        try:
            ack = await js.publish(
                subject_of(options.subject_prefix, event.type),
                event.model_dump_json().encode(),
                timeout=options.publish_timeout,
                stream=options.stream,
                headers={MSG_ID: event.id},
            )
        except (nats.js.errors.NoStreamResponseError, nats.js.errors.NotFoundError) as exc:
            self.stream_lost()
            raise BusUnavailableError(
                f"NATS has no stream {options.stream} now; event {event.id} waits."
            ) from exc
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BusUnavailableError(
                f"NATS did not confirm event {event.id}: {type(exc).__name__} {exc}".strip()
            ) from exc
        self.published += 1
        if ack.duplicate:
            self.duplicates += 1

    def subscribe(
        self, pattern: str, handler: EventHandler, *, name: str | None = None
    ) -> Subscription:
        """A durable consumer named after `name`, shared with every instance using it."""
        if self._closed:
            raise BusClosedError("The event bus is closed and accepts no more subscriptions.")
        if not pattern:
            raise ValueError("A subscription needs a non-empty pattern, e.g. 'game.*' or '*'.")
        label = name or getattr(handler, "__qualname__", None) or repr(handler)
        durable = durable_name(self.options.durable_prefix, label)
        if durable in self._consumers:
            raise ValueError(
                f"A subscription named {label!r} exists already: instances share a durable"
                " consumer by its name, so each subscription needs a name of its own."
            )
        subscription = Subscription(pattern, handler, label)
        consumer = DurableConsumer(
            self,
            subscription,
            durable=durable,
            subject=filter_subject(self.options.subject_prefix, pattern),
            settings=self._settings,
        )
        self._consumers[durable] = consumer
        if self._task is not None:
            consumer.start()
        return subscription

    async def close(self) -> None:
        """Stop fetching, let running handlers finish and acknowledge (within the close
        timeout), then drain and close the connection. Publish raises afterwards."""
        if self._closed:
            return
        self._closed = True
        timeout = self.options.close_timeout
        await asyncio.gather(*(c.stop(timeout) for c in self._consumers.values()))
        task, self._task = self._task, None
        if task is not None:
            await cancel(task, timeout)
        self._ready.clear()
        client, self._client, self._js = self._client, None, None
        if client is None:
            return
        if client.is_connected:
            # Sends the acknowledgements still buffered, then closes.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await client.drain()
        if not client.is_closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await client.close()

    # -- the Broker side the consumers use --------------------------------------------------

    async def jetstream(self) -> JetStreamContext:
        while True:
            if self._closed:
                raise BusClosedError("The event bus is closed.")
            await self._ready.wait()
            if self._js is not None:
                return self._js

    def stream_lost(self) -> None:
        self._lost.set()

    # -- connection -------------------------------------------------------------------------

    async def _run(self) -> None:
        options = self.options
        client = Client()
        self._client = client
        # With no limit on attempts, connect() itself waits for the first server to answer.
        await client.connect(
            servers=options.servers,
            name="aiogram-gamification",
            connect_timeout=options.connect_timeout,
            reconnect_time_wait=options.reconnect_wait,
            max_reconnect_attempts=-1,
            drain_timeout=max(int(options.close_timeout), 1),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._back()
        js = client.jetstream(timeout=options.publish_timeout)
        failures = 0
        while True:
            try:
                await self._ensure_stream(js)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "event bus: stream %s on NATS at %s cannot be set up (%s); retrying",
                    options.stream,
                    options.where,
                    exc,
                )
                await asyncio.sleep(min(0.5 * 2.0 ** min(failures, 10), 30.0))
                continue
            failures = 0
            self._js = js
            self._lost.clear()
            self._ready.set()
            await self._lost.wait()
            self._ready.clear()

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream, or bring an existing one's subjects, window and age up to
        ours. Creating a stream that exists with the same settings changes nothing, so
        instances starting together all succeed."""
        options = self.options
        ours = f"{options.subject_prefix}.>"
        config = StreamConfig(
            name=options.stream,
            description="Events between the bot's plugins and other services",
            subjects=[ours],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=options.duplicate_window,
            max_age=options.max_age,
        )
        try:
            await js.add_stream(config)
            return
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
        current = (await js.stream_info(options.stream)).config
        subjects = list(current.subjects or [])
        if ours in subjects and (current.duplicate_window, current.max_age) == (
            options.duplicate_window,
            options.max_age,
        ):
            return  # the same in what matters here; other settings are the operator's
        if ours not in subjects:
            subjects.append(ours)
        await js.update_stream(
            current.evolve(
                subjects=subjects,
                duplicate_window=options.duplicate_window,
                max_age=options.max_age,
            )
        )
        log.info("event bus: stream %s updated to this bot's settings", options.stream)

    async def _on_error(self, exc: Exception) -> None:
        if not self._outage:
            self._outage = True
            log.warning(
                "event bus: NATS at %s is not reachable (%s); events wait in the outbox and"
                " go out once it is back",
                self.options.where,
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            )
        else:
            log.debug("event bus: NATS error: %r", exc)

    async def _on_disconnected(self) -> None:
        if not self._outage and not self._closed:
            self._outage = True
            log.warning(
                "event bus: lost the connection to NATS at %s; reconnecting (events wait in"
                " the outbox)",
                self.options.where,
            )

    async def _on_reconnected(self) -> None:
        self._back()

    def _back(self) -> None:
        if self._outage:
            log.info("event bus: connected to NATS at %s again", self.options.where)
        self._outage = False
