"""Where the anti-abuse gate's state lives while it judges: this process's memory, or a
store several bot instances share (redis_gate.py).

The services judge and follow up through `GateState`; the rules themselves are the one
`AntiAbuseGate` (domain/anti_abuse.py) either way, so both backends give the same verdicts.
`MemoryGateState` is the gate's own bounded memory, exactly as one process has always
judged: it adds no work to a message but the await.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from plugins.gamification.domain.activity import ActivityFact
from plugins.gamification.domain.anti_abuse import AntiAbuseGate, Refusal, Verdict
from plugins.gamification.domain.engagement import EngagementBook, Outcome, Posted
from plugins.gamification.domain.models import Multiplier

# (chat, user) -> (messages of the person others engaged lately, their distinct responders),
# from the ledger: asked once per person per day, when the gate starts the person's day.
EngagedRecently = Callable[[int, int], Awaitable[tuple[int, list[int]]]]


class SharedBook(Protocol):
    """The engagement book in a store several instances share: `EngagementBook`'s
    operations, awaited (services/redis_engagement.py)."""

    async def posted(
        self, chat_id: int, message_id: int, author: int, at: float, base: int
    ) -> None: ...

    async def lookup(self, chat_id: int, message_id: int, at: float) -> Posted | None: ...

    async def respond(
        self, chat_id: int, message_id: int, responder: int, day: str, *, reaction: bool
    ) -> Outcome | None: ...

    async def react(
        self, chat_id: int, message_id: int, reactor: int, at: float, added: bool
    ) -> None: ...

    async def due(self, now: float) -> list[tuple[int, int, int]]: ...


class GateState(Protocol):
    """The gate as the services use it: judging, and what follows a judgement."""

    gate: AntiAbuseGate

    @property
    def backend(self) -> str:
        """The configured backend: "memory" or "redis"."""
        ...

    @property
    def active(self) -> str:
        """Where the state lives right now ("memory" while a shared store is away)."""
        ...

    @property
    def fallbacks(self) -> int:
        """Times the shared store went away and memory took over."""
        ...

    @property
    def conflicts(self) -> int:
        """Judgements done again because another instance changed the same state first."""
        ...

    def share(self, book: EngagementBook) -> SharedBook | None:
        """The engagement book in the same shared store (`book` standing in while it is
        away), or None: this process's `book` alone."""
        ...

    async def start(self, reload_frozen: Callable[[], Awaitable[None]]) -> None:
        """Connect; `reload_frozen` reads the frozen accounts from the ledger again."""
        ...

    async def close(self) -> None: ...

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
        """The gate's verdict; `earned_today` (the ledger's) and `engaged_recently` start
        the person's day when the gate has not yet."""
        ...

    async def refund(
        self, fact: ActivityFact, amount: int, *, keep_cooldown: bool = False
    ) -> None:
        """AntiAbuseGate.refund."""
        ...

    async def capped(self, fact: ActivityFact, amount: int, total: int, refusal: Refusal) -> None:
        """AntiAbuseGate.capped: the ledger refused the award for the day's cap."""
        ...

    async def engaged(self, chat_id: int, user_id: int, day: str, responder: int) -> None:
        """AntiAbuseGate.engaged."""
        ...

    async def add_engagement_points(
        self, chat_id: int, user_id: int, day: str, amount: int
    ) -> int:
        """AntiAbuseGate.add_engagement_points."""
        ...

    async def frozen_changed(self) -> None:
        """This instance froze or unfroze an account (in the ledger): tell the others."""
        ...

    async def refresh_frozen(self) -> None:
        """Reload the frozen accounts if another instance changed them."""
        ...


class MemoryGateState:
    """The gate's own memory: one process's state, the default."""

    backend = "memory"
    active = "memory"
    fallbacks = 0
    conflicts = 0

    def __init__(self, gate: AntiAbuseGate) -> None:
        self.gate = gate

    def share(self, book: EngagementBook) -> SharedBook | None:
        return None

    async def start(self, reload_frozen: Callable[[], Awaitable[None]]) -> None:
        return None

    async def close(self) -> None:
        return None

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
        gate = self.gate
        if gate.needs_daily_total(fact, day):
            engaged, responders = await engaged_recently(fact.chat_id, fact.user_id)
            gate.set_daily_total(fact, day, earned_today, engaged=engaged, responders=responders)
        return gate.judge(fact, amount, now, day, multipliers=multipliers, cap=cap)

    async def refund(
        self, fact: ActivityFact, amount: int, *, keep_cooldown: bool = False
    ) -> None:
        self.gate.refund(fact, amount, keep_cooldown=keep_cooldown)

    async def capped(self, fact: ActivityFact, amount: int, total: int, refusal: Refusal) -> None:
        self.gate.capped(fact, amount, total, refusal)

    async def engaged(self, chat_id: int, user_id: int, day: str, responder: int) -> None:
        self.gate.engaged(chat_id, user_id, day, responder)

    async def add_engagement_points(
        self, chat_id: int, user_id: int, day: str, amount: int
    ) -> int:
        return self.gate.add_engagement_points(chat_id, user_id, day, amount)

    async def frozen_changed(self) -> None:
        return None

    async def refresh_frozen(self) -> None:
        return None
