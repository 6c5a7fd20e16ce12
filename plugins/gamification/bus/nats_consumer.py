"""One subscription of the NATS bus as a durable JetStream pull consumer, acknowledged late.

Every instance subscribing under the same name binds the same durable consumer, so each
event goes to one of them. An event is acknowledged only after its handler returned (for
the inbound rules: after the award is committed); a handler that raises gets a negative
acknowledgement with a growing delay, and an instance that dies holding events lets them
come back after the consumer's ack wait, to any instance. Delivery is therefore at least
once: handlers stay idempotent on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from plugins.gamification.bus.events import Event, Subscription

log = logging.getLogger(__name__)

# While handlers run, the next fetch waits only this long for more events; idle, a fetch
# waits for one event up to `poll` seconds (it returns as soon as one arrives).
BUSY_POLL = 0.05


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """What every consumer of one bus shares (taken from NatsOptions)."""

    stream: str
    ack_wait: float
    max_deliver: int | None
    # Events one instance handles at once per subscription.
    batch: int
    poll: float
    retry_delay: float
    max_retry_delay: float


class Broker(Protocol):
    """The bus side a consumer needs: the JetStream context once the stream is there."""

    async def jetstream(self) -> JetStreamContext:
        """Wait until connected with the stream ensured; raises BusClosedError on close."""
        ...

    def stream_lost(self) -> None:
        """The stream is gone (a new server without it): ensure it again."""
        ...


class DurableConsumer:
    """Fetches from one durable consumer and hands each event to one subscription."""

    def __init__(
        self,
        broker: Broker,
        subscription: Subscription,
        *,
        durable: str,
        subject: str,
        settings: ConsumerSettings,
    ) -> None:
        self.subscription = subscription
        self.durable = durable
        self.subject = subject
        self._broker = broker
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        # Set while bound to the consumer on the server (tests wait for it).
        self.bound = asyncio.Event()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"nats consumer {self.durable}")

    async def stop(self, grace: float) -> None:
        """Fetch no more; let the handlers running finish (within `grace` seconds), then cancel
        the rest, whose events are handed back at once for another instance to take."""
        self.subscription.active = False
        task, self._task = self._task, None
        if task is not None:
            await cancel(task, grace)
        if self._handling:
            await asyncio.wait(self._handling, timeout=grace)
        left = list(self._handling)
        for running in left:
            running.cancel()
        if left:
            await asyncio.wait(left)
            log.warning(
                "event bus: subscriber %s stopped with %d events unfinished; they are"
                " delivered again",
                self.subscription.name,
                len(left),
            )

    # -- binding and fetching ---------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            js = await self._broker.jetstream()
            pull: JetStreamContext.PullSubscription | None = None
            try:
                pull = await self._bind(js)
                if failures:
                    log.info("event bus: consumer %s is fetching again", self.durable)
                failures = 0
                self.bound.set()
                await self._pull(pull)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                failures += 1
                if isinstance(exc, nats.js.errors.NotFoundError):
                    self._broker.stream_lost()
                # One line per outage; the bus logs the connection's own state.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level, "event bus: consumer %s stopped (%s); retrying", self.durable, _why(exc)
                )
                await asyncio.sleep(min(0.1 * 2.0 ** min(failures, 10), 5.0))
            finally:
                self.bound.clear()
                if pull is not None:
                    with contextlib.suppress(Exception):
                        await pull.unsubscribe()

    async def _bind(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        settings = self._settings
        config = ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            description=f"{self.subscription.name} ({self.subscription.pattern})",
            # A consumer made for the first time starts at the oldest event the stream
            # keeps: events published before the first instance subscribed still count.
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.ack_wait,
            max_deliver=settings.max_deliver or -1,
            filter_subject=self.subject,
        )
        try:
            # Creating an existing consumer with the same settings changes nothing, so
            # instances starting together all succeed.
            await js.add_consumer(settings.stream, config)
        except nats.js.errors.BadRequestError as exc:
            # Made earlier with other settings (another version or config): use it as it
            # is rather than stop, and say so.
            await js.consumer_info(settings.stream, self.durable)
            log.warning(
                "event bus: consumer %s exists with other settings (%s); using it as it is",
                self.durable,
                exc.description or exc,
            )
        return await js.pull_subscribe_bind(durable=self.durable, stream=settings.stream)

    async def _pull(self, pull: JetStreamContext.PullSubscription) -> None:
        settings = self._settings
        while True:
            free = settings.batch - len(self._handling)
            if free <= 0:
                await asyncio.wait(self._handling, return_when=asyncio.FIRST_COMPLETED)
                continue
            busy = bool(self._handling)
            try:
                # Idle: one event, as soon as it comes (a batch would wait to fill up).
                # Busy: whatever is there now, to be handled alongside.
                messages = await pull.fetch(
                    free if busy else 1, timeout=BUSY_POLL if busy else settings.poll
                )
            except TimeoutError:  # nats' own TimeoutError derives from it
                if not busy:
                    # A pull from a consumer that is gone (deleted, or a server that lost
                    # its store) is never answered: ask after it while idle, so that a
                    # missing one raises NotFoundError and is made again.
                    await pull.consumer_info()
                continue
            for message in messages:
                task = asyncio.create_task(self._deliver(message), name=f"nats {self.durable}")
                self._handling.add(task)
                task.add_done_callback(self._handling.discard)

    # -- one event --------------------------------------------------------------------------

    async def _deliver(self, message: Msg) -> None:
        subscription = self.subscription
        try:
            event = Event.model_validate_json(message.data)
        except ValidationError as exc:
            subscription.failed += 1
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the message"
            log.warning(
                "event bus: a message on %s is not an event (%s: %s); dropped",
                message.subject,
                where,
                first["msg"],
            )
            await _settle(message.term)
            return
        if not subscription.matches(event.type):
            # The server's filter is broader than a glob like "game.round_*".
            await _settle(message.ack)
            return
        keepalive = asyncio.create_task(self._keep_alive(message))
        try:
            await subscription.handler(event)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Stopped mid-handler (closing): hand it back now, for any instance.
                subscription.dropped += 1
                await _settle(message.nak)
                raise
            await self._failed(message, event, "cancelled")
        except Exception as exc:
            await self._failed(message, event, f"{type(exc).__name__}: {exc}")
        else:
            subscription.delivered += 1
            # Only now: the handler returned, so what it did is committed.
            await _settle(message.ack)
        finally:
            keepalive.cancel()

    async def _failed(self, message: Msg, event: Event, why: str) -> None:
        self.subscription.failed += 1
        delivery = _deliveries(message)
        settings = self._settings
        delay = min(settings.retry_delay * 2.0 ** min(delivery - 1, 30), settings.max_retry_delay)
        log.error(
            "event bus: subscriber %s failed on event %s (%s), delivery %d: %s; delivered"
            " again in %.1fs",
            self.subscription.name,
            event.id,
            event.type,
            delivery,
            why,
            delay,
        )
        await _settle(message.nak, delay)

    async def _keep_alive(self, message: Msg) -> None:
        """Tell the server the event is being worked on, so a handler slower than the ack
        wait (a ledger retrying through a lock) does not get it delivered a second time."""
        while True:
            await asyncio.sleep(self._settings.ack_wait / 3)
            await _settle(message.in_progress)


async def cancel(task: asyncio.Task[None], grace: float) -> None:
    """Cancel `task` and wait for it, cancelling again until it ends (within `grace`): on
    Python 3.11 a wait_for() inside nats-py may swallow a cancellation that lands just as
    its inner future completes, and the task would carry on."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.05)
    if not task.done():
        log.warning("event bus: task %s did not stop in time", task.get_name())


def _deliveries(message: Msg) -> int:
    try:
        return max(message.metadata.num_delivered or 1, 1)
    except Exception:  # a message without JetStream metadata: count it as the first
        return 1


async def _settle(action: Callable[..., Awaitable[None]], *args: float) -> None:
    """Acknowledge one way or another; a connection lost meanwhile only means the server
    delivers the event again, which the handlers' idempotency makes harmless."""
    try:
        await action(*args)
    except (nats.errors.Error, OSError) as exc:
        log.debug("event bus: an acknowledgement was not sent: %s", _why(exc))


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
