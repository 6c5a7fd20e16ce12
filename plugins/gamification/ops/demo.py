"""The demo command: replays a bundled sample chat offline through a real Dispatcher."""

from __future__ import annotations

import argparse
import html
import logging
import os
import re
import sys
import tempfile
import tomllib
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.enums import ParseMode
from aiogram.methods import Response, SendMessage, SendPhoto, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BufferedInputFile, Message

from plugins.gamification.bus.events import Event, InProcessBus
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.models import Period
from plugins.gamification.ops.commands import Command, CommandContext, OfflineTelegram
from plugins.gamification.services.runtime import Services
from plugins.gamification.setup import setup_gamification
from plugins.gamification.storage.options import Location
from plugins.gamification.storage.rebuild import OperationRefusedError
from plugins.gamification.storage.sqlite.files import SIDE_SUFFIXES
from plugins.gamification.telegram.runtime import Runtime

START = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
# Never used to reach Telegram: the session answers offline, but aiogram checks the form.
OFFLINE_TOKEN = "1000000000:offline-token-that-never-leaves-this-process"
_TAG = re.compile(r"<[^>]+>")
_TX = re.compile(r"\{tx:(\w+)\}")


def load_script() -> dict[str, Any]:
    text = (
        resources.files("plugins.gamification.ops").joinpath("demo_chat.toml").read_text("utf-8")
    )
    return tomllib.loads(text)


def plain(text: str) -> str:
    """What a person would see of an HTML reply in a terminal."""
    return html.unescape(_TAG.sub("", text))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=(
            "keep the demo's ledger in PATH, a new or empty file (an existing ledger is"
            " refused: the demo writes sample data); default: a temporary file"
        ),
    )
    parser.add_argument(
        "--cards",
        metavar="DIR",
        help=(
            "save the rank cards the bot sends (PNG) in DIR, made if missing; default: a new"
            " temporary folder, named in the transcript"
        ),
    )


async def _demo(args: argparse.Namespace, context: CommandContext) -> int:
    if context.offline is None:
        print("demo: this program offers no offline Telegram session to run it.", file=sys.stderr)
        return 2
    try:
        cards = Path(args.cards) if args.cards else None
        if args.db:
            database = Path(args.db)
            claim_new_file(database)
            return await replay(context, database, cards=cards)
        with tempfile.TemporaryDirectory(prefix="points-demo-") as folder:
            return await replay(context, Path(folder) / "demo.sqlite3", cards=cards)
    except GamificationError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


def claim_new_file(path: Path) -> None:
    """Create `path` for the demo, or accept an empty regular file; refuse anything else.

    The demo writes sample rows dated in the past and publishes (then prunes) the outbox:
    run on a real ledger it would corrupt its history and steal its undelivered events.
    """
    refusal = (
        f"{path} already exists and is not empty; the demo only writes a new file"
        " (omit --db for a temporary one)."
    )
    own = [path.with_name(path.name + suffix) for suffix in SIDE_SUFFIXES]
    if any(side.exists() and side.stat().st_size > 0 for side in own):
        raise OperationRefusedError(refusal)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 0:
            raise OperationRefusedError(refusal) from None
    except OSError as exc:
        raise OperationRefusedError(f"Cannot create {path}: {exc.strerror or exc}.") from exc


class Transcript(BaseRequestMiddleware):
    """Remembers what the bot said, whichever session carries it; a photo (a rank card) is
    saved as a file in `cards` and named, with its caption."""

    def __init__(self, cards: Path | None = None) -> None:
        self.sent: list[str] = []
        self.cards = cards
        self.saved: list[Path] = []
        # Telegram's id of each card sent -> its file, for a card sent again by id.
        self._files: dict[str, Path] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, SendMessage):
            self.sent.append(method.text)
        response = await make_request(bot, method)
        if isinstance(method, SendPhoto):
            self._photo(method, response)  # the result itself, whatever the annotation says
        return response

    def _photo(self, method: SendPhoto, result: object) -> None:
        path: Path | None = None
        if isinstance(method.photo, BufferedInputFile):
            if self.cards is None:
                self.cards = Path(tempfile.mkdtemp(prefix="points-demo-cards-"))
            self.cards.mkdir(parents=True, exist_ok=True)
            path = self.cards / f"card-{len(self.saved) + 1:02d}.png"
            path.write_bytes(method.photo.data)
            self.saved.append(path)
            if isinstance(result, Message) and result.photo:
                self._files[result.photo[-1].file_id] = path
        elif isinstance(method.photo, str):
            path = self._files.get(method.photo)
        shown = f"[card: {path}]" if path is not None else "[photo]"
        self.sent.append(f"{shown}\n{method.caption or ''}".rstrip())


async def replay(
    context: CommandContext, database: Path, out: Any = None, cards: Path | None = None
) -> int:
    """Feed every step of the script to a real Dispatcher and print what happens; the rank
    cards it sends are saved in `cards` (default: a new temporary folder)."""
    assert context.offline is not None
    offline: OfflineTelegram = context.offline
    out = out or sys.stdout
    script = load_script()
    chat = {"id": script["chat"]["id"], "type": "supergroup", "title": script["chat"]["title"]}
    people = {p["name"]: p for p in script["people"]}
    users = {
        name: {"id": p["id"], "is_bot": False, "first_name": p["first_name"]}
        | ({"username": p["username"]} if p.get("username") else {})
        for name, p in people.items()
    }
    admins = {chat["id"]: {p["id"] for p in people.values() if p.get("admin")}}
    clock = FakeClock(START)

    def now() -> float:
        return clock.now().timestamp()

    factory = offline.updates(now)
    bot = Bot(
        OFFLINE_TOKEN,
        session=offline.session(admins, now),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    transcript = Transcript(cards)
    bot.session.middleware(transcript)
    dispatcher = Dispatcher()
    try:
        plugin = await setup_gamification(
            dispatcher,
            bot,
            database=replace(context.database, location=Location("sqlite", path=database)),
            config=context.settings,
            admin_ids=context.admin_ids,
            clock=clock,
        )
    except BaseException:
        await bot.session.close()
        raise
    services = plugin.services
    print(f"Replaying {len(script['steps'])} updates in “{chat['title']}”, offline.", file=out)
    print(f"Ledger: {database}\n", file=out)
    labels: dict[str, int] = {}
    step_tx: dict[str, int] = {}
    last_tx = await _last_tx_id(services)
    # One line per update from aiogram would drown the conversation.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    try:
        day = clock.now().date()
        print(f"— {day:%A %d %B %Y} —", file=out)
        for step in script["steps"]:
            clock.advance(float(step.get("after", 0)))
            if clock.now().date() != day:
                day = clock.now().date()
                print(f"\n— {day:%A %d %B %Y} —", file=out)
            refused_before = Counter(services.stats.refusals)
            transcript.sent.clear()
            if "event" in step:
                await _publish(step, plugin.runtime, people, chat["id"], clock, out)
            else:
                user = users[step["from"]]
                text = _TX.sub(lambda m: str(step_tx.get(m.group(1), 0)), step.get("text", ""))
                content = {"photo": [_photo()], "caption": text} if step.get("photo") else None
                reply_to = labels[step["reply_to"]] if "reply_to" in step else None
                update = factory.message(chat, user, text, reply_to=reply_to, content=content)
                assert update.message is not None
                if "label" in step:
                    labels[step["label"]] = update.message.message_id
                stamp = clock.now().strftime("%H:%M:%S")
                shown = f"[photo] {text}" if content else text
                print(f"{stamp}  {plain(user['first_name'])}: {shown}", file=out)
                await dispatcher.feed_update(bot, update)
                if step.get("redeliver"):
                    await dispatcher.feed_update(bot, update)
                    print("          (Telegram delivered this update twice)", file=out)
            await _settle(plugin.runtime)
            newest = await _report_step(services, refused_before, last_tx, out)
            if "label" in step and newest > last_tx:
                step_tx[step["label"]] = last_tx + 1
            last_tx = newest
            for sent in transcript.sent:
                for line in plain(sent).splitlines():
                    print(f"          🤖 {line}", file=out)
        code = await _summary(services, chat["id"], out)
        if transcript.saved:
            folder = transcript.saved[0].parent
            print(f"\nRank cards drawn: {len(transcript.saved)}, saved in {folder}", file=out)
        return code
    finally:
        await dispatcher.emit_shutdown()  # commits what is queued, closes the ledger
        await bot.session.close()


async def _publish(
    step: dict[str, Any],
    runtime: Runtime,
    people: dict[str, Any],
    chat_id: int,
    clock: FakeClock,
    out: Any,
) -> None:
    """Another plugin (a game, a story) publishes an event on the shared bus."""
    assert runtime.bus is not None
    person = people[step["user"]]
    event = Event(
        id=f"demo-{step['event']}-{person['id']}-{int(clock.now().timestamp())}",
        type=step["event"],
        occurred_at=clock.now(),
        chat_id=chat_id,
        user_id=person["id"],
        payload=step.get("payload", {}),
    )
    stamp = clock.now().strftime("%H:%M:%S")
    source = step.get("source", "another plugin")
    print(f"{stamp}  📣 {source} publishes {event.type} for {person['first_name']}", file=out)
    for _ in range(int(step.get("times", 1))):
        await runtime.bus.publish(event)
        await _drain(runtime)
    if step.get("times", 1) > 1:
        print(f"          (the same event was published {step['times']} times)", file=out)


async def _settle(runtime: Runtime) -> None:
    """Let the outbox relay, the bus and the announcer finish what the step set off."""
    if runtime.relay is not None:
        await runtime.relay.run_once()
        await _drain(runtime)
    if runtime.announcer is not None:
        await runtime.announcer.flush()


async def _drain(runtime: Runtime) -> None:
    if isinstance(runtime.bus, InProcessBus):
        await runtime.bus.drain()
    if runtime.inbound is not None:
        await runtime.inbound.drain()


async def _last_tx_id(services: Services) -> int:
    return await services.engine.store.last_transaction_id()


async def _report_step(
    services: Services, refused_before: Counter[str], last_tx: int, out: Any
) -> int:
    refused = services.stats.refusals - refused_before
    for reason in refused:
        print(f"          · not scored: {reason}", file=out)
    newest = await _last_tx_id(services)
    for tx_id in range(last_tx + 1, newest + 1):
        tx = await services.engine.transaction(tx_id)
        if tx is not None:
            who = await services.people.name_of(tx.user_id)
            sign = "+" if tx.amount > 0 else ""
            print(f"          · ledger #{tx.id}: {who} {sign}{tx.amount} ({tx.kind})", file=out)
    return newest


async def _summary(services: Services, chat_id: int, out: Any) -> int:
    board = await services.engine.leaderboard(chat_id, Period.ALL, 10)
    print("\nFinal leaderboard (all time):", file=out)
    for line in board.lines:
        print(
            f"  {line.rank}. {await services.people.name_of(line.user_id)}: {line.points}",
            file=out,
        )
    print("\nRefusals by reason:", file=out)
    for reason, count in services.stats.refusals.most_common():
        print(f"  {reason}: {count}", file=out)
    report = await services.engine.check(record=True)
    print("\n" + report.to_text(), file=out)
    return 0 if report.ok else 1


def _photo() -> dict[str, Any]:
    return {"file_id": "demo-photo", "file_unique_id": "demo-photo", "width": 640, "height": 480}


def demo_command() -> Command:
    return Command(
        name="demo",
        help=(
            "replay a bundled sample chat offline through the real dispatcher and ledger;"
            " prints the conversation, the leaderboard, refusals and the integrity report"
        ),
        add_arguments=_add_arguments,
        run=_demo,
    )
