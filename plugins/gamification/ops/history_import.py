"""`import-history`: replay a chat's Telegram Desktop export through the live scoring rules.

Each message goes through `score_group_message`, the live listener's own code, with the
services' clock set to the message's time, so cooldowns, bursts, windows, the day's cap
(decided by the ledger writer against the clock's moment), streaks and multipliers judge it
as they would have then; its transaction is stored with that time. Keys are the live ones
(`msg:<chat>:<message>`, `thx:...`, `eng:...`): a message the bot already scored, or an
earlier import, is not scored again. Nothing is sent to Telegram: there is no bot here, a
thanks is counted instead of answered, and the level and achievement events the replay
writes to the outbox are too old for the announcer to post (telegram/announcer.py).

Progress is kept in `admin_actions` ("import-history": the last message fully replayed, and
when the bot's own scoring of the chat began); a re-run continues after it, with fresh
anti-abuse memory, as the bot does after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from plugins.gamification.domain.anti_abuse import AntiAbuseGate
from plugins.gamification.domain.clock import FakeClock, SystemClock, format_utc, parse_utc
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.ops.commands import (
    Command,
    CommandContext,
    add_ledger_argument,
    ledger_location,
)
from plugins.gamification.ops.telegram_export import (
    SUPERGROUP_TYPES,
    CountingReader,
    ExportError,
    ExportHeader,
    read_header,
    read_messages,
)
from plugins.gamification.services.gate_state import MemoryGateState
from plugins.gamification.services.runtime import Services, open_services
from plugins.gamification.storage import tasks
from plugins.gamification.storage.options import (
    DatabaseOptions,
    Location,
    LocationError,
)
from plugins.gamification.storage.records import AdminAction
from plugins.gamification.telegram.activity import score_group_message
from plugins.gamification.telegram.history import HistoryReader, Skip

ACTION = "import-history"
EXIT_DONE, EXIT_INTERRUPTED, EXIT_CANNOT_RUN = 0, 1, 2
CHECKPOINT_EVERY = 2_000
EVERYONE = 10**9


class ImportRefusedError(GamificationError):
    """The import cannot run as asked (the chat does not match, no ledger...)."""


@dataclass(frozen=True, slots=True)
class ImportRequest:
    export: Path
    chat_id: int
    dry_run: bool = False
    since: date | None = None
    bots: frozenset[int] = frozenset()


@dataclass(slots=True)
class ImportSummary:
    header: ExportHeader
    dry_run: bool
    read: int = 0
    replayed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    awards: int = 0
    already: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    points: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    # Why it stopped early, when not by Ctrl-C (the export's JSON broke off midway).
    stopped_by: str | None = None

    def to_text(self, top: int = 10) -> str:
        what = "Dry run (nothing written)" if self.dry_run else "Imported"
        rate = self.read / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{what}: the history of {self.header.name!r} (export id {self.header.id},"
            f" chat {self.header.bot_api_id}).",
            f"Messages read: {self.read:,}; replayed through the rules: {self.replayed:,}.",
        ]
        if self.skipped:
            lines.append("Not replayed: " + _counts(self.skipped) + ".")
        lines.append(
            f"Scored: {self.awards:,} messages (activity and thanks; engagement bonuses and"
            f" achievement rewards are in the points); already in the ledger: {self.already:,}."
        )
        lines.append("Refused: " + (_counts(self.refused) if self.refused else "none") + ".")
        gained = {user: p for user, p in self.points.items() if p}
        total = sum(gained.values())
        people = len(gained)
        lines.append(f"Points: {total:,} to {people:,} {'person' if people == 1 else 'people'}.")
        ranked = sorted(gained.items(), key=lambda item: (-item[1], item[0]))[:top]
        for rank, (user, points) in enumerate(ranked, 1):
            name = self.names.get(user, "?")
            lines.append(f"  {rank:>2}. {name} ({user}): {points:+,}")
        lines.append(f"Took {self.seconds:.1f} s ({rate:,.0f} messages/s).")
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in counter.most_common())


class Progress:
    """A bar on a terminal, else a plain line every `every` seconds (and at the end)."""

    def __init__(self, out: TextIO, total: int, every: float = 10.0) -> None:
        self._out = out
        self._total = max(total, 1)
        self._tty = out.isatty()
        self._every = 0.2 if self._tty else every
        self._started = self._last = time.monotonic()

    def update(self, done: int, messages: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self._every:
            return
        self._last = now
        fraction = min(done / self._total, 1.0)
        rate = messages / max(now - self._started, 1e-9)
        figures = (
            f"{fraction:6.1%} {done / 1e6:,.1f}/{self._total / 1e6:,.1f} MB"
            f" {messages:,} messages {rate:,.0f}/s"
        )
        if self._tty:
            filled = int(fraction * 30)
            end = "\n" if final else ""
            self._out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {figures}{end}")
        else:
            self._out.write(f"import-history: {figures}\n")
        self._out.flush()


def check_chat(header: ExportHeader, chat_id: int) -> None:
    if chat_id == header.bot_api_id:
        return
    prefix = "-100" if header.type in SUPERGROUP_TYPES else "-"
    raise ImportRefusedError(
        f"The export is of chat {header.id} ({header.name!r}), which bots know as"
        f" {header.bot_api_id} ({prefix} before the export's id), not --chat {chat_id}."
    )


async def run_import(
    request: ImportRequest,
    database: DatabaseOptions,
    config: GamificationConfig,
    *,
    progress: TextIO | None = None,
    on_message: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Replay the export into the ledger (into a throwaway copy of it with `dry_run`).

    ExportError or ImportRefusedError before anything is written when the file or the
    request is wrong. Cancelled (Ctrl-C), it stops after the message in hand, records how
    far it got and returns the summary so far with `interrupted` set.
    """
    header = read_header(request.export)
    check_chat(header, request.chat_id)
    if database.backend == "sqlite" and not database.path.is_file():
        raise ImportRefusedError(
            f"There is no ledger at {database.path}: start the bot once, or name the ledger"
            " with --db."
        )
    if not request.dry_run:
        return await _replay(request, header, database, config, progress, on_message)
    with tempfile.TemporaryDirectory(prefix="import-history-") as folder:
        copy = Path(folder) / "ledger.sqlite"
        await tasks.backup(database.location, copy)
        scratch = DatabaseOptions(Location("sqlite", path=copy), synchronous="NORMAL")
        return await _replay(request, header, scratch, config, progress, on_message)


async def _replay(
    request: ImportRequest,
    header: ExportHeader,
    database: DatabaseOptions,
    config: GamificationConfig,
    progress: TextIO | None,
    on_message: Callable[[int], None] | None,
) -> ImportSummary:
    started = time.monotonic()
    clock = FakeClock(SystemClock().now())
    if database.backend == "sqlite":
        # A crash loses at most the last commits, which a re-run makes again: the import
        # need not wait for the disk after every message.
        database = replace(database, synchronous="NORMAL")
    services = await open_services(
        database,
        config,
        clock=clock,
        gate_state=MemoryGateState(AntiAbuseGate(config.anti_abuse)),
    )
    summary = ImportSummary(header, request.dry_run)
    try:
        await _run(services, clock, request, header, summary, progress, on_message)
    finally:
        summary.seconds = time.monotonic() - started
        await services.close()
    return summary


async def _run(
    services: Services,
    clock: FakeClock,
    request: ImportRequest,
    header: ExportHeader,
    summary: ImportSummary,
    progress: TextIO | None,
    on_message: Callable[[int], None] | None,
) -> None:
    store, chat_id = services.engine.store, request.chat_id
    through, live_from = await _checkpoint(services, chat_id)
    before = dict(await store.standings(chat_id, None, EVERYONE))
    zone = ZoneInfo(services.config.ledger.timezone)
    reader = HistoryReader(
        chat_id,
        header.name,
        header.type in SUPERGROUP_TYPES,
        bots=request.bots,
        timezone=services.config.ledger.timezone,
    )
    stats = services.stats
    refusals_before, awards_before = Counter(stats.refusals), stats.awards
    duplicates_before = stats.duplicates
    last = recorded = through
    size = request.export.stat().st_size
    bar = Progress(progress, size) if progress is not None else None
    try:
        with request.export.open("rb") as raw:
            stream = CountingReader(raw)
            for entry in read_messages(stream):
                summary.read += 1
                message_id = entry.get("id")
                sent_at = reader.when(entry)
                if not isinstance(message_id, int) or sent_at is None:
                    summary.skipped[Skip.MALFORMED] += 1
                    continue
                if message_id <= through:
                    reader.message(entry, sent_at)  # still a possible reply target
                    summary.skipped["imported before"] += 1
                elif live_from is not None and sent_at >= live_from:
                    summary.skipped["seen by the bot live"] += 1
                elif request.since and sent_at.astimezone(zone).date() < request.since:
                    reader.message(entry, sent_at)  # still a possible reply target
                    summary.skipped["before --since"] += 1
                else:
                    await _one(services, clock, reader, entry, sent_at, summary)
                    last = max(last, message_id)
                if summary.read % CHECKPOINT_EVERY == 0 and last != recorded:
                    await _record(services, chat_id, last, live_from)
                    recorded = last
                if bar is not None:
                    bar.update(stream.position, summary.read)
                if on_message is not None:
                    on_message(summary.read)
        if bar is not None:
            bar.update(size, summary.read, final=True)
    except asyncio.CancelledError:
        summary.interrupted = True
    except ExportError as exc:  # broken midway: what came before stays, as after Ctrl-C
        summary.interrupted = True
        summary.stopped_by = str(exc)
    finally:
        # Recorded after every award of the messages it covers has committed (each was
        # awaited), so a re-run never skips a message whose points are not written.
        if last != recorded:
            await asyncio.shield(_record(services, chat_id, last, live_from))
        summary.awards = stats.awards - awards_before
        summary.already = stats.duplicates - duplicates_before
        summary.refused = Counter(stats.refusals) - refusals_before
        after = await store.standings(chat_id, None, EVERYONE)
        summary.points = {user: p - before.get(user, 0) for user, p in after}


async def _one(
    services: Services,
    clock: FakeClock,
    reader: HistoryReader,
    entry: dict[str, object],
    sent_at: datetime,
    summary: ImportSummary,
) -> None:
    message = reader.message(entry, sent_at)
    if isinstance(message, Skip):
        summary.skipped[message] += 1
        return
    user = message.from_user
    # The live listener does nothing with these either (facts.py); counted apart here.
    if message.sender_chat is not None:
        summary.skipped["posted as a chat"] += 1
        return
    if user is not None and user.is_bot:
        summary.skipped["from a bot"] += 1
        return
    if user is not None:
        summary.names[user.id] = user.first_name
    summary.replayed += 1
    clock.set(sent_at)
    await score_group_message(message, services)


async def _checkpoint(services: Services, chat_id: int) -> tuple[int, datetime | None]:
    """(the last message already replayed, when the bot began scoring the chat live).

    The first import of a chat records the second before it writes anything: its own
    awards carry the messages' old times, and a re-run after a hard kill must not take the
    first of them for the start of live scoring.
    """
    store = services.engine.store
    detail = await store.last_admin_action(chat_id, ACTION)
    if detail is not None:
        recorded = json.loads(detail)
        live = recorded.get("live_from")
        return int(recorded["through"]), parse_utc(live) if live else None
    first = await store.first_transaction_at(chat_id)
    live_from = parse_utc(first) if first else None
    await _record(services, chat_id, 0, live_from)
    return 0, live_from


async def _record(
    services: Services, chat_id: int, through: int, live_from: datetime | None
) -> None:
    detail = json.dumps(
        {"through": through, "live_from": format_utc(live_from) if live_from else None}
    )
    await services.engine.store.record_admin_action(
        AdminAction(chat_id, 0, ACTION, None, detail), format_utc(datetime.now(UTC))
    )


# -- the operator command ------------------------------------------------------------------


def _since(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2024-01-31") from None


def _top(text: str) -> int:
    try:
        top = int(text)
    except ValueError:
        top = -1
    if top < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of people (0 or more)")
    return top


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "export",
        metavar="EXPORT.json",
        type=Path,
        help="the chat's export by Telegram Desktop (result.json, 'Machine-readable JSON')",
    )
    parser.add_argument(
        "--chat",
        required=True,
        type=int,
        metavar="ID",
        help="the chat's id as bots know it: -100 followed by the export's id for a"
        " supergroup (export id 1234567890 is chat -1001234567890), minus it for a group",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="replay into a throwaway copy of the ledger and print the same summary;"
        " the ledger is not touched",
    )
    parser.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="skip messages before this day (YYYY-MM-DD, in [gamification.ledger] timezone)",
    )
    parser.add_argument(
        "--bot",
        dest="bots",
        action="append",
        type=int,
        default=[],
        metavar="USER_ID",
        help="a bot's user id (repeatable): exports do not mark bots, and bots never earn",
    )
    parser.add_argument("--top", type=_top, default=10, metavar="N", help="people listed (10)")
    add_ledger_argument(parser)


async def _import(args: argparse.Namespace, context: CommandContext) -> int:
    try:
        database = replace(context.database, location=ledger_location(args, context))
        request = ImportRequest(
            args.export, args.chat, args.dry_run, args.since, frozenset(args.bots)
        )
        summary = await run_import(request, database, context.settings, progress=sys.stderr)
    except (GamificationError, LocationError) as exc:
        print(f"import-history: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(summary.to_text(top=args.top))
    if summary.interrupted:
        sys.stdout.flush()
        if args.dry_run:
            after = "nothing was written (a dry run)."
        else:
            after = (
                "everything replayed so far is committed, and running the same command"
                " again continues from there."
            )
        why = f"{summary.stopped_by} So" if summary.stopped_by else "interrupted;"
        print(f"import-history: {why} {after}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_DONE


def import_history_command() -> Command:
    return Command(
        name="import-history",
        help=(
            "replay a chat's Telegram Desktop export (result.json) through the scoring rules"
            " at the messages' own times, so members start with the points they earned"
            " before the bot came; idempotent (a message already scored, live or by an"
            " earlier import, is not scored again; a re-run continues where the last one"
            " stopped), sends nothing to Telegram; exit 0 done, 1 interrupted (run it"
            " again to finish), 2 could not run (bad file, wrong --chat, no ledger)"
        ),
        add_arguments=_add_arguments,
        run=_import,
    )
