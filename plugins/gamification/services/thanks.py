"""Thanks: judging a thanks reply against the ledger's limits, and awarding it."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

from plugins.gamification.domain.activity import ThanksFact
from plugins.gamification.domain.anti_abuse import Refusal
from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.keys import thanks_key
from plugins.gamification.domain.models import Multiplier, Receipt, TxKind
from plugins.gamification.engine import PointsEngine
from plugins.gamification.services.engagement import EngagementService
from plugins.gamification.services.moderation import Moderation
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.services.stats import Stats
from plugins.gamification.services.today import Today


class Thanks:
    """Thanks replies: refused when self, bot, frozen, too old, too often or from an
    inactive giver; decayed within a pair; otherwise awarded to the replied author."""

    def __init__(
        self,
        engine: PointsEngine,
        config: GamificationConfig,
        *,
        stats: Stats,
        retry: StorageRetry,
        today: Today,
        engagement: EngagementService,
        moderation: Moderation,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.config = config
        self.clock = engine.clock
        self.stats = stats
        self.retry = retry
        self.today = today
        self.engagement = engagement
        self.moderation = moderation
        self._triggers = frozenset(
            t.strip().lower() for group in config.thanks.triggers.values() for t in group
        )

    @property
    def triggers(self) -> frozenset[str]:
        return self._triggers

    async def thank(self, fact: ThanksFact) -> Receipt | Refusal:
        refusal = await self._judge_thanks(fact)
        decay: list[Multiplier] = []
        if refusal is None:
            judged = await self._pair_decay(fact)
            if isinstance(judged, Refusal):
                refusal = judged
            else:
                decay = judged
        if refusal is not None:
            self.stats.refusals[refusal] += 1
            return refusal
        started = time.perf_counter()
        receipt = await self.retry(
            self.engine.award,
            fact.chat_id,
            fact.receiver_id,
            self.config.thanks.points,
            key=thanks_key(fact.chat_id, fact.message_id),
            kind=TxKind.THANKS,
            tag="thanks",
            actor_id=fact.giver_id,
            reason="thanks",
            multipliers=decay,
        )
        self.stats.record_award(
            receipt.transaction.amount,
            (time.perf_counter() - started) * 1000,
            duplicate=receipt.duplicate,
        )
        return receipt

    async def _judge_thanks(self, fact: ThanksFact) -> Refusal | None:
        settings = self.config.thanks
        if fact.giver_id == fact.receiver_id:
            return Refusal.SELF_THANKS
        if fact.receiver_is_bot:
            return Refusal.BOT_THANKS
        await self.moderation.refresh()
        if self.moderation.is_frozen(fact.chat_id, fact.giver_id) or self.moderation.is_frozen(
            fact.chat_id, fact.receiver_id
        ):
            return Refusal.FROZEN
        if fact.sent_at - fact.target_sent_at > timedelta(hours=settings.max_age_hours):
            return Refusal.THANKS_TOO_OLD
        # Both limits are read from the ledger, so they hold across restarts.
        since = format_utc(self.clock.now() - timedelta(seconds=settings.pair_cooldown_seconds))
        if await self.store.thanks_between(fact.chat_id, fact.receiver_id, fact.giver_id, since):
            return Refusal.THANKS_COOLDOWN
        given = await self.store.thanks_given(fact.chat_id, fact.giver_id, self.today())
        if given >= settings.daily_limit:
            return Refusal.THANKS_LIMIT
        return await self._judge_giver(fact)

    async def _judge_giver(self, fact: ThanksFact) -> Refusal | None:
        """A thanks counts only from a member with activity of their own, and only as many
        as their own scored messages back (`thanks_per_message` each): an account that
        does nothing but thank gives nothing."""
        settings = self.config.thanks
        if settings.min_giver_messages <= 0:
            return None  # anyone may thank
        messages = await self.engagement.scored_messages(
            fact.chat_id, fact.giver_id, settings.giver_days
        )
        if messages < settings.min_giver_messages:
            return Refusal.THANKS_GIVER_INACTIVE
        since = format_utc(self.clock.now() - timedelta(days=settings.giver_days))
        given = await self.store.thanks_given(fact.chat_id, fact.giver_id, since)
        if given >= settings.thanks_per_message * messages:
            return Refusal.THANKS_GIVER_INACTIVE
        return None

    async def _pair_decay(self, fact: ThanksFact) -> list[Multiplier] | Refusal:
        """Thanks within one pair of members (either way) over the last `pair_decay_days`
        each halve (`pair_decay`) the next: back-and-forth thanking fades out."""
        settings = self.config.thanks
        if settings.pair_decay_days <= 0 or settings.pair_decay >= 1:
            return []
        since = format_utc(self.clock.now() - timedelta(days=settings.pair_decay_days))
        earlier = 0
        for receiver, giver in (
            (fact.receiver_id, fact.giver_id),
            (fact.giver_id, fact.receiver_id),
        ):
            earlier += await self.store.thanks_between(fact.chat_id, receiver, giver, since)
        if earlier == 0:
            return []
        factor = settings.pair_decay**earlier
        if settings.points * factor < Decimal("0.5"):
            return Refusal.THANKS_PAIR_DECAY
        return [Multiplier(f"pair x{earlier}", factor.normalize())]
