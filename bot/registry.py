"""The composition root: the plugins this host ships, those installed by entry point, adapted.

The only module of the host that names a plugin. Shipped plugins are adapted here to the
host's `Plugin` protocol; other distributions add theirs under the entry-point group
`aiogram_bot.plugins` (the entry point names a `Plugin` class or factory), and
`[plugins] enabled` chooses among all of them.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from aiogram.client.session.base import BaseSession
from pydantic import BaseModel

from bot.config import AppConfig
from bot.plugins import CliCommand, Plugin, PluginContext, PluginRegistry, StartupError
from bot.testing import RecordingSession, UpdateFactory
from plugins.gamification.bus.nats import NatsOptions
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.ops.commands import Command, CommandContext, OfflineTelegram
from plugins.gamification.services.web_access import WebOptions
from plugins.gamification.setup import setup_gamification
from plugins.gamification.storage.options import (
    DatabaseOptions,
    Location,
    LocationError,
    parse_location,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "aiogram_bot.plugins"


# Environment variables for keys of the shipped plugins' sections (see load_config).
ENV_OVERRIDES = (("BOT_REDIS_URL", "gamification", "anti_abuse.redis_url"),)


def check_storage_url(value: str) -> str:
    """`[storage] url` as the ledger reads it; a LocationError's sentence becomes the config
    error (it never shows a password)."""
    try:
        parse_location(value)
    except LocationError as exc:
        raise ValueError(str(exc).rstrip(".")) from None
    return value


def _location(config: AppConfig) -> Location:
    storage = config.storage
    if storage.url:
        return parse_location(storage.url)
    return Location("sqlite", path=storage.database)


def _database(config: AppConfig) -> DatabaseOptions:
    storage = config.storage
    return DatabaseOptions(
        location=_location(config),
        synchronous=storage.synchronous,
        busy_timeout_seconds=storage.busy_timeout_seconds,
        write_timeout_seconds=storage.write_timeout_seconds,
        retry_seconds=storage.retry_seconds,
    )


def web_options(config: AppConfig) -> WebOptions | None:
    """The `[web]` section as the plugin's chat pages options; None when it serves none."""
    web = config.web
    if not web.listen:
        return None
    return WebOptions(
        public_url=web.public_url,
        app_short_name=web.app_short_name,
        init_data_max_age=web.init_data_max_age_seconds,
        member_cache_seconds=web.member_cache_seconds,
    )


def nats_options(config: AppConfig) -> NatsOptions | None:
    """The `[events]` section as the plugin's NATS bus options; None for the in-process bus."""
    events = config.events
    if events.bus != "nats":
        return None
    return NatsOptions(
        url=events.url,
        stream=events.stream,
        subject_prefix=events.subject_prefix,
        durable_prefix=events.durable_prefix,
        duplicate_window=events.duplicate_window_seconds,
        max_age=events.max_age_days * 86_400,
        ack_wait=events.ack_wait_seconds,
        max_deliver=events.max_deliver,
    )


def _offline_session(admins: Mapping[int, set[int]], now: Callable[[], float]) -> BaseSession:
    return RecordingSession(admins=admins, now=now)


# The demo replays its chat through the host's offline Bot API session and update factory.
OFFLINE = OfflineTelegram(session=_offline_session, updates=lambda now: UpdateFactory(now=now))


def gamification_settings(config: AppConfig, section: GamificationConfig) -> GamificationConfig:
    """The section, with the deprecated `[scheduler] integrity_cron` applied when it is set."""
    old = config.scheduler.integrity_cron
    if old is None:
        return section
    log.warning(
        "%s: [scheduler] integrity_cron is deprecated; set [gamification.integrity] cron"
        " instead%s.",
        config.source,
        " (which is set, and wins)" if "cron" in section.integrity.model_fields_set else "",
    )
    if "cron" in section.integrity.model_fields_set:
        return section
    integrity = section.integrity.model_copy(update={"cron": old})
    return section.model_copy(update={"integrity": integrity})


class GamificationPlugin:
    """The points plugin, set up through its own public `setup_gamification`."""

    name = "gamification"
    config_model: type[BaseModel] = GamificationConfig

    async def setup(self, ctx: PluginContext) -> None:
        if not isinstance(ctx.section, GamificationConfig):
            raise TypeError("the gamification plugin needs its own config section")
        config = ctx.config
        try:
            plugin = await setup_gamification(
                ctx.dispatcher,
                ctx.bot,
                database=_database(config),
                config=gamification_settings(config, ctx.section),
                admin_ids=config.bot.admin_ids,
                admin_chat_id=config.bot.admin_chat_id,
                admin_log_chat_id=config.bot.admin_log_chat_id,
                scheduler=ctx.scheduler,
                timezone=config.scheduler.timezone,
                event_bus=ctx.event_bus,
                nats=nats_options(config),
                clock=ctx.clock,
                metrics=ctx.metrics,
                language=config.bot.language,
                web=web_options(config) if ctx.web is not None else None,
            )
        except GamificationError as exc:  # one sentence already: the host prints it, exit 2
            raise StartupError(str(exc)) from exc
        ctx.exit_stack.push_async_callback(plugin.close)
        if ctx.web is not None:
            plugin.add_web_routes(ctx.web)
        ctx.user_commands.extend(plugin.user_commands)
        ctx.admin_commands.extend(plugin.admin_commands)
        for code, menu in plugin.menus.items():
            ctx.menus[code] = menu

    def update_types(self) -> list[str]:
        """The update types the plugin's router handles (for `webhook set`), from a router
        built apart, without opening the ledger."""
        from aiogram import Dispatcher

        from plugins.gamification.telegram import build_router

        dispatcher = Dispatcher()
        dispatcher.include_router(build_router())
        return dispatcher.resolve_used_update_types()

    def commands(self) -> Iterable[CliCommand]:
        from plugins.gamification.ops.cli import cli_commands

        return [_adapt(command) for command in cli_commands()]


def _adapt(command: Command) -> CliCommand:
    """A plugin command as a `python -m bot` subcommand, its context taken from the config."""

    async def run(args: argparse.Namespace, config: AppConfig) -> int:
        section = config.section("gamification")
        context = CommandContext(
            database=_database(config),
            settings=section if isinstance(section, GamificationConfig) else GamificationConfig(),
            admin_ids=frozenset(config.bot.admin_ids),
            offline=OFFLINE,
        )
        return await command.run(args, context)

    return CliCommand(command.name, command.help, command.add_arguments, run)


def shipped_plugins() -> list[Plugin]:
    """The plugins that come with this host, on by default."""
    return [GamificationPlugin()]


def installed_plugins(group: str = ENTRY_POINT_GROUP) -> list[Plugin]:
    """Plugins other distributions declare under the entry-point group; each is loaded and
    called (a class or a factory) to make the plugin."""
    found: list[Plugin] = []
    for entry in entry_points(group=group):
        try:
            factory: Any = entry.load()
            found.append(factory())
        except Exception as exc:  # someone else's code: one line, and the host still runs
            log.warning(
                "The plugin %r (entry point %s) cannot be loaded and is left out: %s",
                entry.name,
                entry.value,
                exc,
            )
    return found


def default_registry() -> PluginRegistry:
    """Every plugin this bot can run: shipped first, then installed ones by entry point."""
    registry = PluginRegistry(shipped_plugins())
    for plugin in installed_plugins():
        try:
            registry.register(plugin)
        except ValueError as exc:
            log.warning("An installed plugin is left out: %s", exc)
    return registry


def default_plugins() -> list[str]:
    """What `[plugins] enabled` is when the config leaves it out: the shipped plugins."""
    return [plugin.name for plugin in shipped_plugins()]
