"""Builds the Bot, Dispatcher, scheduler and plugins, and runs them until a signal."""

from __future__ import annotations

import gc
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TypedDict

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import BotCommand, BotCommandScopeAllChatAdministrators, BotCommandScopeDefault
from aiogram.utils.token import TokenValidationError, validate_token
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from bot.config import AppConfig
from bot.errors import not_for_redelivery, on_error
from bot.flood import FloodControl
from bot.metrics import MetricsServer, serve_metrics
from bot.plugins import Clock, EventBus, PluginContext, PluginRegistry, StartupError
from bot.polling import Poller
from bot.scheduler import build_scheduler
from bot.web import WebServer
from bot.webhook import WebhookServer

log = logging.getLogger(__name__)

# run's exit codes: stopped cleanly; refused to start (config, token, secret, ledger,
# address in use); Telegram answered polling with 409 Conflict.
EXIT_OK, EXIT_USAGE, EXIT_CONFLICT = 0, 2, 3
# Never used to reach Telegram: offline runs (demo, tests) need a syntactically valid token.
OFFLINE_TOKEN = "1000000000:offline-token-that-never-leaves-this-process"


class HostData(TypedDict):
    """The host's entries in the dispatcher's workflow data, available to every handler.

    Once every plugin is set up the host adds `command_menu` (`App.menu`): the whole bot's
    command menu in a language, for a chat that gets menus of its own.
    """

    config: AppConfig
    scheduler: AsyncIOScheduler
    # [bot] language, for the host's own replies (see errors.py).
    language: str


@dataclass(slots=True)
class App:
    bot: Bot
    dispatcher: Dispatcher
    scheduler: AsyncIOScheduler
    exit_stack: AsyncExitStack
    plugins: list[str]
    metrics: CollectorRegistry
    metrics_server: MetricsServer | None = None
    # The pages' application on [web] listen (the plugins added their routes); None: off.
    web: web.Application | None = None
    user_commands: list[BotCommand] = field(default_factory=list)
    admin_commands: list[BotCommand] = field(default_factory=list)
    # The same menus per language code, registered with it.
    menus: dict[str, tuple[list[BotCommand], list[BotCommand]]] = field(default_factory=dict)

    def menu(self, language: str | None) -> tuple[list[BotCommand], list[BotCommand]]:
        """(everyone's commands, the admins' extra ones) in `language` (None: the bot's)."""
        if language is None:
            return self.user_commands, self.admin_commands
        return self.menus.get(language, (self.user_commands, self.admin_commands))

    async def register_menus(self) -> None:
        """setMyCommands for every scope the bot uses: without a language code (the
        `[bot] language` menus) and once per language a plugin has menus in."""
        everyone, admins = BotCommandScopeDefault(), BotCommandScopeAllChatAdministrators()
        await self.bot.set_my_commands(self.user_commands, scope=everyone)
        await self.bot.set_my_commands(self.user_commands + self.admin_commands, scope=admins)
        for code in sorted(self.menus):
            user, admin = self.menu(code)
            await self.bot.set_my_commands(user, scope=everyone, language_code=code)
            await self.bot.set_my_commands(user + admin, scope=admins, language_code=code)

    async def close(self) -> None:
        """Close plugins (draining their writers) and then the HTTP session."""
        if self.metrics_server is not None:
            self.metrics_server.close()
        await self.exit_stack.aclose()
        await self.bot.session.close()


def make_session(config: AppConfig) -> AiohttpSession:
    if not config.bot.api_server:
        return AiohttpSession()
    return AiohttpSession(api=TelegramAPIServer.from_base(config.bot.api_server, is_local=True))


async def build_app(
    config: AppConfig,
    registry: PluginRegistry,
    *,
    session: BaseSession | None = None,
    token: str | None = None,
    event_bus: EventBus | None = None,
    clock: Clock | None = None,
) -> App:
    """Wire the enabled plugins into one Dispatcher; on failure everything opened is closed.

    `event_bus` and `clock` are handed to every plugin (None: each uses its own).
    """
    online = session is None
    bot = Bot(
        token or config.bot.token.get_secret_value() or OFFLINE_TOKEN,
        session=session or make_session(config),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    if online:
        # Telegram's limits apply to Telegram; an offline session (demo, tests) has none.
        bot.session.middleware(FloodControl())
    scheduler = build_scheduler(config.scheduler)
    host: HostData = {"config": config, "scheduler": scheduler, "language": config.bot.language}
    dispatcher = Dispatcher(name="host", **host)
    # Not for errors that ask for the update again: those must reach the Poller.
    dispatcher.errors.register(on_error, not_for_redelivery)
    stack = AsyncExitStack()
    app = App(bot, dispatcher, scheduler, stack, [], CollectorRegistry())
    contexts: list[PluginContext] = []
    if config.web.listen:
        app.web = web.Application()
    try:
        for plugin in registry.enabled(config):
            section = config.section(plugin.name)
            assert section is not None  # load_config fills every enabled plugin's section
            ctx = PluginContext(
                config=config,
                section=section,
                bot=bot,
                dispatcher=dispatcher,
                scheduler=scheduler,
                exit_stack=stack,
                metrics=app.metrics,
                event_bus=event_bus,
                clock=clock,
                web=app.web,
            )
            router = await plugin.setup(ctx)
            if router is not None:
                dispatcher.include_router(router)
            dispatcher.workflow_data.update(ctx.workflow_data)
            app.user_commands.extend(ctx.user_commands)
            app.admin_commands.extend(ctx.admin_commands)
            contexts.append(ctx)
            app.plugins.append(plugin.name)
        # A language's menu has every plugin's commands: in that language where the plugin
        # has them, else as it gave them (a plugin without translations keeps its commands).
        for code in sorted({code for ctx in contexts for code in ctx.menus}):
            user, admin = app.menus.setdefault(code, ([], []))
            for ctx in contexts:
                theirs = ctx.menus.get(code, (ctx.user_commands, ctx.admin_commands))
                user.extend(theirs[0])
                admin.extend(theirs[1])
        # For a chat's own menus in its language (/language): the whole bot's, not one plugin's.
        dispatcher.workflow_data["command_menu"] = app.menu
        try:
            app.metrics_server = serve_metrics(app.metrics, config.metrics)
        except OSError as exc:
            raise StartupError(
                f"Cannot serve metrics at [metrics] listen = {config.metrics.listen!r}:"
                f" {exc.strerror or exc}; choose another address or stop what uses it."
            ) from exc
    except BaseException:
        await app.close()
        raise
    return app


def router_names(dispatcher: Dispatcher) -> list[str]:
    names: list[str] = []
    pending = list(dispatcher.sub_routers)
    while pending:
        router = pending.pop(0)
        names.append(router.name)
        pending.extend(router.sub_routers)
    return names


async def run_bot(config: AppConfig, registry: PluginRegistry, *, webhook: bool = False) -> int:
    """Long polling (or, with `webhook`, the webhook server) until SIGINT/SIGTERM, then
    drain and close everything; the exit code."""
    token = config.bot.token.get_secret_value()
    if not token:
        log.error("No bot token: set BOT_TOKEN or [bot] token in %s.", config.source)
        return EXIT_USAGE
    try:
        validate_token(token)
    except TokenValidationError:
        log.error("The bot token is malformed: it must look like 123456:ABC-DEF (from BotFather).")
        return EXIT_USAGE
    secret = config.webhook.secret_token.get_secret_value()
    if webhook and not secret:
        log.error(
            "run --webhook needs a secret token, or anyone could post updates to it: set"
            " BOT_WEBHOOK_SECRET or [webhook] secret_token in %s (the one `python -m bot"
            " webhook set` gives Telegram).",
            config.source,
        )
        return EXIT_USAGE
    try:
        app = await build_app(config, registry, token=token)
    except StartupError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    server: WebhookServer | None = None
    if webhook:
        host, port = config.webhook.address()
        server = WebhookServer(
            app.dispatcher, app.bot, secret_token=secret, host=host, port=port,
            path=config.webhook.path, handle_signals=True,
        )  # fmt: skip
        try:
            await server.bind()
        except OSError as exc:
            log.error(
                "Cannot listen for the webhook at [webhook] listen = %r: %s; choose another"
                " address or stop what uses it.",
                config.webhook.listen, exc.strerror or exc,
            )  # fmt: skip
            await app.close()
            return EXIT_USAGE
    pages: WebServer | None = None
    if app.web is not None:
        pages = WebServer(app.web, *config.web.address())
        try:
            await pages.start()
        except OSError as exc:
            log.error(
                "Cannot serve the chat pages at [web] listen = %r: %s; choose another"
                " address or stop what uses it.",
                config.web.listen, exc.strerror or exc,
            )  # fmt: skip
            if server is not None:
                await server.close()
            await app.close()
            return EXIT_USAGE
    # Everything built so far (aiogram's and pydantic's type machinery, the plugins) lives
    # as long as the process: moving it out of the collector's generations keeps full
    # collections short while thousands of updates are in flight.
    gc.collect()
    gc.freeze()
    code = EXIT_OK
    try:
        log.info(
            "Starting: plugins %s; routers %s; API server %s",
            ", ".join(app.plugins) or "none",
            ", ".join(router_names(app.dispatcher)),
            config.bot.api_server or "api.telegram.org",
        )
        try:
            await app.register_menus()
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("Could not register the command menu: %s", exc)
        app.scheduler.start()
        # Never setWebhook or deleteWebhook here: with several instances, each start would
        # undo the others' (that is `python -m bot webhook set|delete`, the operator's).
        if server is not None:
            await server.run()
        else:
            poller = Poller(app.dispatcher, app.bot)
            await poller.run(handle_signals=True)
            if poller.conflict:
                code = EXIT_CONFLICT
    finally:
        if server is not None:
            await server.close()
        if pages is not None:
            await pages.close()
        if app.scheduler.running:
            app.scheduler.shutdown(wait=False)
        await app.close()
        log.info("Stopped cleanly." if code == EXIT_OK else "Stopped.")
    return code
