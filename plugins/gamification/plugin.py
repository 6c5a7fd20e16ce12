"""GamificationPlugin: opens the engine and its services, and builds the plugin's router."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel

from bot.plugins import CliCommand, PluginContext, StartupError
from plugins.gamification.announcer import Announcer
from plugins.gamification.cli import cli_commands
from plugins.gamification.config import GamificationConfig
from plugins.gamification.errors import GamificationError
from plugins.gamification.events import EventBus, InProcessBus
from plugins.gamification.inbound import InboundEvents
from plugins.gamification.jobs import integrity_job, weekly_job
from plugins.gamification.metrics import PointsCollector
from plugins.gamification.relay import OutboxRelay
from plugins.gamification.services import GamificationServices, open_services


def wire_events(ctx: PluginContext, services: GamificationServices) -> None:
    """The bus (shared with other plugins), the outbox relay, inbound rules, announcements.

    Closed in reverse order: announcements flushed, relay stopped, bus closed, then the
    engine drains its writer (the exit stack runs these before `services.close`).
    """
    inbound = InboundEvents(services)
    # Runs after the bus is closed (no more events come in) and before the engine closes.
    ctx.exit_stack.push_async_callback(inbound.drain)
    bus: EventBus | None = ctx.extras.get("event_bus")
    if bus is None:
        own = InProcessBus()
        ctx.exit_stack.push_async_callback(own.close)
        bus = own
    ctx.workflow_data["event_bus"] = bus
    relay = OutboxRelay(services.store, bus, clock=services.clock)
    services.store.on_commit = relay.notify
    relay.start()
    ctx.exit_stack.push_async_callback(relay.stop)
    config = services.config
    if config.events.enabled:
        for pattern in config.events.subscribe:
            bus.subscribe(pattern, inbound.handle, name=f"gamification.inbound {pattern}")
    bot = ctx.bot

    async def send(chat_id: int, text: str) -> object:
        return await bot.send_message(chat_id, text)

    announcer = Announcer(config.progress, send, services.name_of)
    for pattern in announcer.patterns():
        bus.subscribe(pattern, announcer.on_event, name=f"gamification.announcer {pattern}")
    ctx.exit_stack.push_async_callback(announcer.close)
    services.bus, services.relay, services.inbound = bus, relay, inbound
    services.announcer = announcer


def schedule_integrity(ctx: PluginContext, services: GamificationServices) -> None:
    """The daily integrity job, at `[scheduler] integrity_cron` in its timezone."""
    settings = ctx.config.scheduler
    bot = ctx.bot

    async def notify(chat_id: int, text: str) -> object:
        return await bot.send_message(chat_id, text)

    assert ctx.scheduler is not None
    ctx.scheduler.add_job(
        integrity_job,
        CronTrigger.from_crontab(settings.integrity_cron, timezone=settings.timezone),
        args=(services, notify, ctx.config.bot.admin_chat_id),
        id="gamification.integrity",
        name="ledger integrity check",
        replace_existing=True,
    )
    weekly = services.config.weekly
    if weekly.enabled and weekly.chats:
        ctx.scheduler.add_job(
            weekly_job,
            CronTrigger.from_crontab(weekly.cron, timezone=settings.timezone),
            args=(services, notify, weekly.chats),
            id="gamification.weekly",
            name="weekly leaderboard post",
            replace_existing=True,
        )


class GamificationPlugin:
    name = "gamification"
    config_model: type[BaseModel] = GamificationConfig

    async def setup(self, ctx: PluginContext) -> Router:
        section = ctx.section
        if not isinstance(section, GamificationConfig):
            raise TypeError("the gamification plugin needs its own config section")
        try:
            services = await open_services(ctx.config, section, clock=ctx.extras.get("clock"))
        except GamificationError as exc:  # one sentence already: the host prints it, exit 2
            raise StartupError(str(exc)) from exc
        ctx.exit_stack.push_async_callback(services.close)
        ctx.workflow_data["gamification"] = services
        wire_events(ctx, services)
        ctx.metrics.register(PointsCollector(services))
        from plugins.gamification.handlers import build_router, menu

        if ctx.scheduler is not None:
            schedule_integrity(ctx, services)
        user, admin = menu()
        ctx.user_commands.extend(user)
        ctx.admin_commands.extend(admin)
        return build_router()

    def commands(self) -> Iterable[CliCommand]:
        return cli_commands()
