"""Bus events from other services turned into points: game, narrative, user and admin events.

An event whose write meets a lock or a full disk for longer than `[storage]
retry_seconds` is not dropped: it is parked in a bounded retry queue here and processed
again, with growing pauses, until it commits. Its id is the idempotency key, so however
often it is tried it ends in the ledger exactly once. The in-process bus's `publish()`
returns as soon as the event is queued (it never waits for subscribers), so its publisher
has nothing to do: holding the event until it commits is this subscriber's job.

A bus that redelivers (NatsBus: a durable consumer acknowledges an event only when its
handler returned) is given `process` instead of `handle`: it returns once the event's
outcome is committed and raises when it could not be, so the broker, not this process,
holds the event until it commits, and another instance may take it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from plugins.gamification.bus.events import Event
from plugins.gamification.domain.errors import (
    GamificationError,
    RequestError,
    TransientStorageError,
)
from plugins.gamification.domain.keys import event_key
from plugins.gamification.domain.models import Multiplier, TxKind
from plugins.gamification.services.runtime import Services

log = logging.getLogger(__name__)


class MalformedEventError(GamificationError):
    """A bus event lacks what its type needs; it is refused with one log line."""


def _int(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEventError(f"payload.{name} must be a whole number")
    return value


def _reason(payload: dict[str, Any], default: str) -> str:
    reason = payload.get("reason", default)
    if not isinstance(reason, str):
        raise MalformedEventError("payload.reason must be text")
    return reason


class InboundEvents:
    """Subscribed to the configured patterns; every event is processed at most once.

    The event id is the idempotency key, so a redelivered event changes nothing. Failures
    are counted and logged in one line; nothing here ever raises into the bus.
    """

    def __init__(
        self, services: Services, *, in_flight: int = 1000, max_parked: int = 10_000
    ) -> None:
        self.services = services
        self.counts: Counter[str] = Counter()
        # Events handed back by the retries, by id, until they commit (see the docstring).
        self._parked: dict[str, Event] = {}
        self._max_parked = max_parked
        self._retrying: asyncio.Task[None] | None = None
        # Awards are committed in batches only if many wait at once: the bus hands this
        # subscriber one event at a time, so each is processed in a task of its own, up to
        # `in_flight` at once (beyond that the bus worker waits, and the bus's bounded
        # queue takes over).
        self._slots = asyncio.Semaphore(in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, event: Event) -> None:
        """Start processing `event` and return; the bus's order is the order of starting."""
        await self._slots.acquire()
        task = asyncio.create_task(self._process(event), name=f"inbound {event.id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    @property
    def parked(self) -> int:
        """Events waiting for the ledger to be writable again."""
        return len(self._parked)

    async def drain(self) -> None:
        """Wait for every event already started and every parked one (on shutdown, in tests
        and the demo); parked events still unwritten after about the retry bound are given
        up with one log line."""
        try:
            async with asyncio.timeout(self.services.retry.bound + 5.0):
                while self._tasks or self._parked:
                    if self._tasks:
                        await asyncio.gather(*list(self._tasks), return_exceptions=True)
                    elif self._retrying is not None and not self._retrying.done():
                        await asyncio.wait({self._retrying})
                    else:
                        break  # never reached: a parked event always has a live retrier
        except TimeoutError:
            pass
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.wait({self._retrying})
            self._retrying = None
        if self._parked:
            log.error(
                "%d bus events were not recorded (the ledger stayed unavailable), e.g. %s",
                len(self._parked),
                next(iter(self._parked)),
            )
            self.counts["lost"] += len(self._parked)
            self._parked.clear()

    def _park(self, event: Event) -> None:
        if event.id not in self._parked and len(self._parked) >= self._max_parked:
            self.counts["dropped"] += 1
            log.error(
                "event %s (%s) dropped: %d events already wait for the ledger",
                event.id, event.type, len(self._parked),
            )  # fmt: skip
            return
        self._parked[event.id] = event
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._retry_parked(), name="inbound retries")

    async def _retry_parked(self) -> None:
        """Hand the parked events to processing again, pausing longer each round; each
        round's tries are themselves bounded by the retries, so this never spins."""
        rounds = 0
        while self._parked:
            await asyncio.sleep(self.services.retry.pause(rounds))
            rounds += 1
            events = list(self._parked.values())
            self._parked.clear()
            for event in events:
                await self.handle(event)
            # Wait for the round: an event that fails again parks itself again.
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def process(self, event: Event) -> None:
        """Process `event` now and return once its outcome is committed (for a bus that
        acknowledges an event when its handler returned, and redelivers it otherwise).

        A malformed or refused event returns after one log line: delivering it again would
        change nothing. Anything else raises, the ledger staying unavailable past the retry
        bound (TransientStorageError) or the engine closing at shutdown among them: the
        event is not parked here, the bus delivers it again later (maybe to another
        instance), and its id keeps a second delivery from counting twice.
        """
        try:
            outcome = await self._handle(event)
        except (MalformedEventError, RequestError) as exc:
            self._refused(event, exc)
            return
        except GamificationError:
            self.counts["deferred"] += 1
            raise
        self.counts[outcome] += 1

    async def _process(self, event: Event) -> None:
        try:
            outcome = await self._handle(event)
        except TransientStorageError:
            # Retried to the bound already; the outage is logged once by the store.
            self._park(event)
            return
        except GamificationError as exc:
            self._refused(event, exc)
            return
        self.counts[outcome] += 1

    def _refused(self, event: Event, exc: GamificationError) -> None:
        kind = "malformed" if isinstance(exc, MalformedEventError) else "refused"
        self.counts[kind] += 1
        log.warning("event %s (%s) %s: %s", event.id, event.type, kind, exc)

    async def _handle(self, event: Event) -> str:
        if event.type.startswith("admin."):
            return await self._admin(event)
        rule = self.services.config.events.rule(event.type)
        if rule is None:
            log.debug("event %s of unknown type %s ignored", event.id, event.type)
            return "unknown"
        chat_id, user_id = self._account(event)
        if self.services.moderation.is_frozen(chat_id, user_id):
            return "frozen"
        multipliers = []
        if rule.multiplier != 1:
            multipliers.append(Multiplier(event.type, rule.multiplier))
        multipliers += self.services.multipliers.for_event(chat_id, event.occurred_at)
        receipt = await self.services.retry(
            self.services.engine.award,
            chat_id,
            user_id,
            rule.points,
            key=event_key(event.id),
            kind=TxKind.EVENT,
            reason=_reason(event.payload, event.type),
            multipliers=multipliers,
            tag=event.type,
        )
        return "duplicate" if receipt.duplicate else "awarded"

    @staticmethod
    def _account(event: Event) -> tuple[int, int]:
        if event.chat_id is None or event.user_id is None:
            raise MalformedEventError("the event needs chat_id and user_id")
        return event.chat_id, event.user_id

    async def _admin(self, event: Event) -> str:
        """admin.award / admin.deduct {amount, actor_id, reason}, admin.revert {tx_id, ...}."""
        payload, engine = event.payload, self.services.engine
        actor = _int(payload, "actor_id")
        key = event_key(event.id)
        if event.type == "admin.revert":
            tx_id = _int(payload, "tx_id")
            receipt = await self.services.retry(
                engine.revert,
                tx_id, key=key, actor_id=actor, reason=_reason(payload, ""), chat_id=event.chat_id,
            )  # fmt: skip
        elif event.type in ("admin.award", "admin.deduct"):
            chat_id, user_id = self._account(event)
            amount = _int(payload, "amount")
            if amount <= 0:
                raise MalformedEventError("payload.amount must be above zero")
            if amount > self.services.config.admin.max_grant:
                raise MalformedEventError(
                    f"payload.amount is over the cap of {self.services.config.admin.max_grant}"
                )
            delta = amount if event.type == "admin.award" else -amount
            receipt = await self.services.retry(
                engine.adjust,
                chat_id,
                user_id,
                delta,
                key=key,
                actor_id=actor,
                reason=_reason(payload, ""),
                force=payload.get("force") is True,
            )
        else:
            return "unknown"
        return "duplicate" if receipt.duplicate else "awarded"
