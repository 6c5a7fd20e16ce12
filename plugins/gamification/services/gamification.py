"""GamificationServices: everything the handlers call, with no knowledge of aiogram."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from plugins.gamification.domain.activity import ActivityFact, ThanksFact, points_for
from plugins.gamification.domain.anti_abuse import CONTENT_REFUSALS, AntiAbuseGate, Refusal
from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.errors import StorageError, TransientStorageError
from plugins.gamification.domain.keys import message_key, thanks_key
from plugins.gamification.domain.models import Multiplier, Period, Receipt, TxKind
from plugins.gamification.domain.multipliers import MultiplierRules
from plugins.gamification.domain.progression import ProgressRules, streak_if_active
from plugins.gamification.engine import LedgerPolicy, PointsEngine
from plugins.gamification.services.engagement import EngagementService
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.services.stats import Stats
from plugins.gamification.storage.options import DatabaseOptions
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import AdminAction, KnownPerson, OutboxEvent

if TYPE_CHECKING:
    from plugins.gamification.storage.sqlite.integrity import IntegrityReport

log = logging.getLogger(__name__)

KNOWN_USERS_CACHE = 50_000


@dataclass(frozen=True, slots=True)
class Person:
    user_id: int
    username: str | None
    full_name: str
    is_bot: bool = False


def _person(known: KnownPerson | None) -> Person | None:
    if known is None:
        return None
    return Person(known.user_id, known.username, known.full_name, known.is_bot)


class GamificationServices:
    """The plugin's services, shared by its handlers through the dispatcher data."""

    def __init__(
        self,
        engine: PointsEngine,
        config: GamificationConfig,
        *,
        admin_ids: frozenset[int] = frozenset(),
        admin_log_chat_id: int | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.admin_ids = admin_ids
        self.admin_log_chat_id = admin_log_chat_id
        # The latest integrity report of this process, for monitoring.
        self.last_report: IntegrityReport | None = None
        # (chat, user) -> (expires at, monotonic seconds; is admin); bounded by the handler.
        self.admin_cache: OrderedDict[tuple[int, int], tuple[float, bool]] = OrderedDict()
        self.store: LedgerStorage = engine.store
        # Every write the handlers and bus events make goes through it (see retry.py).
        self.retry = StorageRetry(engine.store.health, bound=retry_seconds)
        self.config = config
        # Group messages are worth scoring at all: activity or thanks is switched on.
        self.scores_messages = config.activity.enabled or config.thanks.enabled
        self.clock = engine.clock
        self.gate = AntiAbuseGate(config.anti_abuse)
        self.stats = Stats()
        self._people: OrderedDict[int, Person] = OrderedDict()
        # People remembered whose row could not be written (yet).
        self._unsaved: set[int] = set()
        self._usernames: dict[str, int] = {}
        self.multipliers = MultiplierRules(config.multipliers, config.ledger.timezone)
        self._zone = ZoneInfo(config.ledger.timezone)
        self._days: OrderedDict[tuple[int, int], tuple[date, int, int]] = OrderedDict()
        self._today_minute: int | None = None
        self._today_start = ""
        self._triggers = frozenset(
            t.strip().lower() for group in config.thanks.triggers.values() for t in group
        )
        self.engagement = EngagementService(self)

    @property
    def thanks_triggers(self) -> frozenset[str]:
        return self._triggers

    async def load(self) -> None:
        """Read the state that outlives a restart: frozen accounts."""
        self.gate.frozen = await self.store.frozen_accounts()

    async def close(self) -> None:
        await self.engine.close()

    def today(self) -> str:
        """Start of the current local day, as stored; worked out once a minute (a day
        starts on a whole minute in every timezone in use)."""
        now = self.clock.now()
        minute = int(now.timestamp() // 60)
        if minute != self._today_minute:
            start = self.engine.period_start(Period.DAY, now)
            assert start is not None
            self._today_minute, self._today_start = minute, start
        return self._today_start

    # -- activity -----------------------------------------------------------------------

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
        if self.gate.needs_daily_total(fact, day):
            engaged, responders = await self.engagement.engaged_recently(
                fact.chat_id, fact.user_id
            )
            self.gate.set_daily_total(
                fact, day, earned_today, engaged=engaged, responders=responders
            )
        multipliers = self.multipliers.for_activity(fact.chat_id, fact.sent_at, streak)
        cap = await self.engagement.chat_cap(fact.chat_id)
        verdict = self.gate.judge(
            fact, amount, self.clock.now(), day, multipliers=multipliers, cap=cap
        )
        if verdict.suspicious:
            await self.flag(fact.chat_id, fact.user_id, "burst", f"message {fact.message_id}")
        if verdict.refusal not in CONTENT_REFUSALS:
            # Worth engaging with, even when it earned nothing at once.
            self.engagement.posted(fact, amount)
        if verdict.refusal is not None:
            if not verdict.redelivery:
                self.stats.refusals[verdict.refusal] += 1
            return verdict.refusal
        # Base times the caller's and the gate's factors; or, clipped to what the caps
        # leave, the rest of the day's worth unmultiplied.
        multipliers = list(verdict.multipliers)
        amount = amount if multipliers else verdict.amount
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
            )
        except TransientStorageError:
            # Retried to the bound and handed back: the update comes again and meets its
            # verdict and reservation as they are, so it is neither judged nor counted twice.
            raise
        except BaseException:
            if not verdict.redelivery:
                self.gate.refund(fact, verdict.amount)
            raise
        if receipt.duplicate and not verdict.redelivery:
            # Redelivered after a restart: the gate counted it anew, the ledger did not.
            self.gate.refund(fact, verdict.amount, keep_cooldown=True)
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
        row = await self.store.today(chat_id, user_id)
        days, earned_today = 1, 0
        if row is not None:
            grace = self.config.progress.streak_grace_day
            days = streak_if_active(row.streak_day, row.streak_length, today, grace)
            if row.activity_day == today.isoformat():
                earned_today = row.activity_today
        self._days[(chat_id, user_id)] = (today, days, earned_today)
        if len(self._days) > KNOWN_USERS_CACHE:
            self._days.popitem(last=False)
        return days, earned_today

    async def flag(self, chat_id: int, user_id: int, reason: str, detail: str) -> None:
        """Record a suspicion; freeze the account when the config says so."""
        now = format_utc(self.clock.now())
        event = self.outbox_event("abuse.suspected", chat_id, user_id, {"reason": reason})
        await self.retry(self.store.record_suspicion, chat_id, user_id, reason, detail, now, event)
        log.warning("suspicious activity in chat %s by user %s: %s", chat_id, user_id, reason)
        if self.config.anti_abuse.auto_freeze:
            await self.freeze(chat_id, user_id, None, f"automatic: {reason}")

    # -- thanks -------------------------------------------------------------------------

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
        if self.is_frozen(fact.chat_id, fact.giver_id) or self.is_frozen(
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

    # -- people, freezes, audit ---------------------------------------------------------

    def remember(self, person: Person) -> None:
        """Keep who we have seen, for @username targets and names; writes only on change."""
        known = self._people.get(person.user_id)
        if known == person and (not self._unsaved or person.user_id not in self._unsaved):
            self._people.move_to_end(person.user_id)
            return
        self._people[person.user_id] = person
        self._unsaved.discard(person.user_id)
        if person.username:
            self._usernames[person.username.casefold()] = person.user_id
        if len(self._people) > KNOWN_USERS_CACHE:
            _, dropped = self._people.popitem(last=False)
            self._unsaved.discard(dropped.user_id)
            if dropped.username:
                self._usernames.pop(dropped.username.casefold(), None)
        # Not awaited: names are a convenience, and a message must not wait for a commit
        # to be remembered. The writer logs a failure; the person's next message writes
        # the name again (a locked or full database fails these writes for a while).
        self.store.remember_person_later(
            KnownPerson(person.user_id, person.username, person.full_name, person.is_bot),
            format_utc(self.clock.now()),
            on_failure=lambda: self._unsaved.add(person.user_id),
        )

    async def person(self, user_id: int) -> Person | None:
        known = self._people.get(user_id)
        if known is not None:
            return known
        return _person(await self.store.known_person(user_id))

    async def find_username(self, username: str) -> Person | None:
        # Memory first: the person may have been seen a moment ago, before their row is
        # committed.
        user_id = self._usernames.get(username.lstrip("@").casefold())
        known = self._people.get(user_id) if user_id is not None else None
        if (
            known is not None
            and known.username
            and known.username.casefold() == (username.lstrip("@").casefold())
        ):
            return known
        return _person(await self.store.known_username(username.lstrip("@")))

    async def name_of(self, user_id: int) -> str:
        """A display name that never pings: the full name, else the id."""
        known = await self.person(user_id)
        return known.full_name if known and known.full_name else f"user {user_id}"

    def is_frozen(self, chat_id: int, user_id: int) -> bool:
        return (chat_id, user_id) in self.gate.frozen

    async def freeze(
        self,
        chat_id: int,
        user_id: int,
        actor_id: int | None,
        reason: str,
        *,
        audit: bool = False,
    ) -> bool:
        """Freeze the account; False if it already was. With `audit`, the admin's audit row
        commits in the same transaction as the freeze."""
        if self.is_frozen(chat_id, user_id):
            return False
        now = format_utc(self.clock.now())
        action = AdminAction(chat_id, actor_id, "freeze", user_id, reason) if audit else None
        await self.retry(self.store.freeze, chat_id, user_id, now, actor_id, reason, action)
        self.gate.frozen.add((chat_id, user_id))
        return True

    async def unfreeze(self, chat_id: int, user_id: int, actor_id: int | None = None) -> bool:
        """Lift a freeze; False if there was none. With `actor_id`, that admin's audit row
        commits in the same transaction."""
        if not self.is_frozen(chat_id, user_id):
            return False
        now = format_utc(self.clock.now())
        action = None
        if actor_id is not None:
            action = AdminAction(chat_id, actor_id, "unfreeze", user_id, "")
        await self.retry(self.store.unfreeze, chat_id, user_id, now, action)
        self.gate.frozen.discard((chat_id, user_id))
        return True

    def outbox_event(
        self, kind: str, chat_id: int | None, user_id: int | None, payload: dict[str, object]
    ) -> OutboxEvent:
        """An event for the outbox, to commit with the write it belongs to."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
        now = format_utc(self.clock.now())
        return OutboxEvent(f"{kind}:{uuid.uuid4().hex}", kind, chat_id, user_id, body, now)

    async def publish_later(
        self, kind: str, chat_id: int | None, user_id: int | None, payload: dict[str, object]
    ) -> None:
        """Queue an event through the outbox: committed like a ledger row, relayed later."""
        await self.retry(self.store.publish, self.outbox_event(kind, chat_id, user_id, payload))

    async def audit(
        self, chat_id: int, actor_id: int, action: str, target_id: int | None, detail: str
    ) -> None:
        now = format_utc(self.clock.now())
        action_row = AdminAction(chat_id, actor_id, action, target_id, detail)
        await self.retry(self.store.record_admin_action, action_row, now)


async def open_services(
    database: DatabaseOptions,
    config: GamificationConfig,
    *,
    clock: Clock | None = None,
    admin_ids: Iterable[int] = (),
    admin_log_chat_id: int | None = None,
) -> GamificationServices:
    """Open the ledger at `database` and load the state that survives restarts."""
    try:
        database.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the folder {database.path.parent} for the ledger:"
            f" {exc.strerror or exc}."
        ) from exc
    engine = await PointsEngine.open(
        database.path,
        policy=LedgerPolicy(
            max_amount=config.ledger.max_amount,
            allow_negative=config.ledger.allow_negative,
            timezone=config.ledger.timezone,
        ),
        clock=clock or SystemClock(),
        synchronous=database.synchronous,
        busy_timeout=database.busy_timeout_seconds,
        write_timeout=database.write_timeout_seconds,
        max_batch=config.ledger.max_batch,
        progress=ProgressRules(
            achievements=config.progress.achievements,
            level_curve=config.progress.level_curve,
            grace_day=config.progress.streak_grace_day,
            timezone=config.ledger.timezone,
        ),
    )
    services = GamificationServices(
        engine,
        config,
        admin_ids=frozenset(admin_ids),
        admin_log_chat_id=admin_log_chat_id,
        retry_seconds=database.retry_seconds,
    )
    try:
        await services.load()
    except BaseException:
        await engine.close()
        raise
    return services
