"""Services: the plugin's application services, built once and frozen, that the handlers
receive under the dispatcher data key "gamification"."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from plugins.gamification.domain.anti_abuse import AntiAbuseGate
from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.errors import StorageError
from plugins.gamification.domain.multipliers import MultiplierRules
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.engine import LedgerPolicy, PointsEngine
from plugins.gamification.services.engagement import EngagementService
from plugins.gamification.services.gate_state import GateState, MemoryGateState
from plugins.gamification.services.languages import ChatLanguages
from plugins.gamification.services.moderation import Moderation
from plugins.gamification.services.people import People
from plugins.gamification.services.reports import IntegrityReports
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.services.scoring import Scoring
from plugins.gamification.services.stats import Stats
from plugins.gamification.services.thanks import Thanks
from plugins.gamification.services.today import Today
from plugins.gamification.storage.options import DatabaseOptions


@dataclass(frozen=True, slots=True)
class Services:
    """Each service has one job; the shared pieces (gate, stats, retry) are built once and
    handed to the services that use them."""

    engine: PointsEngine
    config: GamificationConfig
    # Every write the handlers and bus events make goes through it (see retry.py).
    retry: StorageRetry
    # The anti-abuse rules (with backend "memory", also their state), and the backend.
    gate: AntiAbuseGate
    gate_state: GateState
    multipliers: MultiplierRules
    stats: Stats
    today: Today
    people: People
    moderation: Moderation
    engagement: EngagementService
    scoring: Scoring
    thanks: Thanks
    reports: IntegrityReports
    languages: ChatLanguages
    admin_ids: frozenset[int] = frozenset()
    admin_log_chat_id: int | None = None
    # (chat, user) -> (expires at, monotonic seconds; is admin); bounded by the handler.
    admin_cache: OrderedDict[tuple[int, int], tuple[float, bool]] = field(
        default_factory=OrderedDict
    )

    @property
    def clock(self) -> Clock:
        return self.engine.clock

    async def close(self) -> None:
        try:
            await self.gate_state.close()
        finally:
            await self.engine.close()


def build_services(
    engine: PointsEngine,
    config: GamificationConfig,
    *,
    admin_ids: frozenset[int] = frozenset(),
    admin_log_chat_id: int | None = None,
    retry_seconds: float = 30.0,
    gate_state: GateState | None = None,
) -> Services:
    """Wire the services around an open engine (frozen accounts are read by `open_services`,
    or by `moderation.load()`). `gate_state`: the anti-abuse backend the config names,
    made here when not given."""
    retry = StorageRetry(engine.store.health, bound=retry_seconds)
    state = gate_state or gate_backend(config, engine.clock)
    gate = state.gate
    multipliers = MultiplierRules(config.multipliers, config.ledger.timezone)
    stats = Stats()
    today = Today(engine)
    moderation = Moderation(engine.store, engine.clock, state, retry, config.anti_abuse)
    engagement = EngagementService(engine, config, state, stats, today)
    scoring = Scoring(
        engine,
        config,
        gate=state,
        multipliers=multipliers,
        stats=stats,
        retry=retry,
        today=today,
        engagement=engagement,
        moderation=moderation,
    )
    thanks = Thanks(
        engine,
        config,
        stats=stats,
        retry=retry,
        today=today,
        engagement=engagement,
        moderation=moderation,
    )
    return Services(
        engine=engine,
        config=config,
        retry=retry,
        gate=gate,
        gate_state=state,
        multipliers=multipliers,
        stats=stats,
        today=today,
        people=People(engine.store, engine.clock),
        moderation=moderation,
        engagement=engagement,
        scoring=scoring,
        thanks=thanks,
        reports=IntegrityReports(),
        languages=ChatLanguages(engine.store, engine.clock, retry),
        admin_ids=admin_ids,
        admin_log_chat_id=admin_log_chat_id,
    )


def gate_backend(config: GamificationConfig, clock: Clock) -> GateState:
    """The anti-abuse gate on the configured backend (Redis: not connected yet; `start`)."""
    gate = AntiAbuseGate(config.anti_abuse)
    if config.anti_abuse.backend == "redis":
        from plugins.gamification.services.redis_gate import RedisGateState

        return RedisGateState(gate, clock)
    return MemoryGateState(gate)


async def open_services(
    database: DatabaseOptions,
    config: GamificationConfig,
    *,
    clock: Clock | None = None,
    admin_ids: Iterable[int] = (),
    admin_log_chat_id: int | None = None,
    gate_state: GateState | None = None,
) -> Services:
    """Open the ledger at `database` and load the state that survives restarts.

    `gate_state`: the anti-abuse backend, when not the one the config names (a replay of
    a chat's history judges on its own memory, by its own clock)."""
    if database.backend == "sqlite":  # a server's database is never a folder to create
        try:
            database.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot create the folder {database.path.parent} for the ledger:"
                f" {exc.strerror or exc}."
            ) from exc
    engine = await PointsEngine.open(
        database.location,
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
    services = build_services(
        engine,
        config,
        admin_ids=frozenset(admin_ids),
        admin_log_chat_id=admin_log_chat_id,
        retry_seconds=database.retry_seconds,
        gate_state=gate_state,
    )
    state = services.gate_state
    try:
        # The shared store first: a freeze made meanwhile then shows as a change to read.
        await state.start(services.moderation.load)
        await services.moderation.load()
    except BaseException:
        await services.close()
        raise
    return services
