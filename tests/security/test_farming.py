"""A week of chat through the real Dispatcher: do farmers earn, and do honest people lose?

One seeded message stream (honest people chatting, farmers spamming, padding, varying one
message, bursting, and a ring thanking each other) is fed twice on a fake clock: with the
default anti-abuse settings, and with anti-abuse effectively off. Off shows what each
technique would earn; on must leave farmers at most 10% of all points while honest people
keep at least 98% of what they earn without it.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.testing import UpdateFactory
from plugins.gamification import FakeClock
from plugins.gamification.domain.anti_abuse import Refusal, Verdict
from plugins.gamification.domain.models import Receipt
from tests.support.telegram_harness import TelegramHarness

CHAT_ID = -100
CHAT = UpdateFactory.group(CHAT_ID, "Club")
WEEK_START = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
WAKE, SLEEP = 8 * 3600, 23 * 3600
HONEST = "honest"
COPY_PASTE, BURST, PADDING, VARIATION, RING = (
    "copy-paste", "burst", "padding", "near-repeat", "thanks-ring",
)  # fmt: skip
TECHNIQUES = (COPY_PASTE, BURST, PADDING, VARIATION, RING)
FARMERS = {101: COPY_PASTE, 102: BURST, 103: PADDING, 104: VARIATION, 105: RING, 106: RING}
RING_MEMBERS = (104, 105, 106)  # the near-repeat farmer also joins the ring
FARMER_SHARE_TARGET = 0.10
HONEST_LOSS_TARGET = 0.02

# Anti-abuse effectively off: nothing is refused that the defaults would refuse.
OFF: dict[str, Any] = {
    "anti_abuse": {
        "cooldown_seconds": 0,
        "min_length": 0,
        "repeat_similarity": 1.0,
        "repeat_memory": 1,
        "repeat_window_seconds": 0,
        "daily_cap": 10**9,
        "burst_messages": 1000,
    },
    "thanks": {"pair_cooldown_seconds": 0, "daily_limit": 10**9},
}

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
FILLERS = (
    "ok...", "a a a", "ok\u200b\u200b\u200b", "k.k.k", "lol", "yes!!", "hmm...", "a\u200ba\u200ba",
    "no no", "ok ok ok", "+++", "wow", ".....", "hi!!", "xd", "yep", "k k k k", "lol!!",
)  # fmt: skip
SPAM = "Join my channel t.me/cheap_points for FREE points every day, invite friends!!!"
VARIANT_BASE = "Selling cheap game accounts with rare skins, write me in private for prices"
SWAPS = {
    "Selling": ("Selling", "Offering", "Have", "Got"),
    "cheap": ("cheap", "budget", "low-cost", "discount"),
    "game": ("game", "gaming", "Steam"),
    "rare": ("rare", "unique", "legendary", "exclusive"),
    "write": ("write", "message", "DM", "ping"),
    "prices": ("prices", "the price", "details", "offers"),
}
HONEST_THANKS = (
    "thanks!", "thank you", "thanks, that helped a lot", "thank you so much",
    "спасибо", "спасибо большое", "danke", "gracias", "thx", "+1", "+", "ty",
)  # fmt: skip
# Habits: every third honest person opens each day with the same line of their own.
ROUTINES = (
    "Good morning everyone, coffee is ready",
    "Morning all, have a great day at work",
    "Hello friends, what are we talking about today?",
    "Good morning chat, the sun is finally out here",
)
RING_THANKS = ("thanks", "thanks!", "thank you", "thx", "+", "+1", "ty", "спасибо")


@dataclass(frozen=True, slots=True)
class Post:
    at: datetime
    user: int
    text: str
    technique: str
    reply_to: int | None = None  # index of an earlier post in the stream


@dataclass(frozen=True, slots=True)
class Scale:
    honest: int = 30
    days: int = 7
    honest_rate: tuple[float, float] = (4, 16)  # messages per day, per person
    farm_minutes: float = 40  # one solo farming session per farmer per day
    ring_minutes: float = 20  # one ring session per day


def sentence(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(5, 14))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice((".", "!", "?", "", "..."))


def variation(rng: random.Random) -> str:
    """One message made slightly different each time, as a spammer dodging filters would."""
    words = [
        rng.choice(SWAPS[w]) if w in SWAPS and rng.random() < 0.5 else w
        for w in VARIANT_BASE.split()
    ]
    text = " ".join(words)
    trick = rng.randrange(6)
    if trick == 0:
        text = text.upper()
    elif trick == 1:
        text += f" #{rng.randint(1, 999)}"
    elif trick == 2:
        text += rng.choice(("!!!", " 🔥", " 💰💰", " :)", "..."))
    elif trick == 3:
        text = text.replace(" ", "  ", rng.randint(1, 3))
    return text


def honest_times(rng: random.Random, scale: Scale) -> list[tuple[datetime, int]]:
    """When each honest person writes: a few visits a day, minutes between messages."""
    slots: list[tuple[datetime, int]] = []
    for user in range(1, scale.honest + 1):
        rate = rng.uniform(*scale.honest_rate)
        for day in range(scale.days):
            count = max(0, round(rng.gauss(rate, rate / 3)))
            visits = sorted(rng.uniform(WAKE, SLEEP - 3600) for _ in range(rng.randint(1, 4)))
            seconds: list[float] = []
            for v, start in enumerate(visits):
                t = start
                for _ in range(count // len(visits) + (v < count % len(visits))):
                    seconds.append(t)
                    t += rng.uniform(60, 720)
            seconds.sort()
            for i in range(1, len(seconds)):
                # Gaps of minutes: nobody honest writes twice within a minute here.
                seconds[i] = max(seconds[i], seconds[i - 1] + rng.uniform(60, 240))
            midnight = WEEK_START + timedelta(days=day)
            slots += [(midnight + timedelta(seconds=s), user) for s in seconds if s < 86_000]
    return slots


def farmer_posts(rng: random.Random, scale: Scale) -> list[Post]:
    posts: list[Post] = []
    for day in range(scale.days):
        midnight = WEEK_START + timedelta(days=day)
        for user in (101, 102, 103, 104):
            technique = FARMERS[user] if user != 104 else VARIATION
            t = rng.uniform(WAKE, SLEEP - scale.farm_minutes * 60)
            end = t + scale.farm_minutes * 60
            while t < end:
                at = midnight + timedelta(seconds=t)
                if technique == BURST:
                    for _ in range(rng.randint(8, 15)):
                        posts.append(Post(at, user, sentence(rng), BURST))
                        at += timedelta(seconds=rng.uniform(0.3, 1.0))
                    t += rng.uniform(120, 300)
                    continue
                text = {
                    COPY_PASTE: SPAM,
                    PADDING: rng.choice(FILLERS),
                    VARIATION: variation(rng),
                }[technique]
                posts.append(Post(at, user, text, technique))
                t += rng.uniform(15, 45)
        # The ring: one posts, the other two thank it, round after round.
        t = rng.uniform(WAKE, SLEEP - scale.ring_minutes * 60)
        end = t + scale.ring_minutes * 60
        turn = 0
        while t < end:
            poster = RING_MEMBERS[turn % 3]
            at = midnight + timedelta(seconds=t)
            posts.append(Post(at, poster, variation(rng), RING))
            for other in RING_MEMBERS:
                if other != poster:
                    at += timedelta(seconds=rng.uniform(3, 15))
                    posts.append(Post(at, other, rng.choice(RING_THANKS), RING, -1))
            turn += 1
            t += rng.uniform(20, 60)
    return posts


def week_of_chat(seed: int, scale: Scale) -> list[Post]:
    """The whole stream in time order; a reply points at an earlier post by index."""
    rng = random.Random(seed)
    slots = sorted(honest_times(rng, scale))
    farm = farmer_posts(rng, scale)
    # Farmers' thanks reply to the latest ring post before them (marked -1 for now).
    events: list[tuple[datetime, int, Post | int]] = [(at, user, user) for at, user in slots]
    events += [(p.at, p.user, p) for p in farm]
    events.sort(key=lambda e: (e[0], e[1]))
    posts: list[Post] = []
    recent_honest: list[int] = []
    last_ring_post: int | None = None
    opened: set[tuple[int, date]] = set()
    for at, user, item in events:
        if isinstance(item, Post):
            post = item
            if post.reply_to == -1:
                if last_ring_post is None or posts[last_ring_post].user == user:
                    continue
                post = Post(post.at, post.user, post.text, post.technique, last_ring_post)
            elif post.technique == RING:
                last_ring_post = len(posts)
            posts.append(post)
            continue
        targets = [
            i
            for i in recent_honest[-15:]
            if posts[i].user != user and at - posts[i].at < timedelta(minutes=45)
        ]
        if targets and rng.random() < 0.1:
            posts.append(Post(at, user, rng.choice(HONEST_THANKS), HONEST, rng.choice(targets)))
        else:
            recent_honest.append(len(posts))
            text = sentence(rng)
            if user % 3 == 0 and (user, at.date()) not in opened:
                text = ROUTINES[user // 3 % len(ROUTINES)]
            opened.add((user, at.date()))
            posts.append(Post(at, user, text, HONEST))
    # Same instant for two posts would be the same clock reading: keep them apart.
    for i in range(1, len(posts)):
        if posts[i].at <= posts[i - 1].at:
            fixed = posts[i - 1].at + timedelta(milliseconds=10)
            posts[i] = Post(
                fixed, posts[i].user, posts[i].text, posts[i].technique, posts[i].reply_to
            )
    return posts


def person(user_id: int) -> dict[str, Any]:
    if user_id in FARMERS:
        return UpdateFactory.user(user_id, f"Farmer {user_id}", f"farmer{user_id}")
    return UpdateFactory.user(user_id, f"Person {user_id}", f"person{user_id}")


@dataclass(repr=False)
class Run:
    points: Counter[str] = field(default_factory=Counter)  # by technique (honest included)
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (technique, tx kind)
    per_user: Counter[int] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    refusals: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    suspicions: int = 0

    def __repr__(self) -> str:
        return f"Run(total={self.total}, farmers={self.farmers})"

    @property
    def total(self) -> int:
        return sum(self.points.values())

    @property
    def farmers(self) -> int:
        return self.total - self.points[HONEST]


async def simulate(h: TelegramHarness, posts: list[Post]) -> Run:
    run = Run()
    services = h.services
    technique_of: dict[int, str] = {}
    judge, thank = services.gate.judge, services.thank

    def judged(fact: Any, amount: int, now: datetime, day: str) -> Verdict:
        verdict = judge(fact, amount, now, day)
        if verdict.refusal is not None:
            run.refusals[technique_of[fact.message_id]][verdict.refusal.value] += 1
        return verdict

    async def thanked(fact: Any) -> Receipt | Refusal:
        outcome = await thank(fact)
        if isinstance(outcome, Refusal):
            run.refusals[technique_of[fact.message_id]][f"thanks:{outcome.value}"] += 1
        return outcome

    services.gate.judge = judged  # type: ignore[method-assign]
    services.thank = thanked  # type: ignore[method-assign]
    ids: list[int] = []
    for post in posts:
        h.clock.set(post.at)
        reply = ids[post.reply_to] if post.reply_to is not None else None
        update = h.factory.message(CHAT, person(post.user), post.text, reply_to=reply)
        assert update.message is not None
        technique_of[update.message.message_id] = post.technique
        ids.append(update.message.message_id)
        run.messages[post.technique] += 1
        await h.feed(update)
    rows = h.rows("SELECT user_id, idem_key, amount, kind FROM transactions")
    for user_id, key, amount, kind in rows:
        message_id = int(key.rsplit(":", 1)[1])
        # Points go to the technique of the message that earned them (a thanks: the ring's).
        run.points[technique_of[message_id]] += amount
        run.by_kind[(technique_of[message_id], kind)] += amount
        run.per_user[user_id] += amount
    run.suspicions = int(h.rows("SELECT COUNT(*) FROM suspicions")[0][0])
    return run


async def week(
    tmp_path: Path, posts: list[Post], gamification: Mapping[str, Any] | None = None
) -> Run:
    """One run on a fresh database; synchronous=NORMAL, as durability is not what is measured."""
    h = TelegramHarness(
        tmp_path / f"farm-{uuid.uuid4().hex}.sqlite3",
        gamification=gamification or {},
        clock=FakeClock(WEEK_START + timedelta(seconds=WAKE)),
    )
    storage = h.config.storage.model_copy(update={"synchronous": "NORMAL"})
    h.config = h.config.model_copy(update={"storage": storage})
    await h.start()
    try:
        return await simulate(h, posts)
    finally:
        await h.close()
        h.assert_sent_html_valid()


def share(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "   n/a"


def report(title: str, posts: list[Post], off: Run, on: Run) -> list[str]:
    lines = [
        f"[farming] {title}: {len(posts)} updates over {len({p.at.date() for p in posts})}"
        f" days; honest {off.messages[HONEST]} messages, farmers"
        f" {len(posts) - off.messages[HONEST]}",
        f"[farming] {'group':<12} {'msgs':>6} {'off pts':>9} {'share':>7} {'on pts':>9}"
        f" {'share':>7} {'kept':>7}",
    ]
    for group in (HONEST, *TECHNIQUES):
        lines.append(
            f"[farming] {group:<12} {off.messages[group]:>6} {off.points[group]:>9,}"
            f" {share(off.points[group], off.total)} {on.points[group]:>9,}"
            f" {share(on.points[group], on.total)} {share(on.points[group], off.points[group])}"
        )
    lines.append(
        f"[farming] {'farmers':<12} {sum(off.messages[t] for t in TECHNIQUES):>6}"
        f" {off.farmers:>9,} {share(off.farmers, off.total)} {on.farmers:>9,}"
        f" {share(on.farmers, on.total)} {share(on.farmers, off.farmers)}"
    )
    lines.append(f"[farming] {'total':<12} {len(posts):>6} {off.total:>9,}         {on.total:>9,}")
    honest_loss = 1 - on.points[HONEST] / off.points[HONEST]
    lines.append(
        f"[farming] farmers' share with anti-abuse on: {on.farmers / on.total:.1%}"
        f" (target <= {FARMER_SHARE_TARGET:.0%}); honest loss: {honest_loss:.2%}"
        f" (target <= {HONEST_LOSS_TARGET:.0%}); burst suspicions recorded: {on.suspicions}"
    )
    kinds = ", ".join(f"{t}/{k} {v:,}" for (t, k), v in sorted(on.by_kind.items()) if t != HONEST)
    lines.append(f"[farming] on, farmers' points by kind: {kinds}")
    for group in (HONEST, *TECHNIQUES):
        reasons = ", ".join(f"{k} {v}" for k, v in on.refusals[group].most_common()) or "none"
        lines.append(f"[farming] refused ({group}): {reasons}")
    per_farmer = ", ".join(f"{uid} {FARMERS[uid]} {on.per_user[uid]:,}" for uid in sorted(FARMERS))
    honest_users = [on.per_user[u] for u in on.per_user if u not in FARMERS]
    mean = sum(honest_users) / max(1, len(honest_users))
    lines.append(
        f"[farming] on, per farmer: {per_farmer}; mean honest person {mean:,.0f},"
        f" best honest {max(honest_users, default=0):,}"
    )
    return lines


# The anti-abuse-off run of each scale, shared by the tests that compare against it.
_OFF_RUNS: dict[Scale, Run] = {}


async def off_run(tmp_path: Path, posts: list[Post], scale: Scale) -> Run:
    if scale not in _OFF_RUNS:
        _OFF_RUNS[scale] = await week(tmp_path, posts, OFF)
    return _OFF_RUNS[scale]


async def run_week(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    title: str,
    scale: Scale,
    gamification: Mapping[str, Any] | None = None,
) -> tuple[Run, Run]:
    posts = week_of_chat(2026, scale)
    on = await week(tmp_path, posts, gamification)
    off = await off_run(tmp_path, posts, scale)
    with capsys.disabled():
        print("\n" + "\n".join(report(title, posts, off, on)))
    return off, on


def assert_targets(off: Run, on: Run) -> None:
    assert off.points[HONEST] > 0
    assert on.points[HONEST] <= off.points[HONEST]
    # Anti-abuse off must really let farming through, or the comparison means nothing.
    assert off.farmers / off.total > 0.3
    missed = []
    if on.farmers / on.total > FARMER_SHARE_TARGET:
        missed.append(f"farmers keep {on.farmers / on.total:.1%} of all points")
    loss = 1 - on.points[HONEST] / off.points[HONEST]
    if loss > HONEST_LOSS_TARGET:
        missed.append(f"honest people lose {loss:.2%} of their points")
    assert missed == [], "; ".join(missed)


async def test_a_week_of_farming_is_not_worth_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's ./config.toml may leak into the runs
    off, on = await run_week(tmp_path, capsys, "default anti-abuse, one week", Scale())
    assert_targets(off, on)


# Where the defaults let farming through, and what settings alone change (see the report:
# near-repeats and padding pass the 0.85 similarity over the last 5 messages; a burst's first
# message scores). Short thanks replies ("+", "ty") still cost honest people their activity
# points, which no setting changes without opening the door to padding.
STRICTER_REPEATS: dict[str, Any] = {
    "anti_abuse": {
        "repeat_similarity": 0.5,
        "repeat_memory": 50,
        "repeat_window_seconds": 86_400,
        "auto_freeze": True,
    }
}


async def test_stricter_repeat_settings_and_auto_freeze_stop_the_farmers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    title = "candidate: repeat_similarity 0.5, memory 50, window 24 h, auto_freeze"
    off, on = await run_week(tmp_path, capsys, title, Scale(), STRICTER_REPEATS)
    assert on.farmers / on.total <= FARMER_SHARE_TARGET
    assert on.points[HONEST] <= off.points[HONEST]


@pytest.mark.soak
async def test_a_longer_busier_run_of_farming_is_not_worth_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    scale = Scale(honest=60, days=14, farm_minutes=120, ring_minutes=60)
    off, on = await run_week(tmp_path, capsys, "soak: 60 honest, two weeks", scale)
    assert_targets(off, on)


def test_the_stream_is_the_same_every_time() -> None:
    """Both runs must see the very same messages: the stream depends only on the seed."""
    assert week_of_chat(2026, Scale()) == week_of_chat(2026, Scale())
    posts = week_of_chat(2026, Scale())
    for earlier, later in itertools.pairwise(posts):
        assert earlier.at < later.at
    honest = [p for p in posts if p.technique == HONEST]
    by_user: defaultdict[int, list[datetime]] = defaultdict(list)
    for post in honest:
        by_user[post.user].append(post.at)
    gaps = [b - a for times in by_user.values() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= timedelta(seconds=60)
    assert all(p.at.hour * 3600 + p.at.minute * 60 >= WAKE for p in posts)
