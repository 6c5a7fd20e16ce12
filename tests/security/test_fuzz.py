"""Fuzzing: every command's arguments and odd updates through the real Dispatcher; config files.

Whatever a person sends, nothing may reach the errors handler, no traceback may reach the
chat, every reply must be valid Telegram HTML within 4,096 characters, and one message gets
at most one reply. Whatever a config file holds, loading it raises ConfigError naming the
file and the key (or the TOML problem), never another exception.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiogram.types import Update
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bot.config import AppConfig, ConfigError, load_config
from bot.errors import SORRY
from bot.registry import default_registry
from bot.testing import BOT_USER, UpdateFactory
from plugins.gamification.domain.config import GamificationConfig
from tests.gamification.conftest import MakeHarness
from tests.support.telegram_harness import (
    ANONYMOUS_ADMIN,
    TelegramHarness,
    assert_telegram_html,
)

FUZZ = settings(
    deadline=None,
    max_examples=500,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONFIG_FUZZ = settings(FUZZ, max_examples=400)
SOAK = settings(FUZZ, max_examples=10_000)

CHAT_ID, OTHER_ID, LOG_ID = -100, -200, -999
CHAT = {**UpdateFactory.group(CHAT_ID, "Club <b>&amp; 🙂</b>")}
FORUM = {**CHAT, "is_forum": True}
MOD = UpdateFactory.user(9, "Mod <i>&", "mod_nine")
ROOT = {**UpdateFactory.user(77, "Root & <Co>", "root_admin"), "last_name": "</b>"}
ALICE = UpdateFactory.user(1, "Alice \u202eevil", "alice")
BOB = UpdateFactory.user(2, "<b>Bob</b>", "bob")
ZED = UpdateFactory.user(3, "Zed\u200b 🙂 مرحبا", None)
OUTSIDER = UpdateFactory.user(55, "Other Admin", "other_admin")
HELPER_BOT = {"id": 555, "is_bot": True, "first_name": "Helper", "username": "helper_bot"}
CHANNEL = {"id": -100777, "type": "channel", "title": "News <b>"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}

ADMIN_COMMANDS = (
    "award", "deduct", "revert", "freeze", "unfreeze", "audit", "integrity", "gstats",
)  # fmt: skip
USER_COMMANDS = ("top", "points", "history", "achievements", "help", "start")
COMMANDS = ADMIN_COMMANDS + USER_COMMANDS
# Who sends: the chat's admin, a configured admin, a member, an admin of another chat, a
# person never seen, nobody, a channel, the anonymous group admin, and people in private.
SENDERS = (
    "chat_admin", "configured_admin", "member", "other_chat_admin", "stranger",
    "no_from_user", "channel", "anonymous_admin", "private_admin", "private_member",
)  # fmt: skip
AUTHORISED = frozenset({"chat_admin", "configured_admin"})
SHAPES = ("plain", "plain", "plain", "edited", "forwarded", "topic", "caption")
TARGETS = (
    "none", "none", "alice", "bob", "zed", "helper_bot", "channel_post", "points_bot",
    "stranger", "self",
)  # fmt: skip

NASTY = (
    "<b>", "</b>", "<i>x</i>", "&", "&amp;", "&lt;", "<", ">", '"', "'", "\u202e", "\u200b",
    "\u200f", "\u2066", "\ufeff", "🙂", "👨‍👩‍👧‍👦", "שלום", "مرحبا", "١٢٣", "１２", "𝟏𝟐", "²", "Ⅻ",
    "NaN", "inf", "-0", "0", "00", "1e3", "0x1f", "9" * 12, "9" * 13, "9" * 15, "9" * 16,
    "9" * 40, "-1", "+1", "+5", "#", "#1", "#2", "#0", "##1", "#-1", "@", "@@bob", "@a",
    "@bob", "@BOB", "@alice", "@mod_nine", "@points_bot", "@GroupAnonymousBot",
    "@helper_bot", "@Channel_Bot", "@never_seen_here", "@" + "x" * 32, "@" + "x" * 33,
    "day", "week", "month", "all", "ALL", " ", "\n", "\t", "%s", "%(x)s", "{0}", "{}",
    "'; DROP TABLE transactions; --", "\\", "`", "```", "*bold*", "[link](http://x)",
    "<a href='x'>", "&#0;", "&#x110000;", "1", "2", "3", "5", "50", "10000", "10001", "2",
)  # fmt: skip
PADDING = (None, None, None, None, "x", "🙂", "<", "&", "\u200b", "ش", "\n")

token = st.one_of(
    st.sampled_from(NASTY),
    st.integers(-(10**20), 10**20).map(str),
    st.text(max_size=20),
)
arguments = st.one_of(
    st.lists(token, max_size=8).map(" ".join),
    st.text(max_size=300),
)
names = st.one_of(
    st.sampled_from(["<b>x</b>", "&amp;", "A & B", "\u202eRTL", "zero\u200bwidth", "🙂" * 32]),
    st.text(min_size=1, max_size=64),
)
usernames = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{4,31}\Z")
strangers = st.builds(
    lambda user_id, first, last, username: {
        "id": user_id,
        "is_bot": False,
        "first_name": first,
        **({"last_name": last} if last else {}),
        **({"username": username} if username else {}),
    },
    st.integers(10_000, 2**40),
    names,
    st.none() | names,
    st.none() | usernames,
)
origins = st.sampled_from(
    [
        {"type": "user", "date": 1_700_000_000, "sender_user": MOD},
        {"type": "hidden_user", "date": 1_700_000_000, "sender_user_name": "<b>Hidden &"},
        {"type": "channel", "date": 1_700_000_000, "chat": CHANNEL, "message_id": 7},
        {"type": "chat", "date": 1_700_000_000, "sender_chat": CHAT},
    ]
)


def no_traceback_markers(text: str) -> bool:
    # Replies may echo what was sent; a sender's own "Traceback" proves nothing.
    return "Traceback" not in text and 'File "' not in text


@dataclass(repr=False)
class World:
    """A started bot that knows a few people, with messages to reply to."""

    h: TelegramHarness
    targets: dict[str, dict[str, Any]]
    topic_root: dict[str, Any]
    outcomes: Counter[str] = field(default_factory=Counter)

    def __repr__(self) -> str:
        return "World(...)"


async def post(
    h: TelegramHarness, chat: dict[str, Any], user: dict[str, Any] | None, text: str, **extra: Any
) -> dict[str, Any]:
    """Feed a message and return it as a reply_to_message payload."""
    update = await h.say(chat, user, text, **extra)
    assert update.message is not None
    body: dict[str, Any] = {
        "message_id": update.message.message_id,
        "date": int(update.message.date.timestamp()),
        "chat": chat,
        "text": text,
        **extra,
    }
    if user is not None:
        body["from"] = user
    h.clock.advance(61)
    return body


@pytest.fixture
async def world(
    make_harness: MakeHarness, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[World]:
    h = await make_harness(
        admins={CHAT_ID: {9}, OTHER_ID: {55}},
        admin_ids=[77],
        admin_log_chat_id=LOG_ID,
        gamification={"progress": {"announce_levels": False, "announce_achievements": False}},
    )
    targets: dict[str, dict[str, Any]] = {}
    targets["alice"] = await post(h, CHAT, ALICE, "good morning, the coffee is ready")
    targets["bob"] = await post(h, CHAT, BOB, "has anyone tried the new release <yet>?")
    targets["zed"] = await post(h, CHAT, ZED, "مرحبا everyone, reading about castles")
    targets["helper_bot"] = await post(h, CHAT, HELPER_BOT, "automated notice")
    targets["channel_post"] = await post(h, CHAT, CHANNEL_BOT, "news", sender_chat=CHANNEL)
    await post(h, CHAT, OUTSIDER, "hello from another chat's admin", message_id=90_000)
    targets["points_bot"] = {
        "message_id": 91_000,
        "date": 1_700_000_000,
        "chat": CHAT,
        "from": BOT_USER,
        "text": "Bob +5 (#1). Balance 5.",
    }
    targets["stranger"] = {
        "message_id": 91_001,
        "date": int(h.clock.now().timestamp()),
        "chat": CHAT,
        "from": UpdateFactory.user(424_242, "Never <seen>", None),
        "text": "hi",
    }
    created = {"forum_topic_created": {"name": "Ideas <b>", "icon_color": 7322096}}
    root = await h.say(FORUM, BOB, content=created)
    assert root.message is not None
    topic_root = {
        "message_id": root.message.message_id,
        "date": int(root.message.date.timestamp()),
        "chat": FORUM,
        "from": BOB,
        **created,
    }
    await h.say(CHAT, MOD, "/award @bob 50 seed")
    await h.say(CHAT, MOD, "/award @alice 20 seed")
    h.session.clear()
    world = World(h, targets, topic_root)
    yield world
    if world.outcomes:
        with capsys.disabled():
            shown = ", ".join(f"{k}: {v}" for k, v in sorted(world.outcomes.items()))
            print(f"\n[fuzz] {sum(world.outcomes.values())} fuzzed updates ({shown})")


def sender_of(
    kind: str, stranger: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """(chat, from_user, extra fields) for a kind of sender."""
    return {
        "chat_admin": (CHAT, MOD, {}),
        "configured_admin": (CHAT, ROOT, {}),
        "member": (CHAT, ALICE, {}),
        "other_chat_admin": (CHAT, OUTSIDER, {}),
        "stranger": (CHAT, stranger, {}),
        "no_from_user": (CHAT, None, {}),
        "channel": (CHAT, CHANNEL_BOT, {"sender_chat": CHANNEL}),
        "anonymous_admin": (CHAT, ANONYMOUS_ADMIN, {"sender_chat": CHAT}),
        "private_admin": (UpdateFactory.private(MOD), MOD, {}),
        "private_member": (UpdateFactory.private(ALICE), ALICE, {}),
    }[kind]


@dataclass(frozen=True)
class Case:
    text: str
    sender: str
    stranger: dict[str, Any]
    shape: str
    target: str
    origin: dict[str, Any]
    content: dict[str, Any] | None = None


def build(world: World, case: Case) -> Update:
    """The update for a case: its sender, shape (edited, forwarded, topic...) and reply."""
    chat, user, extra = sender_of(case.sender, case.stranger)
    extra = dict(extra)
    group = chat["type"] != "private"
    if case.target == "self":
        extra["reply_to_message"] = {
            "message_id": 91_002,
            "date": 1_700_000_000,
            "chat": chat,
            "text": "earlier",
            **({"from": user} if user else {}),
            **({"sender_chat": extra["sender_chat"]} if "sender_chat" in extra else {}),
        }
    elif case.target != "none" and group:
        extra["reply_to_message"] = world.targets[case.target]
    if case.shape == "forwarded":
        extra["forward_origin"] = case.origin
    if case.shape == "topic" and group:
        chat = FORUM
        root = world.topic_root["message_id"]
        extra.update(message_thread_id=root, is_topic_message=True)
        extra.setdefault("reply_to_message", world.topic_root)
    content = case.content
    if case.shape == "caption" and content is None:
        caption = case.text[:1024]
        content = {
            "photo": [{"file_id": "p", "file_unique_id": "u", "width": 9, "height": 9}],
            "caption": caption,
            "caption_entities": [
                {"type": "bot_command", "offset": 0, "length": len(caption.split()[0])}
            ]
            if caption.startswith("/") and caption.split()
            else [],
        }
    return world.h.factory.message(
        chat, user, case.text, content=content, edited=case.shape == "edited", **extra
    )


def admin_writes(h: TelegramHarness) -> tuple[object, ...]:
    return (
        h.rows("SELECT COUNT(*) FROM admin_actions")[0][0],
        h.rows("SELECT chat_id, user_id FROM freezes ORDER BY chat_id, user_id"),
        h.rows("SELECT COUNT(*) FROM transactions WHERE kind IN ('admin', 'revert')")[0][0],
    )


def error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


async def deliver(
    world: World, update: Update, caplog: pytest.LogCaptureFixture
) -> list[SendMessage]:
    """Feed one update and check everything the bot said and logged because of it."""
    h = world.h
    caplog.clear()
    start = len(h.session.calls)
    await h.feed(update)
    h.clock.advance(61)
    sent = [c for c in h.session.calls[start:] if isinstance(c, SendMessage)]
    message = update.message or update.edited_message
    assert message is not None
    assert not error_records(caplog), error_records(caplog)
    for reply in sent:
        assert reply.text != SORRY
        assert SORRY not in reply.text
        assert no_traceback_markers(reply.text), reply.text
        assert_telegram_html(reply.text)
        assert int(reply.chat_id) in (message.chat.id, LOG_ID), reply.chat_id
        if reply.reply_parameters is not None:
            assert reply.reply_parameters.message_id == message.message_id
    in_chat = [r for r in sent if int(r.chat_id) == message.chat.id]
    assert len(in_chat) <= 1, [r.text for r in in_chat]
    assert len(sent) - len(in_chat) <= 1
    return sent


@st.composite
def command_cases(draw: st.DrawFn) -> Case:
    command = draw(st.sampled_from(COMMANDS))
    mention = draw(st.sampled_from(["", "", "", "@points_bot", "@POINTS_BOT", "@other_bot"]))
    sep = draw(st.sampled_from([" ", " ", " ", "\n", "  ", "\u00a0", "\t"]))
    args = draw(arguments)
    text = f"/{command}{mention}" + (sep + args if args else "")
    pad = draw(st.sampled_from(PADDING))
    if pad is not None:
        text = text + " " + pad * 4096
    text = text[:4096]
    stranger = draw(strangers)
    assume(no_traceback_markers(text) and no_traceback_markers(str(stranger)))
    return Case(
        text=text,
        sender=draw(st.sampled_from(SENDERS)),
        stranger=stranger,
        shape=draw(st.sampled_from(SHAPES)),
        target=draw(st.sampled_from(TARGETS)),
        origin=draw(origins),
    )


def command_name(text: str) -> tuple[str, str]:
    head = text.split(maxsplit=1)[0] if text.split() else text
    name, _, mention = head[1:].partition("@")
    return name, mention


@FUZZ
@given(case=command_cases())
async def test_fuzzed_commands_get_one_clean_reply_or_silence(
    world: World, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    await check_command(world, caplog, case)


@pytest.mark.soak
@SOAK
@given(case=command_cases())
async def test_many_more_fuzzed_commands(
    world: World, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    await check_command(world, caplog, case)


async def check_command(world: World, caplog: pytest.LogCaptureFixture, case: Case) -> None:
    h = world.h
    update = build(world, case)
    before = admin_writes(h)
    sent = await deliver(world, update, caplog)
    name, mention = command_name(case.text)
    ours = mention.lower() in ("", "points_bot")
    private = case.sender.startswith("private")
    in_chat = [r for r in sent if int(r.chat_id) != LOG_ID]
    if case.shape == "edited":
        # Commands are never acted on when edited: no reply, no Bot API call at all.
        assert sent == []
    elif case.shape != "caption" and ours and name in COMMANDS and name != "start":
        assert len(in_chat) == 1, (case, [r.text for r in sent])
    elif name == "start" and private and case.shape != "caption" and ours:
        assert len(in_chat) == 1
    if name in ADMIN_COMMANDS and not (
        case.sender in AUTHORISED and case.shape in ("plain", "topic") and ours
    ):
        assert admin_writes(h) == before, case
        assert all(int(r.chat_id) != LOG_ID for r in sent)
    world.outcomes[f"{case.shape} {len(in_chat)} reply"] += 1


# -- odd updates that are not commands ----------------------------------------------------

FILE = {"file_id": "f", "file_unique_id": "fu"}
MEDIA: dict[str, dict[str, Any]] = {
    "photo": {"photo": [{**FILE, "width": 9, "height": 9}]},
    "video": {"video": {**FILE, "width": 9, "height": 9, "duration": 1}},
    "animation": {"animation": {**FILE, "width": 9, "height": 9, "duration": 1}},
    "document": {"document": {**FILE, "file_name": "<b>&.txt"}},
    "audio": {"audio": {**FILE, "duration": 1, "title": "<i>"}},
    "voice": {"voice": {**FILE, "duration": 1}},
}
CONTENT: dict[str, dict[str, Any]] = {
    "sticker": {"sticker": {**FILE, "type": "regular", "width": 512, "height": 512,
                            "is_animated": False, "is_video": False, "emoji": "🙂"}},
    "video_note": {"video_note": {**FILE, "length": 9, "duration": 1}},
    "dice": {"dice": {"emoji": "🎲", "value": 3}},
    "poll": {"poll": {
        "id": "1", "question": "<b>q?", "total_voter_count": 0, "is_closed": False,
        "is_anonymous": True, "type": "regular", "allows_multiple_answers": False,
        "allows_revoting": True, "members_only": False,
        "options": [{"text": "a&", "voter_count": 0, "persistent_id": "o1"},
                    {"text": "b", "voter_count": 0, "persistent_id": "o2"}],
    }},
    "location": {"location": {"latitude": 1.5, "longitude": 2.5}},
    "venue": {"venue": {"location": {"latitude": 1.5, "longitude": 2.5}, "title": "<b>",
                        "address": "&"}},
    "contact": {"contact": {"phone_number": "+100", "first_name": "<b>Contact&"}},
    "story": {"story": {"chat": CHANNEL, "id": 1}},
    "future_feature": {"future_feature": {"anything": [1, 2, 3]}},
    "new_chat_members": {"new_chat_members": [ALICE, HELPER_BOT]},
    "left_chat_member": {"left_chat_member": BOB},
    "new_chat_title": {"new_chat_title": "<b>New & title"},
    "group_chat_created": {"group_chat_created": True},
    "forum_topic_created": {"forum_topic_created": {"name": "<i>", "icon_color": 7322096}},
    "pinned_message": {"pinned_message": {"message_id": 1, "date": 0, "chat": CHAT}},
    "migrate_to_chat_id": {"migrate_to_chat_id": -1009},
    "video_chat_started": {"video_chat_started": {}},
    "boost_added": {"boost_added": {"boost_count": 2}},
}  # fmt: skip
# Content the default config prices (text aside): anything else never scores.
SCORED_CONTENT = {*MEDIA, "sticker", "poll", "video_note"}
THANKS = ("thanks", "+", "+1", "спасибо)", "thank you!!", "ty", "thanks <b>&amp;</b>")
LONG = ("x", "🙂", "<", "&", "\u200b", "ش", "\u202e", " ")


@st.composite
def odd_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["text", "text", "text", "media", "other"]))
    text = draw(
        st.one_of(
            st.sampled_from(THANKS),
            st.lists(token, max_size=10).map(" ".join),
            st.text(max_size=200),
            st.sampled_from(LONG).map(lambda ch: (ch * 4096)[:4096]),
            st.tuples(st.sampled_from(THANKS), st.sampled_from(LONG)).map(
                lambda t: (t[0] + " " + t[1] * 4096)[:4096]
            ),
        )
    )
    assume(not text.startswith("/"))
    content: dict[str, Any] | None = None
    if kind == "media":
        content = {**MEDIA[draw(st.sampled_from(sorted(MEDIA)))], "caption": text[:1024]}
    elif kind == "other":
        content = CONTENT[draw(st.sampled_from(sorted(CONTENT)))]
    stranger = draw(strangers)
    assume(no_traceback_markers(text) and no_traceback_markers(str(stranger)))
    shape = draw(st.sampled_from(("plain", "plain", "edited", "forwarded", "topic", "via_bot")))
    return Case(
        text=text,
        sender=draw(st.sampled_from((*SENDERS, "bot"))),
        stranger=stranger,
        shape=shape,
        target=draw(st.sampled_from(TARGETS)),
        origin=draw(origins),
        content=content,
    )


@FUZZ
@given(case=odd_cases())
async def test_odd_updates_never_crash_and_never_score_what_must_not(
    world: World, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    await check_odd_update(world, caplog, case)


@pytest.mark.soak
@SOAK
@given(case=odd_cases())
async def test_many_more_odd_updates(
    world: World, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    await check_odd_update(world, caplog, case)


async def check_odd_update(world: World, caplog: pytest.LogCaptureFixture, case: Case) -> None:
    h = world.h
    via_bot = case.shape == "via_bot"
    if case.sender == "bot":
        case = Case(
            case.text, "stranger", HELPER_BOT, case.shape, case.target, case.origin, case.content
        )
    if via_bot:
        case = Case(
            case.text, case.sender, case.stranger, "plain", case.target, case.origin, case.content
        )
    update = build(world, case)
    if via_bot:
        message = update.message
        assert message is not None
        update = Update.model_validate(
            {
                "update_id": update.update_id,
                "message": {
                    **message.model_dump(mode="json", by_alias=True, exclude_none=True),
                    "via_bot": HELPER_BOT,
                },
            }
        )
    before = h.tx_count()
    await deliver(world, update, caplog)
    chat, user, extra = sender_of(case.sender, case.stranger)
    never = (
        case.shape in ("edited", "forwarded")
        or user is None
        or user.get("is_bot", False)
        or "sender_chat" in extra
        or chat["type"] == "private"
        or (case.content is not None and not set(case.content) & SCORED_CONTENT)
    )
    if never:
        assert h.tx_count() == before, case
    world.outcomes["odd scored" if h.tx_count() > before else "odd not scored"] += 1


async def test_fuzzed_session_leaves_a_clean_ledger(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short fixed run of the same shapes, then the integrity check must be clean."""
    cases = [
        Case("/award @bob 5 <b>&amp;</b>", "chat_admin", ZED, "plain", "none", {}),
        Case("/deduct 3 " + "\u202e" * 10, "configured_admin", ZED, "topic", "zed", {}),
        Case("/revert #1 oops", "chat_admin", ZED, "plain", "none", {}),
        Case("/revert #1 again", "chat_admin", ZED, "plain", "none", {}),
        Case("/freeze", "chat_admin", ZED, "plain", "alice", {}),
        Case("/unfreeze @alice", "chat_admin", ZED, "plain", "none", {}),
        Case("/audit @bob", "chat_admin", ZED, "plain", "none", {}),
        Case("/integrity", "chat_admin", ZED, "plain", "none", {}),
        Case("/gstats", "configured_admin", ZED, "plain", "none", {}),
        Case("/top all", "no_from_user", ZED, "plain", "none", {}),
        Case("thanks", "stranger", ZED, "plain", "bob", {}),
    ]
    for case in cases:
        sent = await deliver(world, build(world, case), caplog)
        assert len([r for r in sent if int(r.chat_id) == CHAT_ID]) == 1, case
    report = await world.h.services.engine.check()
    assert report.ok, report.to_text()
    with capsys.disabled():
        print(
            f"\n[fuzz] fixed session: {len(cases)} updates, ledger {report.transactions}"
            f" transactions, integrity clean={report.ok}"
        )


async def test_the_checks_catch_a_crash_and_a_second_reply(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fuzz checks are not vacuous: a handler that raises, or answers twice, fails them."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    top = Case("/top", "member", ZED, "plain", "none", {})
    with monkeypatch.context() as patch:
        patch.setattr(world.h.services.engine, "leaderboard", broken)
        with pytest.raises(AssertionError, match="unhandled error"):
            await deliver(world, build(world, top), caplog)
    original = world.h.services.engine.leaderboard

    async def twice(*args: Any, **kwargs: Any) -> Any:
        await world.h.app.bot.send_message(CHAT_ID, "an extra message")
        return await original(*args, **kwargs)

    monkeypatch.setattr(world.h.services.engine, "leaderboard", twice)
    with pytest.raises(AssertionError):
        await deliver(world, build(world, top), caplog)


# -- config files -------------------------------------------------------------------------


def leaf_keys(model: type[BaseModel], prefix: str) -> list[str]:
    keys: list[str] = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(leaf_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


CONFIG_KEYS = leaf_keys(AppConfig, "") + leaf_keys(GamificationConfig, "gamification.")
SECTIONS = sorted({key.rsplit(".", 1)[0] for key in CONFIG_KEYS if "." in key})
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(value)


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "a" * 300,
            "UTC",
            "Mars/Olympus",
            "../../etc/passwd",
            "0 3 * * *",
            "* * * *",
            "61 25 * * *",
            "NORMAL",
            "http://x",
            "ftp://x",
            "-1",
            "1e309",
            "text",
            "gamification",
            "127.0.0.1:99999",
            "[::1]:80",
            "1.5",
            "nan",
            "mon",
            "25:00",
            "24:00",
            "00:00",
        ]
    ),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
)
toml_keys = st.one_of(
    st.sampled_from([k.rsplit(".", 1)[-1] for k in CONFIG_KEYS]), st.text(max_size=12)
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(toml_keys, inner, max_size=3),
    max_leaves=8,
)


def load(path: Path) -> AppConfig:
    return load_config(path, plugin_models=default_registry().config_models(), environ={})


def assert_config_error(path: Path, exc: ConfigError, key: str | None = None) -> None:
    message = str(exc)
    # One problem a line, each "file: key: why" (a key may itself hold a line break).
    assert message.startswith(f"{path}: "), message
    for problem in message.split(f"{path}: ")[1:]:
        assert problem.startswith(("not valid TOML", "cannot be read")) or ": " in problem
    assert no_traceback_markers(message), message
    if key is not None:
        relative = key.split(".", 1)[-1]
        assert key in message or relative in message, (key, message)


@CONFIG_FUZZ
@given(key=st.sampled_from(CONFIG_KEYS), value=toml_values)
def test_a_wrong_value_for_any_key_is_a_config_error_naming_file_and_key(
    tmp_path: Path, key: str, value: object
) -> None:
    section, leaf = key.rsplit(".", 1) if "." in key else ("", key)
    header = f"[{section}]\n" if section else ""
    path = tmp_path / "config.toml"
    path.write_text(f"{header}{toml_key(leaf)} = {toml_value(value)}\n", encoding="utf-8")
    try:
        load(path)
    except ConfigError as exc:
        assert_config_error(path, exc, key)


@st.composite
def toml_ish(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            st.one_of(
                st.sampled_from(SECTIONS).map(lambda s: f"[{s}]"),
                st.sampled_from(SECTIONS).map(lambda s: f"[[{s}]]"),
                st.text(max_size=12).map(lambda s: f"[{s}]"),
                st.tuples(toml_keys, toml_values).map(
                    lambda kv: f"{toml_key(kv[0])} = {toml_value(kv[1])}"
                ),
                st.tuples(st.text(max_size=12), st.text(max_size=30)).map(" = ".join),
                st.text(max_size=40),
                st.just("# comment"),
                st.integers(1, 3000).map(lambda n: "deep = " + "[" * n + "]" * n),
            ),
            max_size=12,
        )
    )
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    junk = draw(st.one_of(st.just(b""), st.just(b""), st.binary(max_size=8)))
    at = draw(st.integers(0, len(data)))
    return data[:at] + junk + data[at:]


@CONFIG_FUZZ
@given(data=toml_ish())
def test_any_config_file_is_valid_or_a_config_error(tmp_path: Path, data: bytes) -> None:
    check_config_file(tmp_path, data)


@pytest.mark.soak
@SOAK
@given(data=toml_ish())
def test_many_more_config_files(tmp_path: Path, data: bytes) -> None:
    check_config_file(tmp_path, data)


def check_config_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    try:
        load(path)
    except ConfigError as exc:
        assert_config_error(path, exc)


HOSTILE_CONFIGS = [
    pytest.param(b"[bot]\nadmin_ids = [1]\n# caf\xe9 (saved as Latin-1)\n", None, id="not-utf8"),
    pytest.param(b"\xff\xfe[\x00b\x00o\x00t\x00]\x00\n\x00", None, id="utf16"),
    pytest.param(b"[bot]\nadmin_ids = " + b"[" * 3000 + b"]" * 3000 + b"\n", None, id="deep"),
    pytest.param(
        b'[scheduler]\ntimezone = "' + b"a" * 300 + b'"\n', "scheduler.timezone", id="long-tz"
    ),
    pytest.param(
        b'[gamification.ledger]\ntimezone = "Europe/' + b"B" * 300 + b'"\n',
        "gamification.ledger.timezone",
        id="long-tz-plugin",
    ),
    pytest.param(b"[bot]\ntoken = 5\n", "bot.token", id="token-int"),
    pytest.param(b"bot = 5\n", "bot", id="section-not-table"),
    pytest.param(b'[plugins]\nenabled = "gamification"\n', "plugins.enabled", id="enabled-str"),
]


@pytest.mark.parametrize(("data", "key"), HOSTILE_CONFIGS)
def test_hostile_config_files_are_config_errors(
    tmp_path: Path, data: bytes, key: str | None
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert_config_error(path, caught.value, key)


def test_config_path_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert_config_error(tmp_path, caught.value)


def test_print_fuzz_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\n[fuzz] commands {len(COMMANDS)}, senders {len(SENDERS)},"
            f" shapes {len(set(SHAPES))}, reply targets {len(set(TARGETS))},"
            f" odd contents {len(CONTENT) + len(MEDIA)};"
            f" config keys {len(CONFIG_KEYS)} in {len(SECTIONS)} sections;"
            f" examples per fuzz test {FUZZ.max_examples} (config {CONFIG_FUZZ.max_examples})"
        )
