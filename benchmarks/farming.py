"""A farming week through the real Dispatcher: honest members as people write, and farmers.

`python -m benchmarks.farming [--days N] [--seed S]` prints the report; the security
test runs a quick form of the same simulation and asserts the targets. Everything runs on
a fake clock and a fresh SQLite file, with the built-in defaults (those of
config.example.toml) unless a run overrides some.

Honest members (two chats, one with most of them) visit a few times a day, write in
sessions with one message in five within a minute of their previous one, answer each
other (replies), react to each other's messages, thank now and then, post photos and
stickers, say short things ("ok", "lol", "yes!") and greet the same way every morning.
Farmers, each one account: every attack class the project knows of (FARMERS below).
The honest stream alone also runs under rules that approximate the old scoring (a hard
60 s cooldown, no engagement weighting: TODAY), for the "not lower than today" target.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram.types import Update

from bot.app import build_app
from bot.config import AppConfig, StorageSettings, load_config
from bot.registry import default_registry
from bot.testing import RecordingSession, UpdateFactory
from plugins.gamification.domain.activity import ActivityFact
from plugins.gamification.domain.anti_abuse import Verdict
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.models import Breakdown
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.sqlite.store import LedgerStore

START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
CHATS = (-1001, -1002)
HONEST = "honest"
_WORD_TEXT = """
time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book
eye job word business issue side kind head house service friend father power hour game line
end member law car city community name president team minute idea kid body information back
parent face others level office door health person art war history party result change
morning reason research girl guy moment air teacher force education foot boy age policy
music market sense nation plan college interest death experience effect class control care
field development role effort rate heart drug show leader light voice wife police mind price
report decision son view relationship town road arm difference value building action model
season society tax director position player record paper space ground form event official
matter center couple site project activity star table need court oil situation cost industry
figure street image phone data picture practice piece land product doctor wall patient worker
news test movie north love support technology step baby computer type attention film tree
source organization hair window evidence population truth song camera garden coffee train
weather castle keyboard release meeting deadline review football kitchen bicycle concert
bring think great small large early young important public bad same able late hard major
better economic strong possible whole free military true federal international full special
easy clear recent certain personal open red difficult available likely short single medical
"""
WORDS = tuple(_WORD_TEXT.split())
SHORT = ("ok", "lol", "yes!", "no", "haha", "+1", "same", "wow", "nice", "true", "yep", "hm?")
THANKS = ("thanks!", "thank you", "thanks, that helped", "спасибо", "gracias", "thx")
GREETINGS = (
    "Good morning everyone, coffee is ready",
    "Morning all, have a great day at work",
    "Hello friends, what are we talking about today?",
    "Good morning chat, the sun is finally out here",
)
SPAM = (
    "Join my channel for free points every day and invite your friends",
    "Selling cheap game accounts with rare skins, write me in private",
    "Best crypto signals in town, subscribe now and get rich fast",
)
# Look-alikes and invisible characters a farmer uses to make one line "new".
HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}
INVISIBLE = ("\u3164", "\u200b", "\u115f", "\ufe0f", "\u2060", "\u200d")
PADDING = ("ok...", "a a a", "k.k.k", "lol", "+++", "hmm...", "xd", "yep")
# Farmer accounts: id -> pattern. The ring's five alts thank each other.
FARMERS: dict[int, str] = {
    901: "dictionary", 902: "photos", 903: "stickers", 904: "homoglyphs", 905: "invisible",
    906: "shuffled", 907: "letter-soup", 908: "copier", 909: "two-chats", 910: "copy-paste",
    911: "burst", 912: "padding", 913: "near-repeat",
    914: "thanks-ring", 915: "thanks-ring", 916: "thanks-ring", 917: "thanks-ring",
    918: "thanks-ring",
}  # fmt: skip
RING = tuple(u for u, p in FARMERS.items() if p == "thanks-ring")
# Attacks the defences were not tuned on (held out of the test's assertions): a farmer
# replying to random recent messages, five alts reacting to each other, and a farmer
# pasting lines of real prose (Python's own documentation).
HELD_OUT: dict[int, str] = {
    930: "reply-spammer", 931: "reaction-ring", 932: "reaction-ring", 933: "reaction-ring",
    934: "reaction-ring", 935: "reaction-ring", 936: "corpus-paster",
}  # fmt: skip
# The old rules, approximately: a hard 60 s cooldown, no answers exempt from the minimum
# length, no copies across people, no engagement weighting or relative cap.
TODAY: dict[str, Any] = {
    "anti_abuse": {
        "cooldown_burst": 1, "answer_seconds": 0, "copy_similarity": 1.0,
        "copy_min_length": 4096, "monologue_factor": 1, "engaged_share": 0,
        "relative_cap": 0,
    },
    "engagement": {"enabled": False},
    "reactions": {"enabled": False},
    "thanks": {"min_giver_messages": 0, "pair_decay_days": 0},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Event:
    """One update: a message (text or media), or a reaction on an earlier message."""

    at: float  # seconds from START
    chat: int
    user: int
    text: str | None = None
    media: tuple[str, str] | None = None  # (kind, file_unique_id)
    reply_to: int | None = None  # index of an earlier event
    react_to: int | None = None  # index of an earlier event: this is a reaction
    removed: bool = False


@dataclass
class World:
    """The stream being built: events, and who said what recently in each chat."""

    rng: random.Random
    events: list[Event] = field(default_factory=list)

    def add(self, event: Event) -> int:
        self.events.append(event)
        return len(self.events) - 1


def sentence(rng: random.Random, low: int = 4, high: int = 14) -> str:
    text = " ".join(rng.sample(WORDS, rng.randint(low, high)))
    return text[0].upper() + text[1:] + rng.choice((".", "!", "?", "", "..."))


def honest_stream(rng: random.Random, days: int, members: int) -> list[Event]:
    """Members 1..members: two thirds in the first chat only, the rest in both."""
    events: list[Event] = []
    for user in range(1, members + 1):
        chats = CHATS if user % 3 == 0 else CHATS[:1]
        rate = rng.uniform(3, 14)
        for day in range(days):
            for chat in chats:
                count = max(0, round(rng.gauss(rate, rate / 3) / len(chats)))
                # Those who greet every morning start their day in the morning.
                first = rng.uniform(7, 10) if user % 3 == 1 else rng.uniform(8, 22)
                t = day * 86400 + first * 3600
                greeted = False
                for _ in range(count):
                    if rng.random() < 0.3:  # a new visit later in the day
                        t += rng.uniform(1800, 3 * 3600)
                    else:  # one in five within a minute of the previous one
                        t += rng.uniform(8, 55) if rng.random() < 0.2 else rng.uniform(60, 900)
                    if t >= (day + 1) * 86400 - 60:
                        break
                    text: str | None = sentence(rng)
                    media = None
                    draw = rng.random()
                    if not greeted and user % 3 == 1:
                        text = GREETINGS[user // 3 % len(GREETINGS)]
                    elif draw < 0.12:
                        text = rng.choice(SHORT)
                    elif draw < 0.2:
                        text, media = None, ("photo", f"h{user}-{day}-{t:.0f}")
                    elif draw < 0.24:
                        text, media = None, ("sticker", f"pack-{rng.randrange(400)}")
                    greeted = True
                    events.append(Event(t, chat, user, text, media))
    return events


def engage_honestly(world: World, honest: list[int]) -> None:
    """Honest members answer (replies) and react to recent messages of others; a few
    replies are thanks. Runs over the merged stream, so farmers' posts can be answered too
    (rarely: people answer people)."""
    rng, events = world.rng, world.events
    recent: dict[int, list[int]] = defaultdict(list)
    extra: list[Event] = []
    honest_set = set(honest)
    for i, event in enumerate(events):
        if event.react_to is not None:
            continue
        window = [j for j in recent[event.chat][-40:] if events[j].user != event.user]
        window = [j for j in window if event.at - events[j].at < 1800]
        people = [j for j in window if events[j].user in honest_set]
        # People answer people; a farmer's line draws an answer now and then.
        window = people if people and rng.random() < 0.95 else window
        if event.user in honest_set and window and rng.random() < 0.35:
            target = rng.choice(window)
            text = event.text
            if rng.random() < 0.08:
                text = rng.choice(THANKS)
            events[i] = Event(event.at, event.chat, event.user, text, event.media, target)
        recent[event.chat].append(i)
        if event.user in honest_set and rng.random() < 0.3:
            others = [u for u in honest if u != event.user]
            for reactor in rng.sample(others, rng.randint(1, 3)):
                at = event.at + rng.uniform(30, 1200)
                extra.append(Event(at, event.chat, reactor, react_to=i))
                if rng.random() < 0.03:  # changed their mind
                    extra.append(Event(at + rng.uniform(5, 50), event.chat, reactor, react_to=i,
                                       removed=True))  # fmt: skip
    events.extend(extra)


def farmer_stream(rng: random.Random, days: int, honest: list[Event]) -> list[Event]:
    events: list[Event] = []
    end = days * 86400
    chat = CHATS[0]
    honest_texts = sorted((e.at, e.text) for e in honest if e.text and e.chat == chat)

    def every(
        user: int, low: float, high: float, make: Any, chats: tuple[int, ...] = (chat,)
    ) -> None:
        t = rng.uniform(0, 120)
        while t < end:
            for c in chats:
                item = make(t)
                if item is not None:
                    text, media = item
                    events.append(Event(t, c, user, text, media))
            t += rng.uniform(low, high)

    every(901, 61, 65, lambda t: (sentence(rng, 6, 14), None))
    every(902, 61, 62, lambda t: (None, ("photo", f"f902-{t:.0f}")))
    every(903, 61, 62, lambda t: (None, ("sticker", f"spam-{rng.randrange(60)}")))
    every(904, 61, 65, lambda t: (disguise(rng.choice(SPAM), rng, "homoglyphs"), None))
    every(905, 61, 65, lambda t: (disguise(rng.choice(SPAM), rng, "invisible"), None))
    every(906, 61, 65, lambda t: (disguise(rng.choice(SPAM), rng, "shuffled"), None))
    every(907, 61, 65, lambda t: ("".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                          for _ in range(rng.randint(15, 40))), None))  # fmt: skip

    def copy(t: float) -> tuple[str, None] | None:
        earlier = [text for at, text in honest_texts if t - 3600 < at < t]
        return (rng.choice(earlier), None) if earlier else None

    every(908, 61, 65, copy)
    every(909, 61, 65, lambda t: (sentence(rng, 6, 14), None), CHATS)
    every(910, 61, 65, lambda t: (SPAM[0], None))
    every(912, 61, 65, lambda t: (rng.choice(PADDING), None))
    every(913, 61, 65, lambda t: (near_repeat(rng), None))
    for day in range(days):
        t = day * 86400 + rng.uniform(9, 20) * 3600
        for _ in range(30):  # bursts of 8-15 sentences a few minutes apart
            for _ in range(rng.randint(8, 15)):
                events.append(Event(t, chat, 911, sentence(rng)))
                t += rng.uniform(0.3, 1.0)
            t += rng.uniform(120, 300)
    return events


def ring_stream(world: World, days: int) -> None:
    """Five alts chat a little (a sentence every 20-40 min by day) and thank each other's
    messages in rotation, within the pair cooldown and the daily limit."""
    rng = world.rng
    for day in range(days):
        t = float(day * 86400 + 8 * 3600)
        turn = 0
        while t < day * 86400 + 23 * 3600:
            poster = RING[turn % len(RING)]
            index = world.add(Event(t, CHATS[0], poster, sentence(rng)))
            thanker = RING[(turn + 1 + day) % len(RING)]
            world.add(Event(t + rng.uniform(20, 90), CHATS[0], thanker, rng.choice(THANKS),
                            reply_to=index))  # fmt: skip
            turn += 1
            t += rng.uniform(1200, 2400) / len(RING) * 2


def disguise(line: str, rng: random.Random, how: str) -> str:
    if how == "homoglyphs":
        return "".join(HOMOGLYPHS[c] if c in HOMOGLYPHS and rng.random() < 0.4 else c
                       for c in line)  # fmt: skip
    if how == "invisible":
        chars = list(line)
        for _ in range(rng.randint(1, 6)):
            chars.insert(rng.randrange(len(chars)), rng.choice(INVISIBLE))
        return "".join(chars)
    words = line.split()
    rng.shuffle(words)
    return " ".join(words)


def near_repeat(rng: random.Random) -> str:
    words = SPAM[1].split()
    words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words) + rng.choice(("", "!!!", " :)", " 🔥", "..."))


def in_time_order(events: list[Event]) -> list[Event]:
    """The events sorted by time, replies and reactions still pointing at their targets."""
    order = sorted(range(len(events)), key=lambda i: (events[i].at, events[i].user, i))
    position = {old: new for new, old in enumerate(order)}
    out = []
    for old in order:
        e = events[old]
        out.append(
            Event(e.at, e.chat, e.user, e.text, e.media,
                  position[e.reply_to] if e.reply_to is not None else None,
                  position[e.react_to] if e.react_to is not None else None, e.removed)
        )  # fmt: skip
    return out


def build_stream(
    seed: int, days: int, members: int, *, farmers: bool = True, held_out: bool = False
) -> list[Event]:
    """The whole stream in time order; it depends only on its arguments."""
    rng = random.Random(seed)
    honest = honest_stream(rng, days, members)
    world = World(rng, list(honest))
    if farmers:
        world.events += farmer_stream(rng, days, honest)
        ring_stream(world, days)
    world.events = in_time_order(world.events)
    engage_honestly(world, list(range(1, members + 1)))
    if held_out:
        world.events = in_time_order(world.events)
        held_out_stream(world, days, members)
    return in_time_order(world.events)


def prose() -> list[str]:
    """Sentences of real English prose: the standard library's own docstrings."""
    import asyncio
    import collections
    import decimal
    import json
    import logging as log
    import sqlite3

    text = " ".join((m.__doc__ or "") for m in (asyncio, collections, decimal, json, log, sqlite3))
    return [s.strip() for s in text.replace("\n", " ").split(". ") if 30 < len(s) < 200]


def held_out_stream(world: World, days: int, members: int) -> None:
    """The HELD_OUT attacks, added to a stream already in time order."""
    rng, events, end = world.rng, world.events, days * 86400
    honest_posts = [i for i, e in enumerate(events) if e.user <= members and e.react_to is None]
    lines = prose()
    t, k = rng.uniform(0, 60), 0
    while t < end:
        while k + 1 < len(honest_posts) and events[honest_posts[k + 1]].at < t:
            k += 1
        if events[honest_posts[k]].at < t:
            target = honest_posts[max(0, k - rng.randrange(10))]
            world.add(Event(t, events[target].chat, 930, sentence(rng, 6, 14), reply_to=target))
        world.add(Event(t + 1, CHATS[0], 936, rng.choice(lines)))
        t += rng.uniform(61, 65)
    alts = tuple(u for u, p in HELD_OUT.items() if p == "reaction-ring")
    for day in range(days):
        t = float(day * 86400 + 8 * 3600)
        while t < day * 86400 + 23 * 3600:
            poster = rng.choice(alts)
            index = world.add(Event(t, CHATS[0], poster, sentence(rng)))
            for reactor in alts:
                if reactor != poster:
                    world.add(Event(t + rng.uniform(5, 60), CHATS[0], reactor, react_to=index))
            t += rng.uniform(240, 480)


# -- running ------------------------------------------------------------------------------

LOSS_OF = {
    "cooldown": "cooldown", "too_short": "min length", "short answer": "min length",
    "repeat": "repeat", "copy": "copy", "letter_soup": "letter soup",
    "no_engagement": "engagement weighting", "monologue": "engagement weighting",
    "daily_cap": "caps", "chat_cap": "caps", "burst": "burst",
}  # fmt: skip


@dataclass
class Outcome:
    """What a run earned, by account, and what honest members lost, by reason."""

    days: int
    points: Counter[int] = field(default_factory=Counter)  # by account, all chats
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (role, tx kind)
    potential: int = 0  # honest members' base points of every judged message
    lost: Counter[str] = field(default_factory=Counter)  # honest, by reason
    refused: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )  # by role, by reason
    messages: Counter[str] = field(default_factory=Counter)  # by role
    # Honest messages refused by the content rules: a few of each reason, for the report.
    examples: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def role(self, user: int) -> str:
        return FARMERS.get(user) or HELD_OUT.get(user) or HONEST

    @property
    def total(self) -> int:
        return sum(self.points.values())

    @property
    def farmers(self) -> int:
        return sum(v for u, v in self.points.items() if u in FARMERS or u in HELD_OUT)

    def honest_daily(self, members: int) -> list[float]:
        return [self.points[u] / self.days for u in range(1, members + 1)]

    def pattern_daily(self) -> dict[str, float]:
        """Each pattern's points per day per account (the ring: per alt)."""
        accounts: defaultdict[str, list[int]] = defaultdict(list)
        for user, role in FARMERS.items():
            accounts[role].append(self.points[user])
        for user, role in HELD_OUT.items():
            if self.messages[role]:
                accounts[role].append(self.points[user])
        return {role: sum(v) / len(v) / self.days for role, v in accounts.items()}


def _config(database: Path, overrides: Mapping[str, Any]) -> AppConfig:
    registry = default_registry()
    base = load_config(None, plugin_models=registry.config_models(), environ={})
    sections = dict(base.plugin_sections)
    defaults = GamificationConfig().model_dump()
    for section, values in overrides.items():
        defaults[section] = {**defaults[section], **values}
    sections["gamification"] = GamificationConfig.model_validate(defaults)
    return base.model_copy(
        update={
            "storage": StorageSettings(database=database, synchronous="NORMAL"),
            "plugin_sections": sections,
            "source": "farming simulation",
        }
    )


def _content(media: tuple[str, str]) -> dict[str, Any]:
    kind, unique = media
    file = {"file_id": f"id-{unique}", "file_unique_id": unique, "width": 90, "height": 90}
    if kind == "photo":
        return {"photo": [file]}
    return {"sticker": {**file, "type": "regular", "is_animated": False, "is_video": False}}


async def run(
    stream: list[Event], days: int, overrides: Mapping[str, Any] | None = None
) -> Outcome:
    """Feed the stream to a fresh app on a fake clock; what each account earned."""
    outcome = Outcome(days)
    # A burst suspicion per farmer round (and aiogram's line per update) is expected here:
    # keep the report readable.
    loggers = [logging.getLogger(name) for name in ("plugins.gamification", "aiogram")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    clock = FakeClock(START)
    factory = UpdateFactory(now=lambda: clock.now().timestamp())
    with tempfile.TemporaryDirectory() as folder:
        config = _config(Path(folder) / "farm.sqlite3", overrides or {})
        session = RecordingSession(now=lambda: clock.now().timestamp(), strict=False)
        app = await build_app(config, default_registry(), session=session, clock=clock)
        try:
            services = app.dispatcher.workflow_data["gamification"]
            assert isinstance(services, Services)
            _watch(services, outcome)
            await _feed(app, stream, clock, factory, outcome)
            store = services.engine.store
            assert isinstance(store, LedgerStore)
            rows = await store.fetchall(
                "SELECT user_id, amount, kind, breakdown FROM transactions", ()
            )
        finally:
            await app.close()
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
    for user, amount, kind, breakdown in rows:
        outcome.points[int(user)] += int(amount)
        tag = Breakdown.from_json(breakdown).tag
        name = "engagement" if tag == "engagement" else str(kind)
        outcome.by_kind[(outcome.role(int(user)), name)] += int(amount)
    return outcome


def _watch(services: Services, outcome: Outcome) -> None:
    """Record every verdict: honest members' losses by reason, refusals by role."""
    judge = services.gate.judge

    def judged(fact: ActivityFact, amount: int, *args: Any, **kwargs: Any) -> Verdict:
        verdict = judge(fact, amount, *args, **kwargs)
        if verdict.redelivery:
            return verdict
        role = outcome.role(fact.user_id)
        if verdict.refusal is not None:
            outcome.refused[role][verdict.refusal.value] += 1
        if role != HONEST:
            return verdict
        outcome.potential += amount
        if verdict.refusal is not None:
            reason = LOSS_OF.get(verdict.refusal.value, verdict.refusal.value)
            outcome.lost[reason] += amount
            if reason in ("repeat", "copy", "letter soup") and len(outcome.examples[reason]) < 4:
                outcome.examples[reason].append(fact.text or f"{fact.kind} {fact.media_id}")
            return verdict
        for multiplier in verdict.multipliers:
            if multiplier.name in LOSS_OF and multiplier.factor < 1:
                share = amount * (1 - float(multiplier.factor))
                outcome.lost[LOSS_OF[multiplier.name]] += round(share)
        if not verdict.multipliers and kwargs.get("multipliers") is not None:
            full = amount  # clipped by a cap
            outcome.lost["caps"] += max(0, full - verdict.amount)
        return verdict

    services.gate.judge = judged  # type: ignore[method-assign]


async def _feed(
    app: Any, stream: list[Event], clock: FakeClock, factory: UpdateFactory, outcome: Outcome
) -> None:
    chats = {c: UpdateFactory.group(c, f"Chat {c}") for c in CHATS}
    people: dict[int, dict[str, Any]] = {}
    ids: dict[int, int] = {}
    updates = 10**6
    for index, event in enumerate(stream):
        clock.set(START + timedelta(seconds=event.at))
        person = people.get(event.user)
        if person is None:
            name = f"{outcome.role(event.user)} {event.user}"
            person = people[event.user] = UpdateFactory.user(event.user, name)
        if event.react_to is not None:
            target = ids.get(event.react_to)
            if target is None:
                continue
            updates += 1
            emoji = [] if event.removed else [{"type": "emoji", "emoji": "👍"}]
            update = Update.model_validate({"update_id": updates, "message_reaction": {
                "chat": chats[event.chat], "message_id": target, "user": person,
                "date": int(clock.now().timestamp()), "old_reaction": [],
                "new_reaction": emoji}})  # fmt: skip
        else:
            reply = ids.get(event.reply_to) if event.reply_to is not None else None
            content = _content(event.media) if event.media else None
            update = factory.message(chats[event.chat], person, event.text, reply_to=reply,
                                     content=content)  # fmt: skip
            assert update.message is not None
            ids[index] = update.message.message_id
            outcome.messages[outcome.role(event.user)] += 1
        await app.dispatcher.feed_update(app.bot, update)


# -- the report ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """The targets' figures of one simulation."""

    farmer_share: float
    median_honest: float
    median_today: float
    worst_pattern: tuple[str, float]  # (pattern, its points per day / median honest)
    content_loss: float  # honest loss to repeat + copy + letter soup, share of potential


async def simulate(
    seed: int = 2026, days: int = 7, members: int = 52, *, held_out: bool = False
) -> tuple[Figures, list[str]]:
    """Run the full stream with the defaults, and the honest stream under TODAY's rules."""
    stream = build_stream(seed, days, members, held_out=held_out)
    honest_only = build_stream(seed, days, members, farmers=False)
    now = await run(stream, days)
    today = await run(honest_only, days, TODAY)
    return report(now, today, members, len(stream))


def report(now: Outcome, today: Outcome, members: int, updates: int) -> tuple[Figures, list[str]]:
    median = statistics.median(now.honest_daily(members))
    median_today = statistics.median(today.honest_daily(members))
    patterns = now.pattern_daily()
    worst = max(patterns.items(), key=lambda kv: kv[1])
    share = now.farmers / now.total if now.total else 0.0
    potential = max(now.potential, 1)
    content = sum(now.lost[r] for r in ("repeat", "copy", "letter soup")) / potential
    extra = f" + {len(HELD_OUT)} held-out" if now.messages["corpus-paster"] else ""
    farmed = sum(now.messages.values()) - now.messages[HONEST]
    lines = [
        f"[farming] {updates:,} updates over {now.days} days in {len(CHATS)} chats:"
        f" {members} honest members ({now.messages[HONEST]:,} messages),"
        f" {len(FARMERS)}{extra} farmer accounts ({farmed:,} messages)",
        f"[farming] farmers' share of all points: {share:.1%} (target <= 10%);"
        f" total {now.total:,}",
        f"[farming] median honest member: {median:.0f} points/day (today's rules:"
        f" {median_today:.0f}; target: not lower)",
        "[farming] pattern            points/day  x median honest  refused (top reasons)",
    ]
    for role, daily in sorted(patterns.items(), key=lambda kv: -kv[1]):
        top = ", ".join(f"{k} {v}" for k, v in now.refused[role].most_common(3))
        lines.append(f"[farming] {role:<18} {daily:>10.1f}  {daily / median:>15.2f}  {top}")
    lost = ", ".join(f"{k} {v / potential:.2%}" for k, v in now.lost.most_common())
    lines.append(f"[farming] honest loss by reason (share of base points): {lost or 'none'}")
    lines.append(
        f"[farming] honest loss to repeat + copy + letter soup: {content:.2%} (target <= 1%)"
    )
    for reason, texts in sorted(now.examples.items()):
        lines.append(f"[farming] e.g. honest {reason}: " + " | ".join(map(repr, texts)))
    for group in (HONEST, "farmers"):
        kinds: Counter[str] = Counter()
        for (role, kind), v in now.by_kind.items():
            if (role == HONEST) == (group == HONEST):
                kinds[kind] += v
        gained = ", ".join(f"{kind} {v:,}" for kind, v in sorted(kinds.items()))
        lines.append(f"[farming] {group} points by kind: {gained}")
    figures = Figures(share, median, median_today, (worst[0], worst[1] / median), content)
    return figures, lines


# -- the command --------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=7, help="days to simulate (default 7)")
    parser.add_argument("--seed", type=int, default=2026, help="the stream's seed")
    parser.add_argument("--members", type=int, default=52, help="honest members (default 52)")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="add the attacks the defaults were not tuned on (replies to random messages,"
        " a ring of alts reacting to each other, pasted prose)",
    )


async def _simulate(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= 60 or not 3 <= args.members <= 1000:
        print("farming: --days must be 1-60 and --members 3-1000.", file=sys.stderr)
        return 2
    figures, lines = await simulate(args.seed, args.days, args.members, held_out=args.held_out)
    print("\n".join(lines))
    met = (
        figures.farmer_share <= 0.10
        and figures.worst_pattern[1] <= 2.0
        and figures.content_loss <= 0.01
        and figures.median_honest >= figures.median_today
    )
    print(f"[farming] targets {'met' if met else 'MISSED'}")
    return 0 if met else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks.farming`: exit 0 when the targets are met, 1 if not."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.farming",
        description=(
            "Feed a simulated week of two chats (honest members and every known kind of"
            " farmer) through the real Dispatcher on a fake clock with the built-in defaults;"
            " print farmers' share, each pattern's points per day against the median honest"
            " member and honest losses by reason."
        ),
    )
    _add_arguments(parser)
    return asyncio.run(_simulate(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
