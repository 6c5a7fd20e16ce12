"""The plugin's operator commands for `python -m bot`: check, backup, export, rebuild-balances."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import os
import sys
from pathlib import Path
from typing import Literal

from bot.config import AppConfig
from bot.plugins import CliCommand
from plugins.gamification.errors import GamificationError, StorageError
from plugins.gamification.integrity import run_check
from plugins.gamification.operations import (
    BalanceDifference,
    RebuildRefusedError,
    backup,
    export,
    partial_name,
    rebuild_balances,
)

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


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="PATH", help="ledger file (default: [storage] database)")


def _add_backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dest", metavar="DEST", help="the backup file to create; must not exist")
    _add_db(parser)


async def _backup(args: argparse.Namespace, config: AppConfig) -> int:
    source, dest = _database(args, config), Path(args.dest)
    try:
        report = await asyncio.to_thread(backup, source, dest)
    except GamificationError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(f"Backed up {source} to {dest}; the copy was checked:")
    print(report.to_text(listed=20))
    return EXIT_CLEAN if report.ok else EXIT_VIOLATIONS


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        required=True,
        choices=("csv", "jsonl"),
        dest="fmt",
        help="csv: a header row, then one row per transaction; jsonl: one JSON object per line",
    )
    parser.add_argument("--chat", metavar="ID", type=int, help="only this chat's transactions")
    _add_db(parser)
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write here instead of stdout; FILE is replaced only once the export is complete",
    )


async def _export(args: argparse.Namespace, config: AppConfig) -> int:
    path = _database(args, config)
    try:
        if args.out is None:
            if isinstance(sys.stdout, io.TextIOWrapper):  # UTF-8 and csv's own line ends
                sys.stdout.reconfigure(encoding="utf-8", newline="")
            await asyncio.to_thread(export, path, sys.stdout, args.fmt, args.chat)
            sys.stdout.flush()
        else:
            await asyncio.to_thread(_export_to_file, path, Path(args.out), args.fmt, args.chat)
    except GamificationError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except BrokenPipeError:
        # The reader (`| head`) stopped early; that is its choice, not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as exc:
        print(f"export: could not write {args.out}: {exc.strerror}.", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_CLEAN


def _export_to_file(
    path: Path, out: Path, fmt: Literal["csv", "jsonl"], chat_id: int | None
) -> int:
    """Export into a temporary file beside `out`, renamed only when complete."""
    partial = partial_name(out)
    try:
        with partial.open("x", encoding="utf-8", newline="") as stream:
            count = export(path, stream, fmt, chat_id)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _add_rebuild_arguments(parser: argparse.ArgumentParser) -> None:
    _add_db(parser)
    parser.add_argument(
        "--apply",
        action="store_true",
        help="write the recomputed cache rows and one admin_actions audit row per account",
    )


async def _rebuild(args: argparse.Namespace, config: AppConfig) -> int:
    path = _database(args, config)
    try:
        differences = await asyncio.to_thread(
            rebuild_balances, path, apply=args.apply, actor=f"cli:{_operator()}"
        )
    except RebuildRefusedError as exc:
        _print_differences(exc.differences)
        print(f"rebuild-balances: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except GamificationError as exc:
        print(f"rebuild-balances: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    _print_differences(differences)
    if not differences:
        print("Every cached balance matches the ledger; nothing to change.")
        return EXIT_CLEAN
    if args.apply:
        print(f"Rebuilt {_accounts(differences)} from the ledger; each is in admin_actions.")
        return EXIT_CLEAN
    print(
        f"{_accounts(differences)} differ; nothing was changed (--apply fixes them if the"
        " ledger passes the integrity check)."
    )
    return EXIT_VIOLATIONS


def _accounts(differences: list[BalanceDifference]) -> str:
    return f"{len(differences)} account{'' if len(differences) == 1 else 's'}"


def _print_differences(differences: list[BalanceDifference]) -> None:
    for difference in differences:
        print(f"- {difference.describe()}")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def cli_commands() -> list[CliCommand]:
    from plugins.gamification.bench.farming import farming_command
    from plugins.gamification.bench.runner import bench_command
    from plugins.gamification.demo import demo_command

    return [
        demo_command(),
        bench_command(),
        farming_command(),
        CliCommand(
            name="check",
            help=(
                "verify the ledger: balances equal sums, hash chains, revert links, and the"
                " latest checkpoint; exit 0 clean, 1 violations, 2 could not run"
            ),
            add_arguments=_add_check_arguments,
            run=_check,
        ),
        CliCommand(
            name="backup",
            help=(
                "copy the ledger to DEST while the bot may keep writing (one consistent"
                " snapshot, never overwrites DEST), then check the copy; exit 0 clean,"
                " 1 the copy has violations, 2 could not run"
            ),
            add_arguments=_add_backup_arguments,
            run=_backup,
        ),
        CliCommand(
            name="export",
            help=(
                "write every ledger transaction (or one --chat's) in id order as CSV with a"
                " header or as JSON lines, all columns including the hashes, to stdout or"
                " --out; read-only; exit 0, or 2 if it could not run"
            ),
            add_arguments=_add_export_arguments,
            run=_export,
        ),
        CliCommand(
            name="rebuild-balances",
            help=(
                "recompute every account's cached balance, earned, seq and head from the"
                " ledger and list the differences; changes nothing without --apply; --apply"
                " fixes the cache with an audit row each, never touches transactions and is"
                " refused if the integrity check finds the ledger tampered; exit 0 nothing"
                " differs or applied, 1 differences not applied, 2 could not run or refused"
            ),
            add_arguments=_add_rebuild_arguments,
            run=_rebuild,
        ),
    ]
