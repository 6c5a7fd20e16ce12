"""PointsEngine: the async API for awarding, deducting, adjusting, reverting and reading points."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from plugins.gamification.domain import arguments
from plugins.gamification.domain.clock import Clock, SystemClock, format_utc, parse_utc
from plugins.gamification.domain.config import Condition
from plugins.gamification.domain.errors import InvalidAmountError, RequestError
from plugins.gamification.domain.models import (
    AccountBalance,
    Breakdown,
    Leaderboard,
    Multiplier,
    Period,
    Receipt,
    Standing,
    Transaction,
    TxKind,
)
from plugins.gamification.domain.progression import (
    Levels,
    ProgressRules,
    counter_of,
    streak_standing,
)
from plugins.gamification.domain.rules import apply_multipliers
from plugins.gamification.storage.backends import open_storage
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.operations import (
    MAX_BALANCE,
    Posting,
    Reversal,
    posting_request,
)
from plugins.gamification.storage.options import Location, LocationError, parse_location
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.storage.sqlite.effects import Effects
from plugins.gamification.storage.sqlite.store import Synchronous

MAX_KEY_LENGTH = 200
# How long a claim of a scheduled run is kept: far longer than any schedule's period, so a
# slot is never claimed twice, and the table stays a few hundred rows.
JOB_RUN_MEMORY = timedelta(days=60)
SYNCHRONOUS_MODES: tuple[Synchronous, ...] = ("OFF", "NORMAL", "FULL", "EXTRA")
# Beyond these, a timeout or batch is a mistake, not a setting (the config allows less).
MAX_TIMEOUT = 86_400.0
MAX_BATCH = 100_000


def _location(value: object) -> Location:
    """A Location, a `sqlite:///` or `postgresql://` URL, or a plain file path."""
    if isinstance(value, Location):
        return value
    if isinstance(value, str) and "://" in value:
        try:
            where = parse_location(value)
        except LocationError as exc:
            raise RequestError(str(exc)) from None
        if where.path is not None:
            arguments.database_path(where.path)
        return where
    return Location("sqlite", path=arguments.database_path(value))


@dataclass(frozen=True, slots=True)
class Progress:
    counters: dict[str, int]
    streak: int
    best_streak: int
    level: int
    earned: int
    next_level_at: int
    unlocked: dict[str, str]
    # Lifetime points at which the current level began (for a progress bar).
    level_at: int = 0

    def value_of(self, condition: Condition) -> int:
        """How far this account is toward an achievement condition."""
        if condition.type == "earned":
            return self.earned
        if condition.type == "streak":
            return self.streak
        return self.counters.get(counter_of(condition), 0)


MAX_REASON_LENGTH = 500


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """The limits every write is checked against before it reaches the writer."""

    max_amount: int = 1_000_000
    allow_negative: bool = False
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        arguments.whole("The policy's max_amount", self.max_amount, least=1, most=MAX_BALANCE)
        arguments.flag("The policy's allow_negative", self.allow_negative)
        arguments.timezone(self.timezone)


class PointsEngine:
    """Validates requests, computes amounts and hands them to the single ledger writer.

    Every write method returns only after its transaction is committed to disk and is
    idempotent on `key`: repeating a key returns the first receipt with `duplicate=True`.
    """

    def __init__(
        self,
        store: LedgerStorage,
        *,
        policy: LedgerPolicy | None = None,
        clock: Clock | None = None,
        effects: Effects | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or LedgerPolicy()
        self.clock = clock or SystemClock()
        # The rules the store's writer applies (`effects`); the engine reads by the same ones.
        self.rules = effects.rules if effects else ProgressRules(timezone=self.policy.timezone)
        self._levels = Levels(self.rules.level_curve)
        self._zone = ZoneInfo(self.policy.timezone)

    @classmethod
    async def open(
        cls,
        location: str | Path | Location,
        *,
        policy: LedgerPolicy | None = None,
        clock: Clock | None = None,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 5.0,
        write_timeout: float = 30.0,
        progress: ProgressRules | None = None,
        max_batch: int = 1024,
    ) -> PointsEngine:
        """Open (creating and migrating when needed) the ledger at `location`: a SQLite file
        (a path or `sqlite:///…`) or a PostgreSQL database (`postgresql://…`), see
        storage/backends.py. `synchronous` and `busy_timeout` are SQLite's alone.

        `progress` sets achievements, the level curve and streak rules; without it there
        are no achievements and levels follow the default curve. Outbox rows are always
        written.
        """
        where = _location(location)
        if policy is not None and not isinstance(policy, LedgerPolicy):
            raise RequestError(f"The policy must be a LedgerPolicy, not {type(policy).__name__}.")
        arguments.choice("The synchronous mode", synchronous, SYNCHRONOUS_MODES)
        arguments.number("The busy timeout", busy_timeout, above=0, most=MAX_TIMEOUT)
        arguments.number("The write timeout", write_timeout, above=0, most=MAX_TIMEOUT)
        arguments.whole("The batch size", max_batch, least=1, most=MAX_BATCH)
        clock = clock or SystemClock()
        policy = policy or LedgerPolicy()
        effects = Effects(progress or ProgressRules(timezone=policy.timezone))
        store = await open_storage(
            where,
            clock=clock,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            write_timeout=write_timeout,
            max_batch=max_batch,
            effects=effects,
        )
        return cls(store, policy=policy, clock=clock, effects=effects)

    async def close(self) -> None:
        """Commit everything queued, then refuse further calls with EngineClosedError."""
        await self.store.close()

    async def __aenter__(self) -> PointsEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes -------------------------------------------------------------------------

    async def award(
        self,
        chat_id: int,
        user_id: int,
        base: int,
        *,
        key: str,
        kind: TxKind = TxKind.ACTIVITY,
        reason: str = "",
        actor_id: int | None = None,
        multipliers: Iterable[Multiplier] = (),
        tag: str = "",
        day_limit: int | None = None,
    ) -> Receipt:
        """Credit `base` times `multipliers` (rounded once) to the account.

        `tag` says what earned it (a message kind, an event type) for progress counters.
        `day_limit` (activity points): refuse with DailyCapError when the account's activity
        points of the day would pass it; the ledger decides, inside its transaction, so
        processes sharing the ledger never both pass a cap.
        """
        self._check_amount(base, "base amount")
        arguments.text("A tag", tag, most=100)
        kind = arguments.posting_kind(kind)
        breakdown = apply_multipliers(base, arguments.multipliers(multipliers), tag=tag)
        if breakdown.result <= 0:
            raise InvalidAmountError("The amount rounds to zero points.")
        if breakdown.result > self.policy.max_amount:
            raise InvalidAmountError(
                f"The multiplied amount must be at most {self.policy.max_amount:,}."
            )
        if day_limit is not None:
            self._check_limit(day_limit)
        return await self._post(
            chat_id, user_id, breakdown, kind, key, actor_id, reason, False, day_limit=day_limit
        )

    async def deduct(
        self,
        chat_id: int,
        user_id: int,
        amount: int,
        *,
        key: str,
        reason: str = "",
        actor_id: int | None = None,
        kind: TxKind = TxKind.ADMIN,
        force: bool = False,
    ) -> Receipt:
        """Debit `amount`; below zero only when the policy allows it or `force` is set."""
        self._check_amount(amount, "amount")
        kind = arguments.posting_kind(kind)
        arguments.flag("The force flag", force)
        breakdown = Breakdown(base=-amount, result=-amount)
        return await self._post(chat_id, user_id, breakdown, kind, key, actor_id, reason, force)

    async def adjust(
        self,
        chat_id: int,
        user_id: int,
        delta: int,
        *,
        key: str,
        actor_id: int | None,
        reason: str,
        force: bool = False,
        audit: AuditNote | None = None,
    ) -> Receipt:
        """An admin correction by `delta` (either sign), recorded with its actor and reason.

        `audit`: the admin_actions row, committed in the same transaction (not for a repeat).
        """
        if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
            raise InvalidAmountError("The adjustment must be a whole number other than zero.")
        self._check_amount(abs(delta), "adjustment")
        arguments.flag("The force flag", force)
        breakdown = Breakdown(base=delta, result=delta)
        return await self._post(
            chat_id, user_id, breakdown, TxKind.ADMIN, key, actor_id, reason, force, audit
        )

    async def revert(
        self,
        tx_id: int,
        *,
        key: str,
        actor_id: int | None,
        reason: str = "",
        chat_id: int | None = None,
        audit: AuditNote | None = None,
    ) -> Receipt:
        """Append the compensating transaction of `tx_id` (at most once; never of a revert).

        With `chat_id`, a transaction of another chat is treated as unknown. `audit`: the
        admin_actions row, committed in the same transaction (not for a repeat).
        """
        arguments.transaction_id(tx_id)
        self._check_text(key, reason)
        arguments.optional_id("actor id", actor_id)
        arguments.optional_id("chat id", chat_id)
        return await self.store.submit(Reversal(tx_id, key, actor_id, reason, chat_id, audit))

    def _post(
        self,
        chat_id: int,
        user_id: int,
        breakdown: Breakdown,
        kind: TxKind,
        key: str,
        actor_id: int | None,
        reason: str,
        force: bool,
        audit: AuditNote | None = None,
        *,
        day_limit: int | None = None,
    ) -> Awaitable[Receipt]:
        """Check and queue a posting; await the result for its receipt once committed."""
        self._check_text(key, reason)
        self._check_ids(chat_id, user_id, actor_id)
        # The breakdown's JSON and the request fingerprint are computed here, on the event
        # loop, rather than on the writer's thread, which every award waits for.
        text = breakdown.to_json()
        posting = Posting(
            chat_id=chat_id,
            user_id=user_id,
            amount=breakdown.result,
            kind=kind,
            key=key,
            actor_id=actor_id,
            reason=reason,
            breakdown=breakdown,
            allow_negative=force or self.policy.allow_negative,
            breakdown_json=text,
            request=posting_request(
                chat_id, user_id, breakdown.result, kind, actor_id, reason, text
            ),
            audit=audit,
            day_limit=day_limit,
        )
        return self.store.submit(posting)

    def _check_amount(self, amount: int, what: str) -> None:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidAmountError(f"The {what} must be a whole number.")
        if amount <= 0:
            raise InvalidAmountError(f"The {what} must be above zero.")
        if amount > self.policy.max_amount:
            raise InvalidAmountError(f"The {what} must be at most {self.policy.max_amount:,}.")

    @staticmethod
    def _check_limit(limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_BALANCE:
            raise InvalidAmountError("The day limit must be a whole number of points, at least 0.")

    @staticmethod
    def _check_ids(chat_id: int, user_id: int, actor_id: int | None = None) -> None:
        """Chat, user and actor ids are 64-bit whole numbers (an actor may be None: system)."""
        arguments.whole_id("chat id", chat_id)
        arguments.whole_id("user id", user_id)
        arguments.optional_id("actor id", actor_id)

    @staticmethod
    def _check_text(key: str, reason: str) -> None:
        arguments.text("An idempotency key", key, least=1, most=MAX_KEY_LENGTH)
        arguments.text("A reason", reason, most=MAX_REASON_LENGTH)

    async def claim_job_run(self, job: str, slot: str, claimant: str) -> bool:
        """Claim the run of `job` scheduled for `slot`; True for its first claimant only.

        Every process sharing the ledger claims before a scheduled run, and only the one
        that gets True runs it. `claimant` names one attempt (a claim retried after a
        failure with the same claimant gets True again if the first try committed); a
        claim kept beside the ledger, never part of its chain, forgotten after 60 days.
        """
        arguments.text("A job name", job, least=1, most=MAX_KEY_LENGTH)
        arguments.text("A job slot", slot, least=1, most=MAX_KEY_LENGTH)
        arguments.text("A claimant", claimant, least=1, most=MAX_KEY_LENGTH)
        now = self.clock.now()
        return await self.store.claim_job_run(
            job, slot, claimant, format_utc(now), format_utc(now - JOB_RUN_MEMORY)
        )

    # -- reads --------------------------------------------------------------------------

    async def check(self, *, record: bool = False, quick_check: bool = True) -> IntegrityReport:
        """Run the integrity check on a connection of its own, off the event loop.

        It compares against the latest stored checkpoint; with `record` its result becomes
        the next checkpoint.
        """
        arguments.flag("The record flag", record)
        arguments.flag("The quick_check flag", quick_check)
        return await self.store.check(record=record, quick_check=quick_check, clock=self.clock)

    # Reads check their arguments exactly like writes: balance("1", "1") is refused, not
    # answered with an empty account that a caller would take for a real one.

    async def balance(self, chat_id: int, user_id: int) -> AccountBalance:
        self._check_ids(chat_id, user_id)
        return await self.store.balance(chat_id, user_id)

    async def history(self, chat_id: int, user_id: int, limit: int = 10) -> list[Transaction]:
        """The account's latest transactions, newest first (at most 500)."""
        self._check_ids(chat_id, user_id)
        return await self.store.history(chat_id, user_id, arguments.limit(limit, 500))

    async def transaction(self, tx_id: int) -> Transaction | None:
        return await self.store.transaction(arguments.transaction_id(tx_id))

    async def transaction_by_key(self, key: str) -> Transaction | None:
        """The transaction written under idempotency key `key`, or None if none was."""
        return await self.store.transaction_by_key(
            arguments.text("An idempotency key", key, least=1, most=MAX_KEY_LENGTH)
        )

    async def leaderboard(
        self, chat_id: int, period: Period = Period.WEEK, limit: int = 10
    ) -> Leaderboard:
        """The period's best (at most 100), ties sharing the better rank."""
        arguments.whole_id("chat id", chat_id)
        period = arguments.period(period)
        since = self.period_start(period)
        rows = await self.store.standings(chat_id, since, arguments.limit(limit, 100))
        lines: list[Standing] = []
        for position, (user, points) in enumerate(rows, 1):
            # Ties share the better rank (1, 2, 2, 4), as `standing` reports it.
            tied = lines and lines[-1].points == points
            lines.append(Standing(lines[-1].rank if tied else position, user, points))
        return Leaderboard(chat_id, period, tuple(lines))

    async def standing(self, chat_id: int, user_id: int, period: Period) -> Standing | None:
        """The user's rank and points in the period; ties share the better rank."""
        self._check_ids(chat_id, user_id)
        period = arguments.period(period)
        found = await self.store.standing_of(chat_id, user_id, self.period_start(period))
        return Standing(found[0], user_id, found[1]) if found else None

    async def progress(self, chat_id: int, user_id: int) -> Progress:
        """Counters, streak, level and unlocked achievements of one account."""
        self._check_ids(chat_id, user_id)
        row = await self.store.progress(chat_id, user_id)
        account = await self.balance(chat_id, user_id)
        level = self._levels.level_of(account.earned)
        today = self.clock.now().astimezone(self._zone).date()
        return Progress(
            counters=row.counters,
            streak=streak_standing(row.streak_day, row.streak_length, today, self.rules.grace_day),
            best_streak=row.streak_best,
            level=level,
            earned=account.earned,
            next_level_at=self._levels.level_floor(level + 1),
            unlocked=row.unlocked,
            level_at=self._levels.level_floor(level),
        )

    async def daily_points(
        self, chat_id: int, user_id: int, days: int = 90
    ) -> list[tuple[date, int]]:
        """Net points per local day (the policy's timezone) of the last `days` days, today
        last; a day without transactions is 0."""
        self._check_ids(chat_id, user_id)
        days = arguments.limit(days, 3660)
        today = self.clock.now().astimezone(self._zone).date()
        first = today - timedelta(days=days - 1)
        since = format_utc(datetime(first.year, first.month, first.day, tzinfo=self._zone))
        totals = {first + timedelta(days=i): 0 for i in range(days)}
        for at, amount in await self.store.amounts_since(chat_id, user_id, since):
            day = parse_utc(at).astimezone(self._zone).date()
            if day in totals:
                totals[day] += amount
        return sorted(totals.items())

    def period_start(self, period: Period, at: datetime | None = None) -> str | None:
        """Start of the calendar day, ISO week or month in the policy's timezone that
        holds `at` (default: now)."""
        period = arguments.period(period)
        if period is Period.ALL:
            return None
        local = (arguments.moment(at) or self.clock.now()).astimezone(self._zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if period is Period.WEEK:
            midnight -= timedelta(days=local.weekday())
        elif period is Period.MONTH:
            midnight = midnight.replace(day=1)
        # Re-attach the zone so a daylight-saving change inside the period is honoured.
        start = datetime(midnight.year, midnight.month, midnight.day, tzinfo=self._zone)
        return format_utc(start)
