"""The engagement book shared by bot instances through the anti-abuse gate's Redis, with this
process's own `EngagementBook` standing in while Redis is away.

Which recent message a reply or a reaction engages, what each member gave today and which
reactions wait to settle live under the gate's key prefix (redis_keys.py). A message is
remembered, and a reaction added or taken back, by one Lua script each; a response is
decided by the same `respond_on` as in memory on the message and giver as loaded, and
written back only if neither changed meanwhile (else loaded and decided again); settling
takes the due reactions out in one script, so each settles on exactly one instance.

It uses the gate's connection, timeouts and fallback (redis_gate.py): when Redis does not
answer, the gate logs its one warning and counts the fallback, and the book works on this
instance's memory until the gate sees Redis again. What this instance remembered in Redis
is mirrored into its memory (messages, and which were engaged), so replies to them still
count while Redis is away; reactions pending in memory then settle when they are due,
against Redis once it is back.
"""

from __future__ import annotations

from typing import Any, Protocol

from plugins.gamification.domain.engagement import (
    EngagementBook,
    Giver,
    Outcome,
    Posted,
    respond_on,
)
from plugins.gamification.domain.engagement_codec import (
    MAX_REACTORS,
    decode_giver,
    decode_posted,
    encode_giver,
    encode_posted,
)
from plugins.gamification.domain.gate_codec import CodecError
from plugins.gamification.services.redis_keys import (
    DUE,
    POSTED,
    REACT,
    RESPONDED,
    RESPONSE,
    BookLifetimes,
    Keys,
    StoreUnavailable,
)

# Responses that met this many conflicts in a row are decided in memory (as the gate does).
CAS_ATTEMPTS = 16


class SharedRedis(Protocol):
    """What the book needs of the gate's Redis state (RedisGateState)."""

    keys: Keys
    conflicts: int

    @property
    def up(self) -> bool: ...

    def register(self, source: str) -> Any: ...

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any: ...

    def unreadable(self, exc: CodecError) -> None: ...


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else value or ""


class RedisEngagementBook:
    """`EngagementBook`'s operations on the shared store, or on `memory` while it is away."""

    def __init__(self, redis: SharedRedis, memory: EngagementBook) -> None:
        self.redis = redis
        self.memory = memory
        self.keys = redis.keys
        self.life = BookLifetimes.of(memory.engagement, memory.reactions)
        self._posted = redis.register(POSTED)
        self._response = redis.register(RESPONSE)
        self._responded = redis.register(RESPONDED)
        self._react = redis.register(REACT)
        self._due = redis.register(DUE)

    async def posted(
        self, chat_id: int, message_id: int, author: int, at: float, base: int
    ) -> None:
        self.memory.posted(chat_id, message_id, author, at, base)
        if not self.redis.up:
            return
        keys = self.keys
        try:
            await self.redis.run(
                self._posted,
                [keys.book(chat_id), keys.booked(chat_id)],
                [
                    message_id,
                    encode_posted(Posted(author, at, base)),
                    repr(at),
                    repr(at - self.life.reach),
                    self.memory.engagement.tracked_messages,
                    self.life.book,
                ],
            )
        except StoreUnavailable:
            return

    async def lookup(self, chat_id: int, message_id: int, at: float) -> Posted | None:
        if self.redis.up:
            try:
                text, _ = await self._load(chat_id, message_id, 0)
            except StoreUnavailable:
                return self.memory.lookup(chat_id, message_id, at)
            posted = self._decode(text)
            if posted is None or at - posted.at > self.memory.engagement.window_seconds:
                return None
            return posted
        return self.memory.lookup(chat_id, message_id, at)

    async def respond(
        self, chat_id: int, message_id: int, responder: int, day: str, *, reaction: bool
    ) -> Outcome | None:
        if self.redis.up:
            try:
                for _ in range(CAS_ATTEMPTS):
                    decided, outcome = await self._respond(
                        chat_id, message_id, responder, day, reaction
                    )
                    if decided:
                        return outcome
                    self.redis.conflicts += 1
            except StoreUnavailable:
                pass
        return self.memory.respond(chat_id, message_id, responder, day, reaction=reaction)

    async def _respond(
        self, chat_id: int, message_id: int, responder: int, day: str, reaction: bool
    ) -> tuple[bool, Outcome | None]:
        """(True, the outcome) when decided; (False, None) when another instance changed
        the message or the giver before this decision could be written."""
        text, given = await self._load(chat_id, message_id, responder)
        posted = self._decode(text)
        if posted is None or posted.author == responder:
            return True, None
        giver = Giver()
        if given:
            try:
                giver = decode_giver(given)
            except CodecError as exc:
                self.redis.unreadable(exc)
        giver.on(day)
        memory = self.memory
        outcome = respond_on(
            posted, giver, memory.engagement, memory.reactions, chat_id, message_id, responder,
            reaction=reaction,
        )  # fmt: skip
        if outcome is None:
            return True, None
        keys = self.keys
        stored = await self.redis.run(
            self._responded,
            [keys.book(chat_id), keys.giver(chat_id, responder)],
            [
                message_id,
                text,
                encode_posted(posted) if outcome.bonus else text,
                given,
                encode_giver(giver),
                self.life.giver,
            ],
        )
        if not stored:
            return False, None
        if outcome.bonus:  # so that, should Redis go away, memory does not engage it again
            mirrored = memory.remembered(chat_id, message_id)
            if mirrored is not None:
                mirrored.engaged = True
        return True, outcome

    async def react(
        self, chat_id: int, message_id: int, reactor: int, at: float, added: bool
    ) -> None:
        if self.redis.up:
            keys = self.keys
            try:
                await self.redis.run(
                    self._react,
                    [keys.book(chat_id), keys.pending],
                    [
                        message_id,
                        reactor,
                        repr(at),
                        repr(float(self.memory.engagement.window_seconds)),
                        repr(at + self.memory.reactions.settle_seconds),
                        f"{chat_id}:{message_id}:{reactor}",
                        "1" if added else "0",
                        MAX_REACTORS,
                        self.life.book,
                    ],
                )
                return
            except StoreUnavailable:
                pass
        self.memory.react(chat_id, message_id, reactor, at, added)

    async def due(self, now: float) -> list[tuple[int, int, int]]:
        # Pending in memory only while Redis was away.
        settled = self.memory.due(now)
        if self.redis.up:
            try:
                members = await self.redis.run(self._due, [self.keys.pending], [repr(now)])
            except StoreUnavailable:
                return settled
            for member in members:
                chat_id, message_id, reactor = _text(member).split(":")
                settled.append((int(chat_id), int(message_id), int(reactor)))
        return settled

    async def _load(self, chat_id: int, message_id: int, giver: int) -> tuple[str, str]:
        keys = self.keys
        text, given = await self.redis.run(
            self._response, [keys.book(chat_id), keys.giver(chat_id, giver)], [message_id]
        )
        return _text(text), _text(given)

    def _decode(self, text: str) -> Posted | None:
        if not text:
            return None
        try:
            return decode_posted(text)
        except CodecError as exc:
            self.redis.unreadable(exc)
            return None
