"""`python -m bot webhook set|delete|info`: the operator's commands for Telegram's webhook.

Instances started with `run --webhook` never set or delete the webhook themselves (several
instances starting would undo each other's settings, and a stopping one would cut off the
rest); the operator does it once with these commands, for the whole deployment.

`set` gives Telegram `[webhook] url` (the full public URL, path included), the secret
token, the update types the enabled plugins handle (the same list polling asks for) and
`max_connections`. Exit codes: 0 done, 1 the Bot API could not be reached or refused,
2 something to configure first (token, url, secret).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import Update, WebhookInfo
from aiogram.utils.token import TokenValidationError, validate_token

from bot.app import make_session
from bot.config import AppConfig
from bot.plugins import CliCommand, DeclaresUpdateTypes, PluginRegistry

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EVERY_UPDATE_TYPE = [name for name in Update.model_fields if name != "update_id"]
METHODS = {"set": "setWebhook", "delete": "deleteWebhook", "info": "getWebhookInfo"}
HELP = "set, delete or show Telegram's webhook for this bot (instances never set it themselves)"


def used_update_types(config: AppConfig, registry: PluginRegistry) -> list[str]:
    """The update types the enabled plugins handle: what `run` asks getUpdates for.

    A plugin that does not declare them gets every update type Telegram has, so nothing it
    may handle is left out (the others cost only bandwidth).
    """
    wanted: set[str] = set()
    for plugin in registry.enabled(config):
        if not isinstance(plugin, DeclaresUpdateTypes):
            log.warning(
                "The plugin %r does not say which updates it handles: subscribing to all.",
                plugin.name,
            )
            return list(EVERY_UPDATE_TYPE)
        wanted.update(plugin.update_types())
    # In Telegram's order, as the dispatcher resolves them.
    return [name for name in EVERY_UPDATE_TYPE if name in wanted]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="webhook_action", required=True, metavar="ACTION")
    describe = {
        "set": "call setWebhook: [webhook] url, secret_token and max_connections, and the"
        " update types the enabled plugins handle",
        "delete": "call deleteWebhook (the bot can poll again)",
        "info": "show getWebhookInfo: url, pending updates, last error, max connections,"
        " allowed updates",
    }
    for name, text in describe.items():
        action = actions.add_parser(
            name,
            help=text,
            description=text + ".",
            epilog="Exit codes: 0 done; 1 the Bot API could not be reached or refused;"
            " 2 something to configure first (bot token; for set: [webhook] url and"
            " secret_token).",
        )
        action.add_argument(
            "--config", metavar="PATH", type=Path, default=argparse.SUPPRESS,
            help="TOML config file, as for `python -m bot --config`",
        )  # fmt: skip
        if name != "info":
            action.add_argument(
                "--drop-pending-updates", action="store_true",
                help="tell Telegram to drop the updates it holds for the bot",
            )  # fmt: skip


def webhook_command(registry: PluginRegistry) -> CliCommand:
    """The `webhook` subcommand of `python -m bot`."""

    async def run(args: argparse.Namespace, config: AppConfig) -> int:
        return await run_webhook_command(args.webhook_action, args, config, registry)

    return CliCommand("webhook", HELP, add_arguments, run)


def fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code


async def run_webhook_command(
    action: str, args: argparse.Namespace, config: AppConfig, registry: PluginRegistry
) -> int:
    token = config.bot.token.get_secret_value()
    if not token:
        return fail(f"No bot token: set BOT_TOKEN or [bot] token in {config.source}.", EXIT_USAGE)
    try:
        validate_token(token)
    except TokenValidationError:
        return fail(
            "The bot token is malformed: it must look like 123456:ABC-DEF (from BotFather).",
            EXIT_USAGE,
        )
    settings = config.webhook
    secret = settings.secret_token.get_secret_value()
    if action == "set":
        if not settings.url:
            return fail(
                f"No webhook URL: set [webhook] url in {config.source} to the public HTTPS"
                " URL Telegram is to call (path included).",
                EXIT_USAGE,
            )
        if not secret:
            return fail(
                "No secret token: set BOT_WEBHOOK_SECRET or [webhook] secret_token in"
                f" {config.source}; the instances refuse updates without it.",
                EXIT_USAGE,
            )
    server = config.bot.api_server or "https://api.telegram.org"
    bot = Bot(token, session=make_session(config))
    try:
        if action == "set":
            allowed = used_update_types(config, registry)
            await bot.set_webhook(
                url=settings.url,
                secret_token=secret,
                allowed_updates=allowed,
                max_connections=settings.max_connections,
                drop_pending_updates=args.drop_pending_updates or None,
            )
            print(f"Webhook set: Telegram sends {', '.join(allowed)} updates to {settings.url}.")
            path = urlsplit(settings.url).path or "/"
            if path != settings.path:
                print(
                    f"Note: the URL's path {path} is not [webhook] path {settings.path}: fine"
                    " only if the proxy in front of the instances rewrites it."
                )
        elif action == "delete":
            await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates or None)
            dropped = "dropped" if args.drop_pending_updates else "kept"
            print(f"Webhook deleted (pending updates {dropped}); the bot can poll again.")
        else:
            for line in describe_info(await bot.get_webhook_info()):
                print(line)
    except TelegramNetworkError as exc:
        return fail(f"Cannot reach the Bot API at {server}: {exc.message}.", EXIT_FAILED)
    except TelegramAPIError as exc:
        return fail(
            f"The Bot API at {server} refused {METHODS[action]}: {exc.message.rstrip('.')}.",
            EXIT_FAILED,
        )
    finally:
        await bot.session.close()
    return EXIT_OK


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_info(info: WebhookInfo) -> Sequence[str]:
    """getWebhookInfo in plain lines (Telegram never returns the secret token)."""
    error = "none"
    if info.last_error_date is not None or info.last_error_message:
        error = f"{_when(info.last_error_date)}: {info.last_error_message or 'no message'}"
    allowed = info.allowed_updates
    return [
        f"url: {info.url or '(none: no webhook is set, the bot polls)'}",
        f"pending updates: {info.pending_update_count}",
        f"last error: {error}",
        f"last synchronization error: {_when(info.last_synchronization_error_date)}",
        f"max connections: {info.max_connections if info.max_connections else 'default'}",
        f"allowed updates: {', '.join(allowed) if allowed else 'default'}",
        f"ip address: {info.ip_address or 'unknown'}",
    ]
