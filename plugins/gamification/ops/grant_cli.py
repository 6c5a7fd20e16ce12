"""The `grant` operator command: add points to (or set the balances of) many people in a
chat from a CSV file, as one audited, repeatable operation."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.engine import LedgerPolicy, PointsEngine
from plugins.gamification.ops.commands import (
    CHAT_ID_MAX,
    CHAT_ID_MIN,
    Command,
    CommandContext,
    add_ledger_argument,
    ledger_location,
)
from plugins.gamification.ops.grant import GrantOutcome, GrantPlan, apply_grant, plan_grant
from plugins.gamification.ops.grant_file import GrantFileError, GrantMode, read_grant_file
from plugins.gamification.services.people import People
from plugins.gamification.storage.operations import MAX_BALANCE
from plugins.gamification.storage.options import Location, LocationError

EXIT_DONE, EXIT_REFUSED, EXIT_CANNOT_RUN = 0, 1, 2
# Bad rows listed one sentence each; past this, only their number.
LISTED = 20
MAX_FILE_BYTES = 64 * 1024 * 1024
HELP = (
    "add (or subtract) points for many people of one chat from a CSV file of user (numeric id"
    " or @username the bot has seen), points (signed: negative deducts) and an optional"
    " reason, with an optional header line `user,points,reason`; with --set the points are"
    " each person's target balance, written as the adjustment that reaches it (a migration"
    " from another bot). Every row is checked against the ledger first: any bad row refuses"
    " the whole file, naming line and column, and nothing is written. Each row's"
    " idempotency key comes from the file's content, so running the same file again changes"
    " nothing; each change and the operation itself are recorded in admin_actions. Exit 0"
    " done (or nothing left to do), 1 refused or a row failed, 2 could not run"
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE.csv", help="the grant file (UTF-8 CSV)")
    parser.add_argument("--chat", metavar="ID", type=int, required=True, help="the chat's id")
    parser.add_argument(
        "--set",
        dest="set_balances",
        action="store_true",
        help=(
            "the points column is each person's target balance (0 allowed): the change"
            " written is target - current balance; rows already at their target change"
            " nothing"
        ),
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would happen, row by row, and write nothing",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow deductions that take a balance below zero when [ledger] allow_negative is off",
    )
    add_ledger_argument(parser)


async def _grant(args: argparse.Namespace, context: CommandContext) -> int:
    if not CHAT_ID_MIN <= args.chat <= CHAT_ID_MAX:
        return _cannot(f"--chat {args.chat} is not a chat id (ids are signed 64-bit integers).")
    mode: GrantMode = "set" if args.set_balances else "add"
    path = Path(args.file)
    try:
        location = ledger_location(args, context)
    except LocationError as exc:
        return _cannot(str(exc))
    data = _read(path)
    if isinstance(data, int):
        return data
    try:
        grant_file = read_grant_file(data, chat_id=args.chat, mode=mode)
    except GrantFileError as exc:
        return _refuse(f"{path}: {exc} Nothing was written.")
    if location.backend == "sqlite" and not location.sqlite_path.exists():
        return _cannot(f"there is no ledger at {location.sqlite_path}; check --db.")
    try:
        engine = await _open(location, context, achievements=mode == "add")
    except GamificationError as exc:
        return _cannot(str(exc))
    try:
        plan = await plan_grant(
            engine,
            People(engine.store, engine.clock),
            grant_file,
            chat_id=args.chat,
            mode=mode,
            force=args.force,
        )
        if plan.problems:
            return _refuse_rows(path, plan)
        if args.dry_run:
            _print(plan, None)
            return EXIT_DONE
        outcome = await apply_grant(engine, plan, force=args.force, operator=f"cli:{_operator()}")
    except GamificationError as exc:
        return _cannot(str(exc))
    finally:
        await engine.close()
    _print(plan, outcome)
    if outcome.failures:
        sys.stdout.flush()
        for line, sentence in outcome.failures[:LISTED]:
            print(f"- Line {line}: {sentence}", file=sys.stderr)
        print(
            f"grant: {len(outcome.failures)} rows failed and were not written; run the same"
            " file again to write exactly the rows still missing.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return EXIT_DONE


def _read(path: Path) -> bytes | int:
    """The file's bytes, or the exit code once its sentence is printed."""
    try:
        if not path.is_file():
            return _cannot(f"{path} is not a file.")
        if path.stat().st_size > MAX_FILE_BYTES:
            return _refuse(f"{path} is over {MAX_FILE_BYTES // 2**20} MiB: not a grant file.")
        return path.read_bytes()
    except OSError as exc:
        return _cannot(f"could not read {path}: {exc.strerror or exc}.")


async def _open(
    location: Location, context: CommandContext, *, achievements: bool
) -> PointsEngine:
    """The ledger with the bot's own rules (overdrafts, timezone, levels), except that one
    change may use the ledger's whole range (a migrated total can pass max_amount), and that
    setting balances unlocks no achievement: its reward would move the balance off the
    target. Those unlock with the member's next credit, as the live bot checks them."""
    settings, database = context.settings, context.database
    return await PointsEngine.open(
        location,
        policy=LedgerPolicy(
            max_amount=MAX_BALANCE,
            allow_negative=settings.ledger.allow_negative,
            timezone=settings.ledger.timezone,
        ),
        synchronous=database.synchronous,
        busy_timeout=database.busy_timeout_seconds,
        write_timeout=database.write_timeout_seconds,
        progress=ProgressRules(
            achievements=settings.progress.achievements if achievements else (),
            level_curve=settings.progress.level_curve,
            grace_day=settings.progress.streak_grace_day,
            timezone=settings.ledger.timezone,
        ),
    )


def _print(plan: GrantPlan, outcome: GrantOutcome | None) -> None:
    dry = outcome is None
    what = "set balances" if plan.mode == "set" else "add points"
    print(f"Grant file sha256 {plan.file.digest} ({what}) for chat {plan.chat_id}:")
    header = ("line", "user", "id", "balance", "change", "new balance", "status")
    table = [header]
    failed_lines = {line for line, _ in outcome.failures} if outcome else set()
    for row in plan.rows:
        if row.row.line in failed_lines:
            status = "failed"
        elif outcome is not None and row.row.line in outcome.raced:
            status = "already applied (by another run)"
        elif row.status == "done":
            status = f"already applied (#{row.done_id}, {row.done_amount:+,})"
        elif row.status == "unchanged":
            status = "already at target"
        else:
            status = "would apply" if dry else "applied"
        table.append(
            (
                str(row.row.line),
                row.row.who,
                str(row.user_id),
                f"{row.current:,}",
                f"{row.change:+,}",
                f"{row.after:,}",
                status,
            )
        )
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header) - 1)]
    for cells in table:
        aligned = [
            cell.ljust(width) if i in (1, 2) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=False))
        ]
        print("  ".join([*aligned, cells[-1]]).rstrip())
    if outcome is None:
        applied, already, failed, total = plan.count("apply"), plan.count("done"), 0, plan.total
    else:
        applied, total = outcome.applied, outcome.total
        already, failed = plan.count("done") + len(outcome.raced), len(outcome.failures)
    summary = [
        ("rows", f"{len(plan.rows):,}"),
        ("would apply" if dry else "applied", f"{applied:,}"),
        ("already applied", f"{already:,}"),
        ("already at target", f"{plan.count('unchanged'):,}"),
        *([("failed", f"{failed:,}")] if failed else []),
        ("total change", f"{total:+,}"),
    ]
    width = max(len(label) for label, _ in summary)
    print()
    for label, value in summary:
        print(f"{label.ljust(width)}  {value.rjust(12)}")
    if dry:
        print("Dry run: nothing was written.")


def _refuse_rows(path: Path, plan: GrantPlan) -> int:
    for problem in plan.problems[:LISTED]:
        print(f"- {problem.describe()}", file=sys.stderr)
    more = len(plan.problems) - LISTED
    if more > 0:
        print(f"- ... and {more:,} more.", file=sys.stderr)
    bad = len({problem.line for problem in plan.problems})
    print(
        f"grant: refused {path}: {bad:,} bad row{'' if bad == 1 else 's'}; nothing was written.",
        file=sys.stderr,
    )
    return EXIT_REFUSED


def _refuse(sentence: str) -> int:
    print(f"grant: {sentence}", file=sys.stderr)
    return EXIT_REFUSED


def _cannot(sentence: str) -> int:
    print(f"grant: {sentence}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def grant_command() -> Command:
    return Command(name="grant", help=HELP, add_arguments=_add_arguments, run=_grant)
