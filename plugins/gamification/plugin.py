"""GamificationPlugin: opens the engine and its services, and builds the plugin's router."""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router
from pydantic import BaseModel

from bot.plugins import CliCommand, PluginContext
from plugins.gamification.cli import cli_commands
from plugins.gamification.config import GamificationConfig
from plugins.gamification.services import open_services


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

        user, admin = menu()
        ctx.user_commands.extend(user)
        ctx.admin_commands.extend(admin)
        return build_router(section)

    def commands(self) -> Iterable[CliCommand]:
        return cli_commands()
