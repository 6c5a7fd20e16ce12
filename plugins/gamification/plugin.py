"""GamificationPlugin: opens the engine and its services, and builds the plugin's router."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel

from bot.plugins import CliCommand, PluginContext
from plugins.gamification.cli import cli_commands
from plugins.gamification.config import GamificationConfig
from plugins.gamification.jobs import integrity_job
from plugins.gamification.services import GamificationServices, open_services


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


class GamificationPlugin:
    name = "gamification"
    config_model: type[BaseModel] = GamificationConfig

    async def setup(self, ctx: PluginContext) -> Router:
        section = ctx.section
        if not isinstance(section, GamificationConfig):
            raise TypeError("the gamification plugin needs its own config section")
        services = await open_services(ctx.config, section, clock=ctx.extras.get("clock"))
        ctx.exit_stack.push_async_callback(services.close)
        ctx.workflow_data["gamification"] = services
        from plugins.gamification.handlers import build_router, menu

        if ctx.scheduler is not None:
            schedule_integrity(ctx, services)
        user, admin = menu()
        ctx.user_commands.extend(user)
        ctx.admin_commands.extend(admin)
        return build_router(section)

    def commands(self) -> Iterable[CliCommand]:
        return cli_commands()
