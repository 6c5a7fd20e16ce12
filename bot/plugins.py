"""The plugin protocol, the typed context the host hands a plugin, and the registry type."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiogram import Bot, Dispatcher, Router
from aiogram.types import BotCommand
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from bot.config import AppConfig

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler


class StartupError(Exception):
    """The host or a plugin cannot start; the message is one sentence for the operator.

    A plugin raises it from `setup` for failures the operator must fix (a damaged, locked or
    read-only database); the host prints the sentence and exits 2 instead of a traceback.
    """


@dataclass(frozen=True, slots=True)
class CliCommand:
    """A `python -m bot NAME` subcommand a plugin contributes; `run` returns the exit code."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, AppConfig], Coroutine[Any, Any, int]]


class Clock(Protocol):
    """Where the plugins read the time: aware UTC datetimes (a fake one in the demo and tests)."""

    def now(self) -> datetime: ...


class EventBus(Protocol):
    """A publish/subscribe bus the plugins share (the gamification plugin's bus fits).

    The host only passes it along, so events and handlers are the plugins' own types.
    """

    async def publish(self, event: Any) -> None: ...

    def subscribe(self, pattern: str, handler: Any, *, name: str | None = None) -> Any: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class PluginContext:
    """What the host hands a plugin's setup: configuration and shared infrastructure.

    `exit_stack` closes whatever the plugin opened, in reverse order, when the host stops;
    `workflow_data` is merged into the dispatcher's data so handlers receive it. A plugin may
    include its routers into `dispatcher` itself, or return one router from `setup`.
    `event_bus` and `clock`: shared ones the program passes in; None lets a plugin use its own.
    `web`: the host's application on `[web] listen`, where a plugin may add its pages' routes
    during setup; None when the host serves no pages.
    """

    config: AppConfig
    section: BaseModel
    bot: Bot
    dispatcher: Dispatcher
    scheduler: AsyncIOScheduler | None
    exit_stack: AsyncExitStack
    metrics: CollectorRegistry
    workflow_data: dict[str, Any] = field(default_factory=dict)
    user_commands: list[BotCommand] = field(default_factory=list)
    admin_commands: list[BotCommand] = field(default_factory=list)
    # The menus again per language code (setMyCommands(language_code=...)): (user, admin).
    menus: dict[str, tuple[list[BotCommand], list[BotCommand]]] = field(default_factory=dict)
    event_bus: EventBus | None = None
    clock: Clock | None = None
    web: web.Application | None = None


class Plugin(Protocol):
    """A feature the host can switch on: it owns a config section and returns a router."""

    @property
    def name(self) -> str: ...

    @property
    def config_model(self) -> type[BaseModel]: ...

    async def setup(self, ctx: PluginContext) -> Router | None:
        """Open what the plugin needs (register cleanup on ctx.exit_stack); return a router
        for the host to include, or None when the plugin included its own."""
        ...

    def commands(self) -> Iterable[CliCommand]:
        """Subcommands for `python -m bot`; may be empty."""
        ...


@runtime_checkable
class DeclaresUpdateTypes(Protocol):
    """What a plugin may add to `Plugin`: the update types its handlers take, said without
    being set up (without opening its storage), so `python -m bot webhook set` subscribes
    to exactly those. A plugin without it gets every update type Telegram has."""

    def update_types(self) -> Iterable[str]: ...


class PluginRegistry:
    """Plugins known to this bot, registered by code, never discovered by scanning folders."""

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self._plugins: dict[str, Plugin] = {}
        for plugin in plugins:
            self.register(plugin)

    def register(self, plugin: Plugin) -> None:
        if plugin.name in self._plugins:
            raise ValueError(f"A plugin named {plugin.name!r} is already registered.")
        self._plugins[plugin.name] = plugin

    def get(self, name: str) -> Plugin:
        try:
            return self._plugins[name]
        except KeyError:
            raise KeyError(f"There is no plugin named {name!r}.") from None

    def all(self) -> list[Plugin]:
        return list(self._plugins.values())

    def config_models(self) -> dict[str, type[BaseModel]]:
        return {name: plugin.config_model for name, plugin in self._plugins.items()}

    def enabled(self, config: AppConfig) -> list[Plugin]:
        return [self.get(name) for name in config.plugins.enabled]

    def commands(self) -> list[CliCommand]:
        return [command for plugin in self._plugins.values() for command in plugin.commands()]
