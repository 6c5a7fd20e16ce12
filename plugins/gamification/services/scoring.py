"""Scoring: a group message through the anti-abuse gate to its award, and today's streak."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import date
from zoneinfo import ZoneInfo

from plugins.gamification.domain.activity import ActivityFact, points_for
from plugins.gamification.domain.anti_abuse import CONTENT_REFUSALS, Refusal
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.errors import (
    DailyCapError,
    IdempotencyConflictError,
    TransientStorageError,
)
from plugins.gamification.domain.keys import message_key
from plugins.gamification.domain.models import Receipt
from plugins.gamification.domain.multipliers import MultiplierRules
from plugins.gamification.domain.progression import streak_if_active
from plugins.gamification.engine import PointsEngine
from plugins.gamification.services.engagement import EngagementService
from plugins.gamification.services.gate_state import GateState
from plugins.gamification.services.moderation import Moderation
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.services.stats import Stats
from plugins.gamification.services.today import Today

DAYS_CACHE = 50_000


class Scoring:
    """Scores group messages: the gate's verdict, the award, and the outcome counted."""

    def __init__(
        self,
        engine: PointsEngine,
        config: GamificationConfig,
        *,
        gate: GateState,
        multipliers: MultiplierRules,
        stats: Stats,
        retry: StorageRetry,
        today: Today,
        engagement: EngagementService,
        moderation: Moderation,
    ) -> None:
        self.engine = engine
        self.config = config
        # The state backend judges; `gate` is its rules (and, with memory, its state).
        self.gate_state = gate
        self.gate = gate.gate
        self.daily_cap = config.anti_abuse.daily_cap
        self.multipliers = multipliers
        self.stats = stats
        self.retry = retry
        self.today = today
        self.engagement = engagement
        self.moderation = moderation
        self.clock = engine.clock
        # Group messages are worth scoring at all: activity or thanks is switched on.
        self.scores_messages = config.activity.enabled or config.thanks.enabled
        self._zone = ZoneInfo(config.ledger.timezone)
        self._days: OrderedDict[tuple[int, int], tuple[date, int, int]] = OrderedDict()

    async def score_message(self, fact: ActivityFact) -> Receipt | Refusal | None:
        """Gate the message, award what it is worth, and count the outcome.

        None: this kind of message is worth nothing in the config, so nothing is judged.
        """
        self.stats.messages_seen[fact.chat_id] += 1
        spec = self.config.activity.points.get(fact.kind)
        key = message_key(fact.chat_id, fact.message_id)
        amount = points_for(spec, key) if spec is not None else 0
        if amount <= 0:
            return None
        await self.engagement.settle()
        day = self.today()
        streak, earned_today = await self._today(fact.chat_id, fact.user_id)
        multipliers = self.multipliers.for_activity(fact.chat_id, fact.sent_at, streak)
        cap = await self.engagement.chat_cap(fact.chat_id)
        verdict = await self.gate_state.judge(
            fact,
            amount,
            self.clock.now(),
            day,
            multipliers=multipliers,
            cap=cap,
            earned_today=earned_today,
            engaged_recently=self.engagement.engaged_recently,
        )
        if verdict.suspicious:
            detail = f"message {fact.message_id}"
            await self.moderation.flag(fact.chat_id, fact.user_id, "burst", detail)
        if verdict.refusal not in CONTENT_REFUSALS:
            # Worth engaging with, even when it earned nothing at once.
            if self.engagement.shared is None:
                self.engagement.posted(fact, amount)
            else:
                await self.engagement.posted_shared(fact, amount)
        if verdict.refusal is not None:
            if not verdict.redelivery:
                self.stats.refusals[verdict.refusal] += 1
            return verdict.refusal
        # Base times the caller's and the gate's factors; or, clipped to what the caps
        # leave, the rest of the day's worth unmultiplied.
        multipliers = list(verdict.multipliers)
        amount = amount if multipliers else verdict.amount
        # The ledger checks the day's cap again under the account's lock: another instance
        # sharing the ledger (without shared anti-abuse state) may have earned the rest.
        limit = self.daily_cap if cap is None else min(self.daily_cap, cap)
        started = time.perf_counter()
        try:
            receipt = await self.retry(
                self.engine.award,
                fact.chat_id,
                fact.user_id,
                amount,
                key=key,
                reason=f"{fact.kind} message",
                multipliers=multipliers,
                tag=fact.kind,
                day_limit=limit,
            )
        except TransientStorageError:
            # Retried to the bound and handed back: the update comes again and meets its
            # verdict and reservation as they are, so it is neither judged nor counted twice.
            raise
        except DailyCapError as exc:
            refusal = Refusal.DAILY_CAP if limit == self.daily_cap else Refusal.CHAT_CAP
            await self.gate_state.capped(fact, verdict.amount, exc.today, refusal)
            self.stats.refusals[refusal] += 1
            return refusal
        except IdempotencyConflictError:
            # Scored before, and judged anew after that verdict was forgotten (a restart;
            # another instance while Redis was away) to another amount: the first stands.
            if not verdict.redelivery:
                await self.gate_state.refund(fact, verdict.amount, keep_cooldown=True)
            self.stats.duplicates += 1
            return None
        except BaseException:
            if not verdict.redelivery:
                await self.gate_state.refund(fact, verdict.amount)
            raise
        if receipt.duplicate and not verdict.redelivery:
            # Redelivered after a restart: the gate counted it anew, the ledger did not.
            await self.gate_state.refund(fact, verdict.amount, keep_cooldown=True)
        self.stats.record_award(
            receipt.transaction.amount,
            (time.perf_counter() - started) * 1000,
            duplicate=receipt.duplicate,
        )
        return receipt

    async def _today(self, chat_id: int, user_id: int) -> tuple[int, int]:
        """(streak length counting today, activity points already earned today).

        One read of the account row per person per day; after that the streak cannot
        change until the day does, and the gate keeps today's total itself.
        """
        today = self.clock.now().astimezone(self._zone).date()
        cached = self._days.get((chat_id, user_id))
        if cached is not None and cached[0] == today:
            return cached[1], cached[2]
        row = await self.engine.store.today(chat_id, user_id)
        days, earned_today = 1, 0
        if row is not None:
            grace = self.config.progress.streak_grace_day
            days = streak_if_active(row.streak_day, row.streak_length, today, grace)
            if row.activity_day == today.isoformat():
                earned_today = row.activity_today
        self._days[(chat_id, user_id)] = (today, days, earned_today)
        if len(self._days) > DAYS_CACHE:
            self._days.popitem(last=False)
        return days, earned_today
