"""setup_gamification: points for any aiogram 3 bot, on its own Dispatcher, Bot and scheduler.

    dispatcher = Dispatcher()
    dispatcher.include_router(my_router)
    points = await setup_gamification(dispatcher, bot, database="points.sqlite3")
    await dispatcher.start_polling(bot)  # at shutdown, queued points are committed

The plugin needs nothing from the bundled host (`bot/`): this is the way in for every program,
the bundled host included.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.enums import ParseMode
from aiogram.types import BotCommand
from aiohttp import web as aiohttp_web
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from plugins.gamification.bus.events import EventBus, InProcessBus, redelivers
from plugins.gamification.bus.inbound import InboundEvents
from plugins.gamification.bus.nats import NatsBus, NatsOptions
from plugins.gamification.bus.relay import OutboxRelay
from plugins.gamification.domain.clock import Clock
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.errors import GamificationError, RequestError
from plugins.gamification.engine import PointsEngine
from plugins.gamification.ops.metrics import PointsCollector
from plugins.gamification.services.runtime import Services, open_services
from plugins.gamification.services.web_access import WebOptions
from plugins.gamification.storage.options import DatabaseOptions, Location, LocationError
from plugins.gamification.telegram import Menu, build_router, menus
from plugins.gamification.telegram.announcer import Announcer
from plugins.gamification.telegram.cards import RankCards
from plugins.gamification.telegram.i18n import (
    ChatLocaleMiddleware,
    Speaker,
    UnknownLanguageError,
    open_catalogs,
)
from plugins.gamification.telegram.jobs import integrity_job, weekly_job
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.texts import name_getter
from plugins.gamification.web.server import ChatPages

log = logging.getLogger(__name__)

INTEGRITY_JOB, WEEKLY_JOB = "gamification.integrity", "gamification.weekly"


class SettingsError(GamificationError):
    """The plugin's settings cannot be used; the message names the key and why."""


@dataclass(slots=True)
class Gamification:
    """What `setup_gamification` opened. `close` (run at the dispatcher's shutdown) flushes
    announcements, stops the relay, commits every queued point and closes the ledger."""

    services: Services
    bus: EventBus
    router: Router
    scheduler: AsyncIOScheduler
    # The services with the bus, relay, inbound events and announcer beside them.
    runtime: Runtime
    # The menus in the bot's language (registered without a language code) and in each
    # language with a catalog (registered with it).
    user_commands: list[BotCommand] = field(default_factory=list)
    admin_commands: list[BotCommand] = field(default_factory=list)
    exit_stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    # The chat pages' routes when `web` was given to setup_gamification.
    pages: ChatPages | None = None
    menus: dict[str, Menu] = field(default_factory=dict)

    @property
    def engine(self) -> PointsEngine:
        return self.services.engine

    def add_web_routes(self, app: aiohttp_web.Application) -> None:
        """Serve the chat pages from the program's own aiohttp application (before it
        starts); the bundled host does this on `[web] listen`."""
        if self.pages is None:
            raise SettingsError(
                "The chat pages need setup_gamification(..., web=WebOptions(...))."
            )
        self.pages.add_routes(app)

    async def close(self) -> None:
        """Idempotent: the dispatcher's shutdown and the program's own cleanup may both call it."""
        await self.exit_stack.aclose()


def load_settings(
    config: GamificationConfig | Mapping[str, Any] | str | Path | None,
) -> GamificationConfig:
    """The plugin's settings from a model, a mapping, or a TOML file (its `[gamification]`
    table when it has one, else the whole file); None: the defaults."""
    if config is None:
        return GamificationConfig()
    if isinstance(config, GamificationConfig):
        return config
    source = "the gamification settings"
    if isinstance(config, str | Path):
        source = str(config)
        try:
            data = tomllib.loads(Path(config).read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{source}: cannot be read as TOML ({exc}).") from exc
        config = data.get("gamification", data)
        assert isinstance(config, Mapping)
    try:
        return GamificationConfig.model_validate(dict(config))
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        key = ".".join(str(part) for part in first["loc"])
        blamed = getattr(cause, "key", None)
        if isinstance(blamed, str):
            key = f"{key}.{blamed}" if key else blamed
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{source}: {key or 'gamification'}: {message}.") from None


async def setup_gamification(
    dispatcher: Dispatcher,
    bot: Bot,
    *,
    database: str | Path | Location | DatabaseOptions,
    config: GamificationConfig | Mapping[str, Any] | str | Path | None = None,
    admin_ids: Iterable[int] = (),
    admin_chat_id: int | None = None,
    admin_log_chat_id: int | None = None,
    scheduler: AsyncIOScheduler | None = None,
    timezone: str | None = None,
    event_bus: EventBus | None = None,
    nats: NatsOptions | None = None,
    clock: Clock | None = None,
    metrics: CollectorRegistry | None = None,
    language: str = "en",
    web: WebOptions | None = None,
) -> Gamification:
    """Open the ledger, include the plugin's router in `dispatcher`, and hook its lifecycle.

    Routers included before this call see messages first; the scoring handler lets every
    message go on (SkipHandler), so routers included after it still see them all.
    `database`: a SQLite file (a path or `sqlite:///…`) or `postgresql://user@host/db`, or
    DatabaseOptions with its settings. `web`: where the chat pages are served (the buttons
    under /top and /points open them); serve them with `add_web_routes`.
    `admin_ids` may use every admin command in every chat; `admin_chat_id` receives the daily
    integrity report, `admin_log_chat_id` every admin action. `scheduler`: the program's own
    APScheduler (which it starts); without one the plugin starts its own at the dispatcher's
    startup. `event_bus`: a bus shared with other features; without one the plugin opens its
    own: on NATS JetStream with `nats` (connected in the background: an unreachable server
    never stops the bot), else in-process. Both are put in the dispatcher's data, as
    "gamification" and "event_bus". `language`: what the bot speaks where neither the
    chat's admins (/language) nor the person's Telegram settings choose one of its catalogs.
    Raises GamificationError (one sentence) when the ledger or the settings cannot be used.
    """
    settings = load_settings(config)
    try:
        i18n = open_catalogs(language)
    except UnknownLanguageError as exc:
        raise SettingsError(str(exc)) from None
    try:  # a path, sqlite:///…, postgresql://… (see storage/backends.py)
        options = DatabaseOptions.of(database)
    except LocationError as exc:
        raise RequestError(str(exc)) from None
    if bot.default.parse_mode != ParseMode.HTML:
        # Every reply is HTML with user text escaped; in another mode the tags would show.
        log.warning(
            "The bot's default parse mode is not HTML: points replies will show their tags;"
            " create the Bot with default=DefaultBotProperties(parse_mode=ParseMode.HTML)."
        )
    services = await open_services(
        options,
        settings,
        clock=clock,
        admin_ids=admin_ids,
        admin_log_chat_id=admin_log_chat_id,
    )
    stack = AsyncExitStack()
    stack.push_async_callback(services.close)
    try:
        cards = RankCards(settings.cards) if settings.cards.enabled else None
        if cards is not None:
            stack.callback(cards.close)
        speaker = Speaker(i18n, services.languages)
        runtime = replace(
            await _wire_events(stack, bot, services, event_bus, nats, speaker),
            web=web,
            cards=cards,
        )
        bus = runtime.bus
        assert bus is not None
        own = scheduler is None
        scheduler = scheduler or AsyncIOScheduler(
            timezone=timezone or "UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        _schedule(stack, scheduler, bot, services, admin_chat_id, timezone, speaker, own=own)
        if own:
            dispatcher.startup.register(_starter(scheduler))
        if metrics is not None:
            collector = PointsCollector(runtime)
            metrics.register(collector)
            stack.callback(metrics.unregister, collector)
    except BaseException:
        await stack.aclose()
        raise
    router = build_router(ChatLocaleMiddleware(i18n, services.languages))
    dispatcher.include_router(router)
    dispatcher.workflow_data["gamification"] = services
    dispatcher.workflow_data["event_bus"] = bus
    dispatcher.workflow_data["gamification_runtime"] = runtime
    dispatcher.workflow_data["gamification_speaker"] = speaker
    every = menus(i18n)
    user, admin = every[language]
    pages = ChatPages(services, bot, web, language=language) if web is not None else None
    handle = Gamification(
        services, bus, router, scheduler, runtime, user, admin, stack, pages, menus=every
    )
    dispatcher.shutdown.register(handle.close)
    return handle


async def _wire_events(
    stack: AsyncExitStack,
    bot: Bot,
    services: Services,
    bus: EventBus | None,
    nats: NatsOptions | None,
    speaker: Speaker,
) -> Runtime:
    """The bus, the outbox relay, inbound rules, announcements.

    Closed in reverse order: announcements flushed, relay stopped, bus closed (when ours),
    inbound events drained, then the engine drains its writer.
    """
    inbound = InboundEvents(services)
    # Runs after the bus is closed (no more events come in) and before the engine closes.
    stack.push_async_callback(inbound.drain)
    own: NatsBus | None = None
    if bus is None:
        if nats is None:
            bus = InProcessBus()
        else:
            bus = own = NatsBus(nats)
        stack.push_async_callback(bus.close)
    relay = OutboxRelay(services.engine.store, bus, clock=services.clock)
    services.engine.store.on_commit = relay.notify
    relay.start()
    stack.push_async_callback(relay.stop)
    config = services.config
    # A bus that redelivers acknowledges an event when its handler returns: that handler
    # must return only once the award is committed (and raise to get it again later).
    handle = inbound.process if redelivers(bus) else inbound.handle
    if config.events.enabled:
        for pattern in config.events.subscribe:
            bus.subscribe(pattern, handle, name=f"gamification.inbound {pattern}")

    async def send(chat_id: int, text: str) -> object:
        return await bot.send_message(chat_id, text)

    announcer = Announcer(
        config.progress, send, name_getter(services), speaker, clock=services.clock
    )
    for pattern in announcer.patterns():
        bus.subscribe(pattern, announcer.on_event, name=f"gamification.announcer {pattern}")
    stack.push_async_callback(announcer.close)
    if own is not None:
        # Connects in the background: awarding never waits for NATS.
        own.start()
    return Runtime(services, bus, relay, inbound, announcer)


def _starter(scheduler: AsyncIOScheduler) -> Callable[[], Awaitable[None]]:
    """Our own scheduler starts with the bot's polling (a program's own one, it starts)."""

    async def start() -> None:
        if not scheduler.running:
            scheduler.start()

    return start


def _schedule(
    stack: AsyncExitStack,
    scheduler: AsyncIOScheduler,
    bot: Bot,
    services: Services,
    admin_chat_id: int | None,
    timezone: str | None,
    speaker: Speaker,
    *,
    own: bool,
) -> None:
    """The daily integrity job and the weekly post; removed again when the plugin closes."""
    settings = services.config
    zone = timezone or str(scheduler.timezone)

    async def notify(chat_id: int, text: str) -> object:
        return await bot.send_message(chat_id, text)

    # Each job gets its own trigger too: with it, it claims its slot in the ledger, so of
    # several instances sharing the ledger one runs each scheduled slot (telegram/jobs.py).
    daily = CronTrigger.from_crontab(
        settings.integrity.cron, timezone=settings.integrity.timezone or zone
    )
    scheduler.add_job(
        integrity_job,
        daily,
        args=(services, notify, admin_chat_id, daily, speaker),
        id=INTEGRITY_JOB,
        name="ledger integrity check",
        replace_existing=True,
    )
    jobs = [INTEGRITY_JOB]
    weekly = settings.weekly
    if weekly.enabled and weekly.chats:
        every_week = CronTrigger.from_crontab(weekly.cron, timezone=zone)
        scheduler.add_job(
            weekly_job,
            every_week,
            args=(services, notify, weekly.chats, every_week, speaker),
            id=WEEKLY_JOB,
            name="weekly leaderboard post",
            replace_existing=True,
        )
        jobs.append(WEEKLY_JOB)

    def unschedule() -> None:
        # A job left behind would run against a closed ledger.
        for job in jobs:
            with suppress(JobLookupError):
                scheduler.remove_job(job)
        if own and scheduler.running:
            scheduler.shutdown(wait=False)

    stack.callback(unschedule)
