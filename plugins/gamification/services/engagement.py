"""The ledger side of engagement: members' history, the chat's relative cap, and awarding
engagement bonuses and reaction points (the rules themselves are in engagement.py).

Relative cap: no one earns more activity points in a day than `anti_abuse.relative_cap`
times the chat's typical active member's day: the median, over the member-days with any
activity points in the last `relative_cap_days` whole days (UTC days), read from the
ledger once an hour per chat, and never below `relative_cap_floor`, so a new or quiet
chat is not capped to nothing. The cap follows each community instead of a constant.

History: a member's scored messages in the chat over the last days, counted in the ledger
(so it survives restarts) and cached for a few minutes. Only members with history of
their own engage others, and only they can thank.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import OrderedDict
from contextlib import suppress
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from plugins.gamification.domain.activity import ActivityFact, ReactionFact
from plugins.gamification.domain.anti_abuse import Refusal
from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.engagement import EngagementBook, Outcome
from plugins.gamification.domain.errors import DailyCapError, GamificationError
from plugins.gamification.domain.keys import engagement_key, reaction_key
from plugins.gamification.domain.models import Multiplier, TxKind
from plugins.gamification.domain.rules import apply_multipliers
from plugins.gamification.engine import PointsEngine
from plugins.gamification.services.gate_state import GateState
from plugins.gamification.services.stats import Stats
from plugins.gamification.services.today import Today

log = logging.getLogger(__name__)

CAP_REFRESH_SECONDS = 3600.0
HISTORY_SECONDS = 300.0
# Counts at least this high are cached for HISTORY_SECONDS (above every default threshold).
HISTORY_TRUSTED = 10
HISTORY_CACHE = 50_000


class EngagementService:
    """Engagement, relative caps and history, beside the scoring service."""

    def __init__(
        self,
        engine: PointsEngine,
        config: GamificationConfig,
        gate: GateState,
        stats: Stats,
        today: Today,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = engine.clock
        self.gate_state = gate
        self.gate = gate.gate
        self.stats = stats
        self.today = today
        self.book = EngagementBook(config.engagement, config.reactions)
        # The book several instances share, when the gate's state is shared (else None:
        # `book` alone, with no await added to a message).
        self.shared = gate.share(self.book)
        self._bonus = Multiplier("engaged", config.engagement.bonus)
        self._caps: dict[int, tuple[float, int | None]] = {}
        self._cap_reads: dict[int, asyncio.Future[int]] = {}
        self._history: OrderedDict[tuple[int, int, int], tuple[float, int]] = OrderedDict()

    # -- relative cap -------------------------------------------------------------------

    async def chat_cap(self, chat_id: int) -> int | None:
        """Today's relative cap of the chat, or None when it is switched off."""
        s = self.config.anti_abuse
        if s.relative_cap <= 0:
            return None
        now = self.clock.now().timestamp()
        cached = self._caps.get(chat_id)
        if cached is not None and now - cached[0] < CAP_REFRESH_SECONDS:
            return cached[1]
        # One read per chat at a time: the messages that arrive while it runs (a busy
        # chat's first messages of the hour) wait for it instead of each reading again.
        reading = self._cap_reads.get(chat_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read_cap(chat_id, now))
            self._cap_reads[chat_id] = reading
            reading.add_done_callback(partial(self._cap_read, chat_id))
        return await asyncio.shield(reading)

    def _cap_read(self, chat_id: int, reading: asyncio.Future[int]) -> None:
        if self._cap_reads.get(chat_id) is reading:
            del self._cap_reads[chat_id]
        if not reading.cancelled():
            reading.exception()  # retrieved here too: every waiter may have gone

    async def _read_cap(self, chat_id: int, now: float) -> int:
        s = self.config.anti_abuse
        today = self.today()
        start = datetime.fromisoformat(today.replace("Z", "+00:00"))
        since = format_utc(start - timedelta(days=s.relative_cap_days))
        days = await self.engine.store.member_days(chat_id, since, today)
        median = statistics.median(days) if days else 0
        cap = max(s.relative_cap_floor, round(s.relative_cap * median))
        self._caps[chat_id] = (now, cap)
        if len(self._caps) > HISTORY_CACHE:
            self._caps.pop(next(iter(self._caps)))
        return cap

    # -- history ------------------------------------------------------------------------

    async def scored_messages(
        self, chat_id: int, user_id: int, days: int, *, enough: int = HISTORY_TRUSTED
    ) -> int:
        """The member's scored messages in the chat over the last `days` days.

        A count of at least `enough` (all the caller needs to know) is taken from the
        cache for HISTORY_SECONDS; a lower one is read again each time: a newcomer's
        history grows by the minute.
        """
        now = self.clock.now()
        key = (chat_id, user_id, days)
        cached = self._history.get(key)
        fresh = cached is not None and now.timestamp() - cached[0] < HISTORY_SECONDS
        if cached is not None and fresh and cached[1] >= min(enough, HISTORY_TRUSTED):
            return cached[1]
        since = format_utc(now - timedelta(days=days))
        count = await self.engine.store.scored_messages(chat_id, user_id, since)
        self._history[key] = (now.timestamp(), count)
        if len(self._history) > HISTORY_CACHE:
            self._history.popitem(last=False)
        return count

    async def engaged_recently(self, chat_id: int, user_id: int) -> tuple[int, list[int]]:
        """The member's messages others engaged with over `anti_abuse.engagement_days`."""
        if not self.config.engagement.enabled:
            return 0, []
        since = format_utc(
            self.clock.now() - timedelta(days=self.config.anti_abuse.engagement_days)
        )
        rows = await self.engine.store.engaged_by(chat_id, user_id, since)
        return sum(count for _, count in rows), [actor for actor, _ in rows][:64]

    async def has_history(self, chat_id: int, user_id: int) -> bool:
        e = self.config.engagement
        if e.min_history_messages <= 0:
            return True
        count = await self.scored_messages(
            chat_id, user_id, e.history_days, enough=e.min_history_messages
        )
        return count >= e.min_history_messages

    # -- responses ----------------------------------------------------------------------

    def posted(self, fact: ActivityFact, base: int) -> None:
        """Remember a scoreable message, so replies and reactions to it can engage it."""
        if self.config.engagement.enabled or self.config.reactions.enabled:
            self.book.posted(
                fact.chat_id, fact.message_id, fact.user_id, fact.sent_at.timestamp(), base
            )

    async def posted_shared(self, fact: ActivityFact, base: int) -> None:
        """`posted`, into the shared book (only when there is one)."""
        assert self.shared is not None
        if self.config.engagement.enabled or self.config.reactions.enabled:
            await self.shared.posted(
                fact.chat_id, fact.message_id, fact.user_id, fact.sent_at.timestamp(), base
            )

    async def replied(self, chat_id: int, responder: int, message_id: int, at: datetime) -> None:
        """Another member replied to a remembered message."""
        shared = self.shared
        if shared is None:
            posted = self.book.lookup(chat_id, message_id, at.timestamp())
        else:
            posted = await shared.lookup(chat_id, message_id, at.timestamp())
        if posted is None or posted.engaged or posted.author == responder:
            return
        if not await self.has_history(chat_id, responder):
            self.stats.refusals[Refusal.RESPONDER_INACTIVE] += 1
            return
        outcome = await self._respond(chat_id, message_id, responder, reaction=False)
        if outcome is not None:
            await self._award(outcome)

    async def reacted(self, fact: ReactionFact) -> None:
        """A reaction appeared or went away; settles whatever is due."""
        at = fact.at.timestamp()
        if self.shared is None:
            self.book.react(fact.chat_id, fact.message_id, fact.user_id, at, fact.added)
        else:
            await self.shared.react(fact.chat_id, fact.message_id, fact.user_id, at, fact.added)
        await self.settle()

    async def settle(self) -> None:
        """Award the reactions that stayed in place for `reactions.settle_seconds`."""
        now = self.clock.now().timestamp()
        due = self.book.due(now) if self.shared is None else await self.shared.due(now)
        for chat_id, message_id, reactor in due:
            if not await self.has_history(chat_id, reactor):
                continue
            outcome = await self._respond(chat_id, message_id, reactor, reaction=True)
            if outcome is not None:
                await self._award(outcome)

    async def _respond(
        self, chat_id: int, message_id: int, responder: int, *, reaction: bool
    ) -> Outcome | None:
        day = self.today()
        if self.shared is None:
            return self.book.respond(chat_id, message_id, responder, day, reaction=reaction)
        return await self.shared.respond(chat_id, message_id, responder, day, reaction=reaction)

    async def _award(self, outcome: Outcome) -> None:
        chat_id = outcome.chat_id
        try:
            if outcome.bonus:
                await self.gate_state.engaged(
                    chat_id, outcome.author, self.today(), outcome.responder
                )
                await self._bonus_award(outcome)
            if outcome.reaction:
                await self.engine.award(
                    chat_id,
                    outcome.author,
                    self.config.reactions.points,
                    key=reaction_key(chat_id, outcome.message_id, outcome.responder),
                    kind=TxKind.REACTION,
                    actor_id=outcome.responder,
                    reason="reaction",
                    tag="reaction",
                )
        except GamificationError as exc:
            log.warning("chat %s message %s: engagement not awarded: %s", chat_id,
                        outcome.message_id, exc)  # fmt: skip

    async def _bonus_award(self, outcome: Outcome) -> None:
        # The same two members over and over: each earlier engagement in the window halves
        # the bonus, as with thanks (friends answer each other; a ring answers nobody else).
        since = format_utc(
            self.clock.now() - timedelta(days=self.config.anti_abuse.engagement_days)
        )
        earlier = await self.engine.store.engaged_pair(
            outcome.chat_id, outcome.author, outcome.responder, since
        )
        factors = [self._bonus]
        if earlier:
            factors.append(Multiplier(f"pair x{earlier}", (Decimal("0.5") ** earlier)))
        worth = apply_multipliers(outcome.base, factors).result
        if worth <= 0:
            return
        granted = await self.gate_state.add_engagement_points(
            outcome.chat_id, outcome.author, self.today(), worth
        )
        if granted <= 0:
            return
        base, multipliers = (outcome.base, factors) if granted == worth else (granted, [])
        with suppress(DailyCapError):  # the ledger knew of more points today than the gate
            await self.engine.award(
                outcome.chat_id,
                outcome.author,
                base,
                key=engagement_key(outcome.chat_id, outcome.message_id),
                reason="engagement",
                actor_id=outcome.responder,
                multipliers=multipliers,
                tag="engagement",
                day_limit=self.config.anti_abuse.daily_cap,
            )
