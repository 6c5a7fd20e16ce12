"""`python -m bot`: run the bot, or one of the operator commands the plugins provide."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, load_config
from bot.plugins import CliCommand, PluginRegistry
from bot.registry import ENV_OVERRIDES, check_storage_url, default_plugins, default_registry
from bot.webhook_cli import webhook_command

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE, what a shell reports for `... | head`


def build_parser(commands: Sequence[CliCommand]) -> argparse.ArgumentParser:
    config_help = (
        "TOML config file (default: ./config.toml if present, else built-in defaults;"
        " BOT_TOKEN, BOT_API_SERVER, BOT_DATABASE, BOT_DATABASE_URL, BOT_WEBHOOK_SECRET,"
        " BOT_REDIS_URL and BOT_NATS_URL override it)"
    )
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="An aiogram bot host with the gamification plugin.",
    )
    parser.add_argument("--config", metavar="PATH", type=Path, help=config_help)
    # Accepted after the subcommand too (`python -m bot check --config x.toml`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", type=Path, default=argparse.SUPPRESS, help=config_help
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the bot (long polling, or --webhook) until SIGINT or SIGTERM",
        description="Run the bot with long polling ([bot] api_server selects a local Bot API"
        " server). Each batch of updates is confirmed to the server only once handled, so"
        " a killed bot gets its unfinished updates again. Polling is for one instance;"
        " several instances run with --webhook behind a load balancer. SIGINT or SIGTERM"
        " lets the updates in hand finish, commits queued points and exits 0. The ledger is"
        " [storage] url (sqlite:///path, the default, or postgresql://user@host/db;"
        " BOT_DATABASE_URL) or [storage] database (a SQLite file; BOT_DATABASE).",
        epilog="Exit codes: 0 stopped cleanly; 2 refused to start (config, token, webhook"
        " secret, ledger, an address in use); 3 Telegram refused polling with 409 Conflict"
        " (another process polls with this token, or a webhook is set: `python -m bot"
        " webhook delete`).",
    )
    run.add_argument(
        "--webhook",
        action="store_true",
        help="serve Telegram's webhook at [webhook] listen and path instead of polling,"
        " answering each update only once handled; needs [webhook] secret_token"
        " (BOT_WEBHOOK_SECRET). The webhook itself is set with `python -m bot webhook set`,"
        " never by the instances",
    )
    run.set_defaults(handler=None)
    for command in commands:
        child = sub.add_parser(
            command.name, parents=[common], help=command.help, description=command.help
        )
        command.add_arguments(child)
        child.set_defaults(handler=command)
    return parser


def main(argv: Sequence[str] | None = None, registry: PluginRegistry | None = None) -> int:
    registry = registry or default_registry()
    parser = build_parser([webhook_command(registry), *registry.commands()])
    args = parser.parse_args(argv)
    try:
        config = load_config(
            args.config,
            plugin_models=registry.config_models(),
            default_plugins=default_plugins(),
            storage_url=check_storage_url,
            env_overrides=ENV_OVERRIDES,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=config.logging.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.handler is None:
            from bot.app import run_bot

            code = asyncio.run(run_bot(config, registry, webhook=args.webhook))
        else:
            command: CliCommand = args.handler
            code = asyncio.run(command.run(args, config))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) stopped early. As Python's docs advise: point stdout at
        # devnull so the flush at exit cannot fail again, and end quietly with the code a
        # process killed by SIGPIPE reports.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
