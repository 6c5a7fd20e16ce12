"""The plugin's operator commands (check, backup, export, rebuild-balances, migrate; demo and
grant come from their own modules), for any host CLI; each works on a SQLite file or a
PostgreSQL database (storage/tasks.py)."""

from __future__ import annotations

import argparse
import getpass
import io
import os
import sys
from pathlib import Path

from plugins.gamification.domain.errors import GamificationError, StorageError
from plugins.gamification.ops.commands import (
    CHAT_ID_MAX,
    CHAT_ID_MIN,
    Command,
    CommandContext,
    add_ledger_argument,
    ledger_location,
)
from plugins.gamification.storage import tasks
from plugins.gamification.storage.export import ExportFormat
from plugins.gamification.storage.integrity import CheckpointNotStoredError
from plugins.gamification.storage.options import Location, LocationError, parse_location
from plugins.gamification.storage.rebuild import (
    BalanceDifference,
    OperationRefusedError,
    RebuildRefusedError,
)
from plugins.gamification.storage.sqlite.files import fd_belongs_to
from plugins.gamification.storage.sqlite.maintenance import partial_name, refuse_unsafe_output
from plugins.gamification.storage.transfer import TransferMismatchError

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_CANNOT_RUN = 0, 1, 2


def _add_check_arguments(parser: argparse.ArgumentParser) -> None:
    add_ledger_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not store this run as the checkpoint the next check is compared with",
    )


async def _check(args: argparse.Namespace, context: CommandContext) -> int:
    unstored: CheckpointNotStoredError | None = None
    try:
        report = await tasks.check(ledger_location(args, context), record=not args.no_record)
    except CheckpointNotStoredError as exc:
        # The verdict stands; only the anchor for the next check is missing.
        report, unstored = exc.report, exc
    except (StorageError, LocationError) as exc:
        print(f"check: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(report.to_json() if args.json else report.to_text(listed=20))
    if unstored is not None:
        sys.stdout.flush()
        print(f"check: {unstored}", file=sys.stderr)
    return EXIT_CLEAN if report.ok else EXIT_VIOLATIONS


def _add_backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dest",
        metavar="DEST",
        help="the backup file to create; must not exist (never a link, device or ledger file)",
    )
    add_ledger_argument(parser)


async def _backup(args: argparse.Namespace, context: CommandContext) -> int:
    dest = Path(args.dest)
    try:
        source = ledger_location(args, context)
        report = await tasks.backup(source, dest)
    except (GamificationError, LocationError) as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    kind = " (a SQLite ledger file)" if source.backend != "sqlite" else ""
    print(f"Backed up {source} to {dest}{kind}; the copy was checked:")
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
    add_ledger_argument(parser)
    parser.add_argument(
        "--out",
        metavar="FILE",
        help=(
            "write here instead of stdout: a new file, or an existing regular file, which is"
            " replaced only once the export is complete; the ledger and its -wal/-shm files,"
            " symbolic links, devices, named pipes and folders are refused"
        ),
    )


async def _export(args: argparse.Namespace, context: CommandContext) -> int:
    if args.chat is not None and not CHAT_ID_MIN <= args.chat <= CHAT_ID_MAX:
        print(
            f"export: --chat {args.chat} is not a chat id (ids are signed 64-bit integers).",
            file=sys.stderr,
        )
        return EXIT_CANNOT_RUN
    try:
        location = ledger_location(args, context)
        if args.out is None:
            if _stdout_is_part_of(location):
                raise OperationRefusedError(
                    f"stdout is the ledger {location} or one of its own files;"
                    " redirect it elsewhere."
                )
            if isinstance(sys.stdout, io.TextIOWrapper):  # UTF-8 and csv's own line ends
                sys.stdout.reconfigure(encoding="utf-8", newline="")
            await tasks.export(location, sys.stdout, args.fmt, args.chat)
            sys.stdout.flush()
        else:
            await _export_to_file(location, Path(args.out), args.fmt, args.chat)
    except (GamificationError, LocationError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except BrokenPipeError:
        raise  # the reader (`| head`) stopped early: `python -m bot` ends quietly
    except OSError as exc:
        print(f"export: could not write {args.out}: {exc.strerror}.", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_CLEAN


def _stdout_is_part_of(ledger: Location) -> bool:
    """`export >> ledger` (the shell's `>` has already truncated it: nothing to save then)."""
    if ledger.path is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (captured in tests, closed)
        return False
    return fd_belongs_to(fd, ledger.path)


async def _export_to_file(
    location: Location, out: Path, fmt: ExportFormat, chat_id: int | None
) -> int:
    """Export into a temporary file beside `out`, renamed only when complete."""
    refuse_unsafe_output(out, location.path)
    partial = partial_name(out)
    try:
        with partial.open("x", encoding="utf-8", newline="") as stream:
            count = await tasks.export(location, stream, fmt, chat_id)
        # Again: `out` may have become something else while the export ran.
        refuse_unsafe_output(out, location.path)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _add_rebuild_arguments(parser: argparse.ArgumentParser) -> None:
    add_ledger_argument(parser)
    parser.add_argument(
        "--apply",
        action="store_true",
        help="write the recomputed cache rows and one admin_actions audit row per account",
    )


async def _rebuild(args: argparse.Namespace, context: CommandContext) -> int:
    try:
        differences = await tasks.rebuild_balances(
            ledger_location(args, context), apply=args.apply, actor=f"cli:{_operator()}"
        )
    except RebuildRefusedError as exc:
        _print_differences(exc.differences)
        print(f"rebuild-balances: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except (GamificationError, LocationError) as exc:
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


def _add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="LEDGER",
        help="the ledger to copy: a file path, sqlite:///path or postgresql://user@host/db",
    )
    parser.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="LEDGER",
        help=(
            "where to copy it: a new file, an empty database, or a ledger without any rows;"
            " its schema is created or migrated first"
        ),
    )


async def _migrate(args: argparse.Namespace, context: CommandContext) -> int:
    try:
        source, target = parse_location(args.source), parse_location(args.target)
        result = await tasks.migrate(source, target)
    except TransferMismatchError as exc:
        print(exc.result.to_text())
        sys.stdout.flush()
        print(f"migrate: {exc}", file=sys.stderr)
        return EXIT_VIOLATIONS
    except (GamificationError, LocationError) as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(result.to_text())
    print(
        f"Copied {sum(result.copied.values()):,} rows from {source} to {target};"
        " both sides check clean with the same digest."
    )
    return EXIT_CLEAN


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def cli_commands() -> list[Command]:
    from plugins.gamification.ops.demo import demo_command
    from plugins.gamification.ops.grant_cli import grant_command
    from plugins.gamification.ops.history_import import import_history_command

    return [
        demo_command(),
        grant_command(),
        import_history_command(),
        Command(
            name="check",
            help=(
                "verify the ledger (SQLite or PostgreSQL): balances equal sums, hash chains,"
                " revert links, and the latest checkpoint, plus SQLite's quick_check or"
                " PostgreSQL's append-only triggers; exit 0 clean, 1 violations, 2 could not"
                " run"
            ),
            add_arguments=_add_check_arguments,
            run=_check,
        ),
        Command(
            name="backup",
            help=(
                "copy the ledger to DEST while the bot may keep writing (one consistent"
                " snapshot, never overwrites DEST), then check the copy; DEST is a SQLite"
                " ledger file on either backend (from PostgreSQL: the same rows and hashes"
                " in SQLite's schema, not a pg_dump), which `check --db DEST` verifies and"
                " `migrate` can bring back; exit 0 clean, 1 the copy has violations, 2 could"
                " not run"
            ),
            add_arguments=_add_backup_arguments,
            run=_backup,
        ),
        Command(
            name="export",
            help=(
                "write every ledger transaction (or one --chat's) in id order as CSV with a"
                " header or as JSON lines, all columns including the hashes, to stdout or"
                " --out; read-only; exit 0, or 2 if it could not run"
            ),
            add_arguments=_add_export_arguments,
            run=_export,
        ),
        Command(
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
        Command(
            name="migrate",
            help=(
                "copy a whole ledger (accounts, transactions with their hashes, outbox,"
                " checkpoints and every side table) from --from to --to, between SQLite and"
                " PostgreSQL either way, in one transaction; the target must be empty; both"
                " sides are checked before the copy commits and their row counts and digests"
                " printed; exit 0 copied, 1 the copy did not verify (rolled back), 2 could"
                " not run or refused"
            ),
            add_arguments=_add_migrate_arguments,
            run=_migrate,
        ),
    ]
