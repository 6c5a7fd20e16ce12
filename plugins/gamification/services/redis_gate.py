"""Anti-abuse state shared by bot instances through Redis, with this process's memory
standing in while Redis is away.

A judgement loads the state it reads (the person's recent state and record in the chat,
the chat's presence, its copy memory when the message could be a copy, the standing of the
people present, the server's clock) with one Lua script, judges with the same
`AntiAbuseGate` as the memory backend, and stores what changed with another, only if none
of it changed meanwhile; otherwise it loads and judges again (redis_keys.py). Within one
instance the judgements of a chat wait for each other, so a conflict needs two instances
judging one chat at once, which Telegram's one-update-at-a-time per chat makes rare.

The rules' time is Redis's clock (`TIME`), so instances whose clocks disagree still agree
on every cooldown and window. The day itself (the daily cap's) is the ledger's, as before.

When Redis does not answer within `redis_timeout_seconds` or answers with an error, the
gate judges with this instance's memory (which holds the latest state this instance read
from Redis), logs one warning, counts the fallback, and checks every `redis_retry_seconds`
in the background until Redis answers again; then it logs one line and goes back. No
Redis problem ever reaches a handler.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from plugins.gamification.domain.activity import ActivityFact
from plugins.gamification.domain.anti_abuse import AntiAbuseGate, Refusal, Track, Verdict
from plugins.gamification.domain.clock import Clock
from plugins.gamification.domain.config import AntiAbuseSection
from plugins.gamification.domain.conversation import ChatTrack
from plugins.gamification.domain.engagement import EngagementBook
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.gate_codec import (
    CodecError,
    decode_copies,
    decode_presence,
    decode_recent,
    decode_record,
    encode_copies,
    encode_presence,
    encode_recent,
    encode_record,
)
from plugins.gamification.domain.models import Multiplier
from plugins.gamification.services.gate_state import EngagedRecently, MemoryGateState
from plugins.gamification.services.redis_engagement import RedisEngagementBook
from plugins.gamification.services.redis_keys import (
    BUMP,
    LOAD,
    STORE,
    VERSION_BYTES,
    Keys,
    Lifetimes,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# A judgement met this many conflicts in a row: it is judged in memory instead (a chat so
# contended is a bug or an attack, and the message must still be answered).
CAS_ATTEMPTS = 16
T = TypeVar("T")


def redacted(url: str) -> str:
    """The URL without its password, for the log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connect(settings: AntiAbuseSection) -> Redis:
    """A client that fails fast: no retries, short timeouts (the gate falls back instead)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )


def _as_bytes(value: bytes | str | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


@dataclass(slots=True)
class _Loaded:
    """The state of one judgement as read, with the versions its write must find."""

    t: float
    recent: bytes
    record: bytes
    track: Track
    chat_version: bytes
    chat: ChatTrack | None
    copies: bool
    standings: dict[int, bool]
    epoch: bytes


class _View:
    """The chat and the standing of its people, as loaded for one judgement."""

    __slots__ = ("_chat", "_everyone", "_standings")

    def __init__(self, chat: ChatTrack, standings: dict[int, bool], everyone: bool) -> None:
        self._chat, self._standings, self._everyone = chat, standings, everyone

    def chat(self, chat_id: int) -> ChatTrack:
        return self._chat

    def in_good_standing(self, chat_id: int, user_id: int) -> bool:
        return self._everyone or self._standings.get(user_id, False)


class _ChatLocks:
    """One lock per chat with someone waiting on it, dropped when nobody does."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int, seconds: float) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_id) or (asyncio.Lock(), 0)
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with asyncio.timeout(seconds):
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[chat_id]
            if users <= 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)


class RedisGateState:
    """The gate's state in Redis under `key_prefix`, shared by every instance using it."""

    backend = "redis"

    def __init__(
        self,
        gate: AntiAbuseGate,
        clock: Clock,
        *,
        client: Redis | None = None,
        server_time: bool = True,
    ) -> None:
        """`server_time=False` takes the rules' time from `clock`, as memory does (tests
        compare the two backends on one fake clock); in production it is Redis's."""
        self.gate = gate
        self.settings = s = gate.settings
        self.clock = clock
        self.memory = MemoryGateState(gate)
        self.keys = Keys(s.key_prefix)
        self.lifetimes = Lifetimes.of(s)
        self.server_time = server_time
        self.on_frozen_changed: Callable[[], Awaitable[None]] | None = None
        self._client = client if client is not None else connect(s)
        self._load = self._client.register_script(LOAD)
        self._store = self._client.register_script(STORE)
        self._count = self._client.register_script(BUMP)
        self._locks = _ChatLocks()
        self._lock_timeout = max(10.0, 20 * s.redis_timeout_seconds)
        self._up = True
        self._since = 0.0
        self._in_memory = 0
        self._epoch = b""
        self._epoch_owed = False
        self._probe: asyncio.Task[None] | None = None
        self._warned_codec = False
        self.fallbacks = 0
        self.conflicts = 0

    @property
    def active(self) -> str:
        return "redis" if self._up else "memory"

    @property
    def up(self) -> bool:
        """Redis answered last time: the state is shared."""
        return self._up

    def share(self, book: EngagementBook) -> RedisEngagementBook:
        """The engagement book in the same Redis, with `book` standing in while it is away."""
        return RedisEngagementBook(self, book)

    def register(self, source: str) -> Any:
        """A Lua script on this connection."""
        return self._client.register_script(source)

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer; StoreUnavailable (memory takes over) when Redis is away."""
        if not self._up:
            raise StoreUnavailable
        return await self._call(script(keys=keys, args=args))

    async def start(self, reload_frozen: Callable[[], Awaitable[None]]) -> None:
        """Check that Redis answers (else start in memory, with the warning) and note the
        frozen accounts' change count, before they are read from the ledger."""
        self.on_frozen_changed = reload_frozen
        try:
            epoch = await self._call(self._client.get(self.keys.frozen))
        except StoreUnavailable:
            return
        self._epoch = _as_bytes(epoch)
        log.info(
            "Anti-abuse state is shared through Redis at %s (key prefix %r).",
            redacted(self.settings.redis_url),
            self.settings.key_prefix,
        )

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None
        await self._client.aclose()

    # -- judging --------------------------------------------------------------------------

    async def judge(
        self,
        fact: ActivityFact,
        amount: int,
        now: datetime,
        day: str,
        *,
        multipliers: Sequence[Multiplier],
        cap: int | None,
        earned_today: int,
        engaged_recently: EngagedRecently,
    ) -> Verdict:
        chat_id, user_id = fact.chat_id, fact.user_id
        copies = self.gate.copies_needed(fact)
        if self._up:
            try:
                async with self._locks.hold(chat_id, self._lock_timeout):
                    for _ in range(CAS_ATTEMPTS):
                        loaded = await self._read(chat_id, user_id, chat=True, copies=copies)
                        await self._frozen_since(loaded.epoch)
                        gate, track = self.gate, loaded.track
                        if gate.needs_total(track, day):
                            engaged, responders = await engaged_recently(chat_id, user_id)
                            gate.load_total(
                                track, day, earned_today, engaged=engaged, responders=responders
                            )
                        t = loaded.t if self.server_time else now.timestamp()
                        assert loaded.chat is not None
                        view = _View(
                            loaded.chat, loaded.standings, self.settings.engaged_share <= 0
                        )
                        verdict = gate.judge_on(
                            view, track, fact, amount, t, day, multipliers, cap
                        )
                        if await self._write(chat_id, user_id, loaded, t):
                            return verdict
                        self.conflicts += 1
            except (StoreUnavailable, TimeoutError):
                pass
        self._in_memory += 1
        return await self.memory.judge(
            fact,
            amount,
            now,
            day,
            multipliers=multipliers,
            cap=cap,
            earned_today=earned_today,
            engaged_recently=engaged_recently,
        )

    # -- the changes that follow a judgement ---------------------------------------------

    async def refund(
        self, fact: ActivityFact, amount: int, *, keep_cooldown: bool = False
    ) -> None:
        def change(track: Track) -> None:
            self.gate.refund_on(track, fact, amount, keep_cooldown)

        await self._person(fact.chat_id, fact.user_id, change)

    async def capped(self, fact: ActivityFact, amount: int, total: int, refusal: Refusal) -> None:
        def change(track: Track) -> None:
            self.gate.capped_on(track, fact, amount, total, refusal)

        await self._person(fact.chat_id, fact.user_id, change)

    async def engaged(self, chat_id: int, user_id: int, day: str, responder: int) -> None:
        def change(track: Track) -> None:
            self.gate.engaged_on(track, day, responder)

        await self._person(chat_id, user_id, change)

    async def add_engagement_points(
        self, chat_id: int, user_id: int, day: str, amount: int
    ) -> int:
        def change(track: Track) -> int:
            return self.gate.add_points_on(track, day, amount)

        return await self._person(chat_id, user_id, change)

    async def _person(self, chat_id: int, user_id: int, change: Callable[[Track], T]) -> T:
        """Apply `change` to the person's state in Redis (or, while it is away, in memory)."""
        if self._up:
            try:
                async with self._locks.hold(chat_id, self._lock_timeout):
                    for _ in range(CAS_ATTEMPTS):
                        loaded = await self._read(chat_id, user_id, chat=False, copies=False)
                        result = change(loaded.track)
                        t = loaded.t if self.server_time else self.clock.now().timestamp()
                        if await self._write(chat_id, user_id, loaded, t):
                            return result
                        self.conflicts += 1
            except (StoreUnavailable, TimeoutError):
                pass
        return change(self.gate.track(chat_id, user_id))

    # -- frozen accounts ------------------------------------------------------------------

    async def frozen_changed(self) -> None:
        if not self._up:
            self._epoch_owed = True
            return
        try:
            count = await self._call(self._bump())
        except StoreUnavailable:
            self._epoch_owed = True
            return
        # Unless another instance changed them too meanwhile, this one knows the change.
        if count == int(self._epoch or 0) + 1:
            self._epoch = str(count).encode()

    async def _bump(self) -> int:
        return int(await self._count(keys=[self.keys.frozen], args=[self.lifetimes.record]))

    async def refresh_frozen(self) -> None:
        if not self._up:
            return
        try:
            epoch = await self._call(self._client.get(self.keys.frozen))
        except StoreUnavailable:
            return
        await self._frozen_since(_as_bytes(epoch))

    async def _frozen_since(self, epoch: bytes) -> None:
        """Read the frozen accounts from the ledger again when another instance changed them."""
        if epoch == self._epoch or self.on_frozen_changed is None:
            return
        try:
            await self.on_frozen_changed()
        except GamificationError as exc:
            log.warning("The frozen accounts could not be read again (%s); later.", exc)
            return
        self._epoch = epoch

    # -- reading and writing --------------------------------------------------------------

    async def _read(self, chat_id: int, user_id: int, *, chat: bool, copies: bool) -> _Loaded:
        if not self._up:  # gone while this judgement waited for the chat's lock
            raise StoreUnavailable
        keys = self.keys
        reply: list[bytes] = await self._call(
            self._load(
                keys=[
                    keys.recent(chat_id, user_id),
                    keys.record(chat_id, user_id),
                    keys.chat(chat_id),
                    keys.frozen,
                ],
                args=[keys.records(chat_id), "1" if chat else "0", "1" if copies else "0"],
            )
        )
        seconds, micros, recent, record, chat_version, presence, copied, epoch = reply[:8]
        track = self._track(recent, record)
        room = None
        if chat:
            room = ChatTrack(self.settings.copy_memory)
            try:
                if presence:
                    decode_presence(presence, room)
                if copied:
                    decode_copies(copied, room)
            except CodecError as exc:
                self.unreadable(exc)
                room = ChatTrack(self.settings.copy_memory)
        pairs = reply[8:]
        standings = {int(pairs[i]): pairs[i + 1] == b"1" for i in range(0, len(pairs) - 1, 2)}
        return _Loaded(
            int(seconds) + int(micros) / 1_000_000,
            recent[:VERSION_BYTES],
            record[:VERSION_BYTES],
            track,
            chat_version,
            room,
            copies,
            standings,
            epoch,
        )

    def _track(self, recent: bytes, record: bytes) -> Track:
        track = Track()
        try:
            if recent:
                decode_recent(recent[VERSION_BYTES:], track)
        except CodecError as exc:
            self.unreadable(exc)
            track = Track()
        if record:
            try:
                decode_record(record[VERSION_BYTES + 1 :], track)
            except CodecError as exc:
                self.unreadable(exc)
                fresh = Track()
                track.day, track.today, track.engaged = fresh.day, fresh.today, fresh.engaged
                track.responders, track.sent = fresh.responders, fresh.sent
        return track

    def unreadable(self, exc: CodecError) -> None:
        """Say once that state under the prefix cannot be read (it is started afresh)."""
        if not self._warned_codec:
            self._warned_codec = True
            log.warning(
                "Anti-abuse state under the Redis key prefix %r cannot be read (%s): it is"
                " started afresh (is another program or version using the same prefix?).",
                self.settings.key_prefix,
                exc,
            )

    async def _write(self, chat_id: int, user_id: int, loaded: _Loaded, t: float) -> bool:
        """Store the state `loaded` holds now, if nobody changed it since; True when stored
        (and then kept in memory too, to judge from should Redis go away)."""
        s, gate, keys, life = self.settings, self.gate, self.keys, self.lifetimes
        track, version = loaded.track, os.urandom(VERSION_BYTES)
        standing = b"1" if gate.standing(track) else b"0"
        names = [keys.recent(chat_id, user_id), keys.record(chat_id, user_id)]
        args: list[Any] = [
            loaded.recent,
            loaded.record,
            version + encode_recent(track, s, t),
            version + standing + encode_record(track, s),
            life.recent,
            life.record,
        ]
        room = loaded.chat
        if room is not None:
            presence, people = encode_presence(room, s, t)
            copies = encode_copies(room, s, t) if loaded.copies else b""
            names.append(keys.chat(chat_id))
            args += [
                loaded.chat_version,
                version,
                presence,
                " ".join(map(str, people)),
                "1" if loaded.copies else "0",
                copies,
                life.chat,
            ]
        stored = await self._call(self._store(keys=names, args=args))
        if not stored:
            return False
        gate.adopt(chat_id, user_id, track)
        if room is not None:
            gate.chats.adopt(chat_id, room, copies=loaded.copies)
        return True

    # -- when Redis goes away and comes back ----------------------------------------------

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """`awaitable`'s answer, or StoreUnavailable (and memory takes over) within the timeout."""
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self.settings.redis_timeout_seconds):
                return await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            await self._went_away(exc)
            raise StoreUnavailable from exc

    async def _went_away(self, exc: BaseException) -> None:
        if not self._up:
            return
        self._up, self._since, self._in_memory = False, time.monotonic(), 0
        self.fallbacks += 1
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning(
            "Redis at %s does not answer (%s): the anti-abuse state stays in this instance's"
            " memory until it is back (checked every %g s).",
            redacted(self.settings.redis_url),
            reason,
            self.settings.redis_retry_seconds,
        )
        await self._disconnect()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._come_back(), name="anti-abuse redis probe")

    async def _disconnect(self) -> None:
        """Connections to a server that went away are dead: new ones are made on return."""
        with suppress(Exception):
            async with asyncio.timeout(self.settings.redis_timeout_seconds):
                await self._client.connection_pool.disconnect()

    async def _come_back(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await asyncio.sleep(self.settings.redis_retry_seconds)
            try:
                async with asyncio.timeout(self.settings.redis_timeout_seconds):
                    await self._client.ping()
                    if self._epoch_owed:
                        await self._bump()
            except (RedisError, OSError, TimeoutError):
                await self._disconnect()
                continue
            self._epoch_owed = False
            self._up = True
            log.info(
                "Redis at %s answers again after %.0f s: the anti-abuse state is shared again"
                " (%d messages were judged in this instance's memory meanwhile).",
                redacted(self.settings.redis_url),
                time.monotonic() - self._since,
                self._in_memory,
            )
            return
