"""The plugin's operator commands for `python -m bot`: check (and more as they arrive)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot.config import AppConfig
from bot.plugins import CliCommand
from plugins.gamification.errors import StorageError
from plugins.gamification.integrity import run_check

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_CANNOT_RUN = 0, 1, 2


def _database(args: argparse.Namespace, config: AppConfig) -> Path:
    return Path(args.db) if args.db else config.storage.database


def _add_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH", help="ledger file (default: [storage] database)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not store this run as the checkpoint the next check is compared with",
    )


async def _check(args: argparse.Namespace, config: AppConfig) -> int:
    path = _database(args, config)
    try:
        report = await asyncio.to_thread(run_check, path, record=not args.no_record)
    except StorageError as exc:
        print(f"check: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(report.to_json() if args.json else report.to_text(listed=20))
    return EXIT_CLEAN if report.ok else EXIT_VIOLATIONS


def cli_commands() -> list[CliCommand]:
    from plugins.gamification.demo import demo_command

    return [
        demo_command(),
        CliCommand(
            name="check",
            help=(
                "verify the ledger: balances equal sums, hash chains, revert links, and the"
                " latest checkpoint; exit 0 clean, 1 violations, 2 could not run"
            ),
            add_arguments=_add_check_arguments,
            run=_check,
        ),
    ]
