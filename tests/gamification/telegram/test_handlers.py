"""The plugin's routers driven through Dispatcher.feed_update with a recording Bot API session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Router
from aiogram.methods import GetChatMember, SendMessage
from aiogram.types import Message

from bot.testing import UpdateFactory
from plugins.gamification.domain.activity import points_for
from plugins.gamification.domain.keys import message_key
from plugins.gamification.telegram.user import GROUP_ONLY
from tests.gamification.conftest import MakeHarness
from tests.support.chat import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    CHANNEL_BOT,
    CHAT,
    CHAT_ID,
    DAVE,
    FIXED,
    HELPER_BOT,
    LOG_ID,
    MOD,
    OTHER,
    OTHER_ID,
    PHOTO,
    SENTENCES,
    bob_says,
    thanks_rows,
)
from tests.support.telegram_harness import (
    ANONYMOUS_ADMIN,
    TelegramHarness,
    assert_telegram_html,
)

COOLDOWN = 61


@pytest.fixture
async def h(make_harness: MakeHarness) -> TelegramHarness:
    """Text messages are worth exactly 10; Mod (9) administers the Club chat."""
    return await make_harness(admins={CHAT_ID: {9}}, gamification=FIXED)


def kinds(h: TelegramHarness) -> list[str]:
    return [row[4] for row in h.transactions()]


def sent_to(h: TelegramHarness, chat_id: int) -> list[SendMessage]:
    return [m for m in h.session.sent if int(m.chat_id) == chat_id]


async def meet(h: TelegramHarness, *users: dict[str, Any], chat: dict[str, Any] = CHAT) -> None:
    """Each user writes one scoring message, so the bot knows them; the clock moves on."""
    for i, user in enumerate(users):
        await h.say(chat, user, SENTENCES[i % len(SENTENCES)])
    h.clock.advance(COOLDOWN)


async def reply_sent(h: TelegramHarness, user: dict[str, Any], text: str, **kw: Any) -> str:
    """Feed a message and return the one reply it caused."""
    before = len(h.texts())
    await h.say(kw.pop("chat", CHAT), user, text, **kw)
    new = h.texts()[before:]
    assert len(new) == 1, new
    return new[0]


# -- user commands ------------------------------------------------------------------------


async def test_points_reports_balance_rank_and_lifetime(h: TelegramHarness) -> None:
    await meet(h, ALICE, BOB)
    await h.say(CHAT, BOB, SENTENCES[5])
    assert await reply_sent(h, ALICE, "/points") == (
        "Alice: <b>10</b> points (rank #2), 10 earned in all.\n"
        "Level 0 (90 to level 1), streak 1 day (best 1)."
    )
    assert await reply_sent(h, BOB, "/points") == (
        "Bob: <b>20</b> points (rank #1), 20 earned in all.\n"
        "Level 0 (80 to level 1), streak 1 day (best 1)."
    )
    assert await reply_sent(h, CAROL, "/points") == (
        "Carol: <b>0</b> points (no rank yet), 0 earned in all.\n"
        "Level 0 (100 to level 1), streak 0 days (best 0)."
    )


async def test_points_reply_goes_to_the_asking_message(h: TelegramHarness) -> None:
    update = await h.say(CHAT, ALICE, "/points")
    assert update.message is not None
    (sent,) = h.session.sent
    assert int(sent.chat_id) == CHAT_ID
    assert sent.reply_parameters is not None
    assert sent.reply_parameters.message_id == update.message.message_id


async def test_top_periods_day_week_month_all_and_default_week(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification=FIXED)
    # One scorer per window: October (all), 5 Nov (month), Monday 23 Nov (week), today.
    for moment, user, bonus in (
        (datetime(2026, 10, 15, 12, tzinfo=UTC), ALICE, 40),
        (datetime(2026, 11, 5, 12, tzinfo=UTC), BOB, 30),
        (datetime(2026, 11, 23, 12, tzinfo=UTC), CAROL, 20),
        (datetime(2026, 11, 25, 12, tzinfo=UTC), DAVE, 10),
    ):
        h.clock.set(moment)
        await h.say(CHAT, user, SENTENCES[user["id"]])
        await h.services.engine.award(CHAT_ID, user["id"], bonus, key=f"bonus:{user['id']}")
    assert await reply_sent(h, DAVE, "/top day") == "<b>Top today</b>\n1. Dave: 20"
    week = "<b>Top this week</b>\n1. Carol: 30\n2. Dave: 20"
    assert await reply_sent(h, DAVE, "/top week") == week
    assert await reply_sent(h, DAVE, "/top") == week
    assert await reply_sent(h, DAVE, "/top MONTH") == (
        "<b>Top this month</b>\n1. Bob: 40\n2. Carol: 30\n3. Dave: 20"
    )
    assert await reply_sent(h, DAVE, "/top all") == (
        "<b>Top all time</b>\n1. Alice: 50\n2. Bob: 40\n3. Carol: 30\n4. Dave: 20"
    )


async def test_top_and_points_agree_on_tied_ranks(h: TelegramHarness) -> None:
    """Ties share the better rank (as /points says): /top must not rank a tie lower."""
    await meet(h, ALICE, BOB, CAROL)
    await h.services.engine.award(CHAT_ID, 1, 5, key="setup")
    assert (await reply_sent(h, CAROL, "/points")).startswith(
        "Carol: <b>10</b> points (rank #2), 10 earned in all.\n"
    )
    assert await reply_sent(h, CAROL, "/top") == (
        "<b>Top this week</b>\n1. Alice: 15\n2. Bob: 10\n2. Carol: 10"
    )


@pytest.mark.parametrize("arg", ["year", "weekly", "day week", "7", "<b>"])
async def test_top_refuses_an_unknown_period(h: TelegramHarness, arg: str) -> None:
    assert await reply_sent(h, ALICE, f"/top {arg}") == (
        "Use /top day, /top week, /top month or /top all."
    )


async def test_top_with_nobody_scored(h: TelegramHarness) -> None:
    assert await reply_sent(h, ALICE, "/top") == "<b>Top this week</b>\nNobody has points yet."


async def test_top_shows_the_callers_own_line_outside_the_top_ten(h: TelegramHarness) -> None:
    people = [UpdateFactory.user(100 + i, f"P{i}", f"p{i}") for i in range(1, 13)]
    await meet(h, *people)
    for i, person in enumerate(people[:11], 1):
        await h.services.engine.award(
            CHAT_ID, person["id"], 200 - i, key=f"setup:{i}", reason="setup"
        )
    text = await reply_sent(h, people[11], "/top all")
    lines = text.split("\n")
    assert lines[0] == "<b>Top all time</b>"
    assert lines[1:11] == [f"{i}. P{i}: {10 + 200 - i}" for i in range(1, 11)]
    assert lines[11:] == ["…", "12. P12: 10"]
    # Someone inside the top ten, or without points, gets no extra line.
    inside = await reply_sent(h, people[0], "/top all")
    assert "…" not in inside
    assert len(inside.split("\n")) == 11
    nobody = await reply_sent(h, MOD, "/top all")
    assert "…" not in nobody
    assert "Mod" not in nobody


async def test_history_lists_the_callers_changes_with_reasons(make_harness: MakeHarness) -> None:
    h = await make_harness(admin_ids=[9], gamification=FIXED)
    await meet(h, ALICE)
    await h.say(CHAT, MOD, "/award @alice 40 for the talk")
    text = await reply_sent(h, ALICE, "/history")
    lines = text.split("\n")
    assert lines[0] == "<b>Last 2 changes for Alice</b>"
    assert "<b>+40</b> admin “for the talk”" in lines[1]
    assert "<b>+10</b> activity “text message”" in lines[2]
    assert await reply_sent(h, BOB, "/history") == (
        "<b>Last 0 changes for Bob</b>\nNo transactions yet."
    )


async def test_help_for_members_has_no_admin_section(h: TelegramHarness) -> None:
    text = await reply_sent(h, ALICE, "/help")
    assert text.startswith("<b>How points work</b>")
    assert "/top [day|week|month|all]" in text
    assert "<b>Admins</b>" not in text
    assert "BotFather" not in text


async def test_help_for_admins_adds_admin_section_and_privacy_hint(h: TelegramHarness) -> None:
    text = await reply_sent(h, MOD, "/help")
    assert "<b>Admins</b>" in text
    assert "/award, /deduct &lt;target&gt; &lt;amount&gt;" in text
    assert "privacy mode" in text
    assert "@BotFather (/setprivacy)" in text
    # Commands alone are what a bot in privacy mode sees: still the hint.
    await h.say(CHAT, ALICE, "/points")
    assert "/setprivacy" in await reply_sent(h, MOD, "/help")
    # Once an ordinary message arrived here, the hint goes away (in this chat only).
    await h.say(CHAT, ALICE, SENTENCES[0])
    text = await reply_sent(h, MOD, "/help")
    assert "<b>Admins</b>" in text
    assert "/setprivacy" not in text
    await h.say(OTHER, MOD, "/help")
    assert "/setprivacy" not in h.last_text(OTHER_ID)  # Mod is no admin in Other
    h.session.admins[OTHER_ID] = {9}
    h.services.admin_cache.clear()
    assert "/setprivacy" in await reply_sent(h, MOD, "/help", chat=OTHER)


async def test_start_in_private_explains_the_bot(h: TelegramHarness) -> None:
    private = UpdateFactory.private(ALICE)
    text = await reply_sent(h, ALICE, "/start", chat=private)
    assert text.startswith("Hi! I keep score of activity in groups.")
    assert "<b>How points work</b>" in text
    assert int(h.session.sent[-1].chat_id) == ALICE["id"]


async def test_start_in_a_group_is_left_alone(h: TelegramHarness) -> None:
    await h.say(CHAT, ALICE, "/start")
    assert h.texts() == []
    assert h.tx_count() == 0


async def test_help_in_private_has_no_admin_section(h: TelegramHarness) -> None:
    text = await reply_sent(h, MOD, "/help", chat=UpdateFactory.private(MOD))
    assert text.startswith("<b>How points work</b>")
    assert "<b>Admins</b>" not in text
    assert not [c for c in h.session.calls if isinstance(c, GetChatMember)]


@pytest.mark.parametrize("command", ["/points", "/top", "/top all", "/history"])
async def test_group_commands_in_private_say_they_are_group_only(
    h: TelegramHarness, command: str
) -> None:
    assert await reply_sent(h, ALICE, command, chat=UpdateFactory.private(ALICE)) == GROUP_ONLY


@pytest.mark.parametrize("name", ["award", "deduct", "revert", "freeze", "unfreeze", "audit"])
async def test_admin_commands_in_private_point_to_the_group(
    make_harness: MakeHarness, name: str
) -> None:
    h = await make_harness(admin_ids=[9])
    text = await reply_sent(h, MOD, f"/{name} @alice 5", chat=UpdateFactory.private(MOD))
    assert text == f"Use /{name} in the group it is about."
    assert h.tx_count() == 0


async def test_the_bots_own_admins_can_check_the_whole_service_in_private(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(admin_ids=[9], gamification=FIXED)
    await meet(h, ALICE)
    private = UpdateFactory.private(MOD)
    assert (await reply_sent(h, MOD, "/integrity", chat=private)).startswith(
        "<pre>Ledger integrity: CLEAN"
    )
    assert (await reply_sent(h, MOD, "/gstats", chat=private)).startswith("<b>Points service</b>")


@pytest.mark.parametrize("name", ["integrity", "gstats"])
async def test_a_chats_own_admin_cannot_see_the_whole_service(
    h: TelegramHarness, name: str
) -> None:
    """/integrity and /gstats report on every chat: a chat's administrator is not enough."""
    await meet(h, ALICE)
    expected = f"/{name} covers every chat, so only the bot's own admins can use it."
    assert await reply_sent(h, MOD, f"/{name}") == expected
    assert await reply_sent(h, MOD, f"/{name}", chat=UpdateFactory.private(MOD)) == expected
    assert h.rows("SELECT COUNT(*) FROM checkpoints") == [(0,)]


# -- admin commands: success -------------------------------------------------------------


async def test_award_by_username(h: TelegramHarness) -> None:
    await meet(h, BOB)
    text = await reply_sent(h, MOD, "/award @bob 50 great job")
    tx_id = h.transactions()[-1][0]
    assert text == f"Bob +50 (#{tx_id}): great job. Balance 60."
    assert h.transactions()[-1][1:] == (CHAT_ID, 2, 50, "admin", 9, "great job", None)
    assert h.rows("SELECT chat_id, actor_id, action, target_id, detail FROM admin_actions") == [
        (CHAT_ID, 9, "award", 2, "50 great job")
    ]


async def test_award_by_username_is_case_insensitive(h: TelegramHarness) -> None:
    await meet(h, BOB)
    assert (await reply_sent(h, MOD, "/award @BoB 5")).startswith("Bob +5 ")


async def test_award_by_reply(h: TelegramHarness) -> None:
    update = await h.say(CHAT, BOB, SENTENCES[0])
    assert update.message is not None
    text = await reply_sent(h, MOD, "/award 30 helpful", reply_to=update.message.message_id)
    assert text.startswith("Bob +30 (#")
    assert text.endswith(": helpful. Balance 40.")


async def test_a_command_reply_with_a_thanks_word_is_only_the_command(
    h: TelegramHarness,
) -> None:
    """A command is never a thanks, whatever words it carries, ours or another bot's."""
    update = await h.say(CHAT, BOB, SENTENCES[0])
    assert update.message is not None
    replied = update.message.message_id
    text = await reply_sent(h, MOD, "/award 30 thanks for the help", reply_to=replied)
    assert text.endswith(": thanks for the help. Balance 40.")
    await h.say(CHAT, ALICE, "/poll thanks", reply_to=replied)
    assert thanks_rows(h) == []
    assert await h.balance(CHAT_ID, 2) == 40


async def test_award_by_reply_without_reason(h: TelegramHarness) -> None:
    update = await h.say(CHAT, BOB, SENTENCES[0])
    assert update.message is not None
    text = await reply_sent(h, MOD, "/award 7", reply_to=update.message.message_id)
    assert text.endswith("). Balance 17.")


async def test_award_by_numeric_id(h: TelegramHarness) -> None:
    await meet(h, BOB)
    assert (await reply_sent(h, MOD, "/award 2 25")).startswith("Bob +25 (#")
    assert await h.balance(CHAT_ID, 2) == 35


async def test_award_with_reply_and_two_numbers_targets_the_id(h: TelegramHarness) -> None:
    await meet(h, ALICE)
    update = await h.say(CHAT, BOB, SENTENCES[1])
    assert update.message is not None
    text = await reply_sent(h, MOD, "/award 1 25", reply_to=update.message.message_id)
    assert text.startswith("Alice +25 ")
    assert await h.balance(CHAT_ID, 1) == 35
    assert await h.balance(CHAT_ID, 2) == 10


async def test_deduct_within_the_balance_needs_no_force(h: TelegramHarness) -> None:
    await meet(h, BOB)
    text = await reply_sent(h, MOD, "/deduct @bob 10 spam")
    tx_id = h.transactions()[-1][0]
    assert text == f"Bob -10 (#{tx_id}): spam. Balance 0."
    assert await h.balance(CHAT_ID, 2) == 0


async def test_deduct_past_the_balance_is_refused_with_the_way_to_force_it(
    h: TelegramHarness,
) -> None:
    await meet(h, BOB)
    before = h.transactions()
    text = await reply_sent(h, MOD, "/deduct @bob 110 spam")
    assert text == (
        "Not deducted: Bob has 10, and taking 110 would leave -100, below zero."
        " To deduct anyway: /deduct @bob 110 spam --force"
    )
    assert h.transactions() == before
    assert await h.balance(CHAT_ID, 2) == 10
    assert_telegram_html(text)

    text = await reply_sent(h, MOD, "/deduct @bob 110 spam --force")
    tx_id = h.transactions()[-1][0]
    assert text == f"Bob -110 (#{tx_id}): spam. Balance -100, below zero."
    assert h.transactions()[-1][3:5] == (-110, "admin")
    assert await h.balance(CHAT_ID, 2) == -100
    assert (await h.services.engine.check()).ok


async def test_deduct_by_reply_refused_then_forced_anywhere_in_the_command(
    h: TelegramHarness,
) -> None:
    await meet(h, BOB)
    target = await bob_says(h, SENTENCES[2])
    text = await reply_sent(h, MOD, "/deduct 25", reply_to=target)
    assert text.endswith("To deduct anyway: /deduct 25 --force")
    assert await h.balance(CHAT_ID, 2) == 20
    text = await reply_sent(h, MOD, "/deduct --FORCE 25 flood", reply_to=target)
    assert text.endswith(": flood. Balance -5, below zero.")
    assert await h.balance(CHAT_ID, 2) == -5


async def test_force_is_refused_on_award(h: TelegramHarness) -> None:
    await meet(h, BOB)
    before = h.transactions()
    text = await reply_sent(h, MOD, "/award @bob 5 --force")
    assert text == "--force is for /deduct only: an award never overdraws."
    assert h.transactions() == before


async def test_with_allow_negative_a_deduction_goes_below_zero_and_says_so(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(
        admins={CHAT_ID: {9}}, gamification={**FIXED, "ledger": {"allow_negative": True}}
    )
    await meet(h, BOB)
    text = await reply_sent(h, MOD, "/deduct @bob 25 spam")
    tx_id = h.transactions()[-1][0]
    assert text == f"Bob -25 (#{tx_id}): spam. Balance -15, below zero."
    assert await h.balance(CHAT_ID, 2) == -15


async def test_revert_undoes_a_transaction_and_refuses_a_second_time(h: TelegramHarness) -> None:
    await meet(h, BOB)
    await h.say(CHAT, MOD, "/award @bob 50")
    award_id = h.transactions()[-1][0]
    text = await reply_sent(h, MOD, f"/revert {award_id} mistake")
    revert_id = h.transactions()[-1][0]
    assert text == f"Reverted #{award_id} with #{revert_id}: Bob -50. Balance 10."
    assert h.transactions()[-1][3:] == (-50, "revert", 9, "mistake", award_id)
    again = await reply_sent(h, MOD, f"/revert #{award_id}")
    assert again == f"Transaction #{award_id} was already reverted by #{revert_id}."
    of_revert = await reply_sent(h, MOD, f"/revert {revert_id}")
    assert of_revert == f"Transaction #{revert_id} is itself a revert and cannot be reverted."
    assert h.tx_count() == 3
    assert await h.balance(CHAT_ID, 2) == 10


async def test_revert_of_unknown_or_another_chats_transaction(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}, OTHER_ID: {9}}, gamification=FIXED)
    await meet(h, BOB, chat=OTHER)
    (elsewhere,) = h.transactions()
    assert await reply_sent(h, MOD, f"/revert {elsewhere[0]}") == (
        f"There is no transaction #{elsewhere[0]} here."
    )
    assert await reply_sent(h, MOD, "/revert 999") == "There is no transaction #999 here."
    assert h.tx_count() == 1
    assert await h.balance(OTHER_ID, 2) == 10


async def test_freeze_and_unfreeze(h: TelegramHarness) -> None:
    await meet(h, BOB)
    assert await reply_sent(h, MOD, "/freeze @bob farming") == (
        "Bob is frozen here and earns nothing until /unfreeze."
    )
    assert h.services.moderation.is_frozen(CHAT_ID, 2)
    assert h.rows("SELECT chat_id, user_id, frozen_by, reason FROM freezes") == [
        (CHAT_ID, 2, 9, "farming")
    ]
    assert await reply_sent(h, MOD, "/freeze @bob") == "Bob is already frozen here."
    await h.say(CHAT, BOB, SENTENCES[3])
    assert await h.balance(CHAT_ID, 2) == 10
    assert await reply_sent(h, MOD, "/unfreeze @bob") == "Bob can earn points here again."
    assert h.rows("SELECT * FROM freezes") == []
    assert await reply_sent(h, MOD, "/unfreeze @bob") == "Bob was not frozen here."
    h.clock.advance(COOLDOWN)
    await h.say(CHAT, BOB, SENTENCES[4])
    assert await h.balance(CHAT_ID, 2) == 20
    actions = [row[0] for row in h.rows("SELECT action FROM admin_actions ORDER BY id")]
    assert actions == ["freeze", "unfreeze"]


async def test_audit_shows_actors_and_frozen_state(h: TelegramHarness) -> None:
    await meet(h, ALICE, BOB)
    await h.say(CHAT, MOD, "/award @bob 50 talk")
    await h.say(CHAT, MOD, "/freeze @bob")
    text = await reply_sent(h, MOD, "/audit @bob")
    lines = text.split("\n")
    assert lines[0] == "<b>Audit of Bob (frozen)</b>"
    assert "<b>+50</b> admin “talk” by Mod" in lines[1]
    assert "<b>+10</b> activity “text message” by system" in lines[2]
    assert await reply_sent(h, MOD, "/audit @alice") != text


async def test_integrity_reports_a_clean_ledger(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, admin_ids=[9], gamification=FIXED)
    await meet(h, ALICE, BOB)
    text = await reply_sent(h, MOD, "/integrity")
    assert text.startswith("<pre>Ledger integrity: CLEAN")
    assert "Checked 2 accounts and 2 transactions" in text
    assert text.endswith("</pre>")


async def test_gstats_counts_awards_and_refusals(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, admin_ids=[9], gamification=FIXED)
    await meet(h, ALICE)
    await h.say(CHAT, ALICE, "ok")
    await h.say(CHAT, BOB, "hi")  # an answer to Alice: short, so worth half
    text = await reply_sent(h, MOD, "/gstats")
    assert text.startswith("<b>Points service</b>\n")
    assert "Awards: 2 (15 points), repeats ignored: 0" in text
    assert "Refused: too_short 1" in text


# -- admin commands: refusals ------------------------------------------------------------

REFUSALS = [
    ("/award", "Tell me who: reply to their message, or /award @username 50 reason."),
    ("/award @bob", "Tell me how many points: /award @username 50 reason."),
    ("/award @never_seen 5", "I don't know @never_seen yet: they need to write here first."),
    ("/award 424242 5", "I have never seen user 424242."),
    ("/award @bob 5.5", "'5.5' is not a whole number of points."),
    ("/award @bob abc", "'abc' is not a whole number of points."),
    ("/award @bob 0", "The amount must be above zero."),
    ("/award @bob -5", "The amount must be above zero."),
    ("/deduct @bob -5", "The amount must be above zero."),
    ("/award @bob 10001", "That is over the cap: one admin change is at most 10,000."),
    ("/deduct @bob 10001", "That is over the cap: one admin change is at most 10,000."),
    ("/award @bob 99999999999999999999999", "That amount is out of range; the most is 10,000."),
    ("/award @bob 1e9", "'1e9' is not a whole number of points."),
    ("/award @b 5", "'@b' is not a valid @username."),
    ("/award bob 5", "'bob' is not a user: use a reply, an @username or a numeric id."),
    ("/award -2 5", "'-2' is not a user: use a reply, an @username or a numeric id."),
    ("/award @helper_bot 5", "Bots don't collect points."),
    ("/award @bob 5 " + "x" * 201, "The reason is too long: at most 200 characters."),
    ("/revert", "Tell me which transaction: /revert 123 reason."),
    ("/revert abc", "'abc' is not a transaction number."),
    ("/revert 0", "'0' is not a transaction number."),
    ("/revert ²", "'²' is not a transaction number."),
    ("/revert 999", "There is no transaction #999 here."),
    ("/freeze", "Tell me who: reply to their message, or /freeze @username."),
    ("/freeze @never_seen", "I don't know @never_seen yet: they need to write here first."),
    ("/unfreeze 77", "I have never seen user 77."),
    ("/audit @never_seen", "I don't know @never_seen yet: they need to write here first."),
]


@pytest.mark.parametrize(("command", "sentence"), REFUSALS)
async def test_admin_refusals_are_one_sentence_and_write_nothing(
    h: TelegramHarness, command: str, sentence: str
) -> None:
    await meet(h, BOB, HELPER_BOT)
    before = h.transactions()
    assert await reply_sent(h, MOD, command) == sentence
    assert h.transactions() == before
    assert h.rows("SELECT * FROM admin_actions") == []
    assert h.rows("SELECT * FROM freezes") == []


async def test_max_grant_comes_from_the_config(make_harness: MakeHarness) -> None:
    h = await make_harness(
        admins={CHAT_ID: {9}}, gamification={**FIXED, "admin": {"max_grant": 100}}
    )
    await meet(h, BOB)
    assert await reply_sent(h, MOD, "/award @bob 101") == (
        "That is over the cap: one admin change is at most 100."
    )
    assert (await reply_sent(h, MOD, "/award @bob 100")).startswith("Bob +100 ")


async def test_award_by_reply_to_a_bot_or_channel_post_is_refused(h: TelegramHarness) -> None:
    bot_post = await h.say(CHAT, HELPER_BOT, "automated notice")
    channel_post = await h.say(CHAT, CHANNEL_BOT, "news", sender_chat=CHANNEL)
    assert bot_post.message is not None
    assert channel_post.message is not None
    assert await reply_sent(h, MOD, "/award 5", reply_to=bot_post.message.message_id) == (
        "Bots don't collect points."
    )
    assert await reply_sent(h, MOD, "/award 5", reply_to=channel_post.message.message_id) == (
        "That message has no person to act on."
    )
    assert h.tx_count() == 0


@pytest.mark.parametrize(
    "command", ["/award @bob 5", "/deduct @bob 5", "/revert 1", "/freeze @bob", "/audit @bob"]
)
async def test_non_admins_are_refused(h: TelegramHarness, command: str) -> None:
    await meet(h, BOB)
    name = command.split()[0][1:]
    assert await reply_sent(h, ALICE, command) == f"Only admins of this chat can use /{name}."
    assert h.tx_count() == 1
    assert h.rows("SELECT * FROM freezes") == []


async def test_anonymous_admin_is_refused(make_harness: MakeHarness) -> None:
    # Even listed as an administrator, "Group" cannot be told apart from any other admin.
    h = await make_harness(admins={CHAT_ID: {9, ANONYMOUS_ADMIN["id"]}}, gamification=FIXED)
    await meet(h, BOB)
    text = await reply_sent(h, ANONYMOUS_ADMIN, "/award @bob 5", sender_chat=CHAT)
    assert text == (
        "I can't tell who you are: admin commands need you to post as yourself,"
        " not anonymously or as a channel."
    )
    assert h.tx_count() == 1


async def test_forwarded_admin_command_is_refused(h: TelegramHarness) -> None:
    await meet(h, BOB)
    origin = {"type": "user", "date": 1_700_000_000, "sender_user": MOD}
    text = await reply_sent(h, MOD, "/award @bob 5", forward_origin=origin)
    assert text == "Forwarded commands are not accepted."
    assert h.tx_count() == 1


async def test_edited_admin_command_does_nothing(h: TelegramHarness) -> None:
    await meet(h, BOB)
    h.session.clear()
    await h.say(CHAT, MOD, "/award @bob 5", edited=True)
    assert h.session.calls == []
    assert h.tx_count() == 1
    assert h.rows("SELECT * FROM admin_actions") == []


async def test_chat_admin_cannot_act_in_another_chat(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, gamification=FIXED)
    await meet(h, BOB, chat=OTHER)
    assert await reply_sent(h, MOD, "/award @bob 5", chat=OTHER) == (
        "Only admins of this chat can use /award."
    )
    assert (await reply_sent(h, MOD, "/award @bob 5")).startswith("Bob +5 ")
    assert await h.balance(OTHER_ID, 2) == 10
    assert await h.balance(CHAT_ID, 2) == 5


async def test_configured_admin_acts_everywhere_without_asking_telegram(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(admin_ids=[42], gamification=FIXED)
    boss = UpdateFactory.user(42, "Boss", "boss")
    await meet(h, BOB)
    await meet(h, BOB, chat=OTHER)
    assert (await reply_sent(h, boss, "/award @bob 5")).startswith("Bob +5 ")
    assert (await reply_sent(h, boss, "/deduct @bob 3", chat=OTHER)).startswith("Bob -3 ")
    assert not [c for c in h.session.calls if isinstance(c, GetChatMember)]
    assert await h.balance(CHAT_ID, 2) == 15
    assert await h.balance(OTHER_ID, 2) == 7


async def test_admin_action_is_idempotent_and_logged_once(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, admin_log_chat_id=LOG_ID, gamification=FIXED)
    await meet(h, BOB)
    award = h.factory.message(CHAT, MOD, "/award @bob 50 great talk")
    await h.feed(award, award)
    assert h.tx_count() == 2
    assert await h.balance(CHAT_ID, 2) == 60
    tx_id = h.transactions()[-1][0]
    assert h.texts(LOG_ID) == [f"[Club] Mod award: Bob +50 (#{tx_id}): great talk. Balance 60."]
    assert h.texts(CHAT_ID).count(f"Bob +50 (#{tx_id}): great talk. Balance 60.") == 2
    assert len(h.rows("SELECT * FROM admin_actions")) == 1

    revert = h.factory.message(CHAT, MOD, f"/revert {tx_id} oops")
    await h.feed(revert, revert)
    assert h.tx_count() == 3
    assert await h.balance(CHAT_ID, 2) == 10
    assert len(h.texts(LOG_ID)) == 2
    assert h.texts(LOG_ID)[-1].startswith(f"[Club] Mod revert: Reverted #{tx_id} with #")

    freeze = h.factory.message(CHAT, MOD, "/freeze @bob spam")
    await h.feed(freeze, freeze)
    assert len(h.texts(LOG_ID)) == 3
    assert h.texts(LOG_ID)[-1] == (
        "[Club] Mod freeze: Bob is frozen here and earns nothing until /unfreeze. spam"
    )
    assert len(h.rows("SELECT * FROM admin_actions")) == 3


async def test_refused_admin_command_is_not_logged(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, admin_log_chat_id=LOG_ID, gamification=FIXED)
    await meet(h, BOB)
    await h.say(CHAT, MOD, "/award @bob 5.5")
    await h.say(CHAT, ALICE, "/award @bob 5")
    assert h.texts(LOG_ID) == []


# -- what never scores -------------------------------------------------------------------

IGNORED = UpdateFactory.group(-300, "Ignored")
FORWARD = {"type": "hidden_user", "date": 1_700_000_000, "sender_user_name": "Someone"}

NEVER_SCORED = [
    pytest.param(CHAT, HELPER_BOT, SENTENCES[0], {}, id="bot"),
    pytest.param(CHAT, ALICE, SENTENCES[0], {"edited": True}, id="edited"),
    pytest.param(CHAT, ALICE, None, {"content": {"new_chat_members": [BOB]}}, id="joined"),
    pytest.param(CHAT, ALICE, None, {"content": {"left_chat_member": BOB}}, id="left"),
    pytest.param(
        CHAT,
        ALICE,
        None,
        {"content": {"forum_topic_created": {"name": "Ideas", "icon_color": 7322096}}},
        id="topic-created",
    ),
    pytest.param(
        CHAT,
        ALICE,
        None,
        {"content": {"pinned_message": {"message_id": 1, "date": 0, "chat": CHAT}}},
        id="pinned",
    ),
    pytest.param(CHAT, CHANNEL_BOT, SENTENCES[0], {"sender_chat": CHANNEL}, id="channel"),
    pytest.param(
        CHAT,
        CHANNEL_BOT,
        SENTENCES[0],
        {"sender_chat": CHANNEL, "is_automatic_forward": True},
        id="automatic-forward",
    ),
    pytest.param(CHAT, ANONYMOUS_ADMIN, SENTENCES[0], {"sender_chat": CHAT}, id="anonymous"),
    pytest.param(CHAT, ALICE, SENTENCES[0], {"forward_origin": FORWARD}, id="forwarded"),
    pytest.param(CHAT, ALICE, SENTENCES[0], {"via_bot": HELPER_BOT}, id="via-bot"),
    pytest.param(CHAT, ALICE, "/whatever this is a long command text", {}, id="command"),
    pytest.param(CHAT, ALICE, "/points", {}, id="own-command"),
    pytest.param(IGNORED, ALICE, SENTENCES[0], {}, id="ignored-chat"),
    pytest.param(UpdateFactory.private(ALICE), ALICE, SENTENCES[0], {}, id="private"),
    pytest.param(CHAT, None, SENTENCES[0], {}, id="no-sender"),
]


@pytest.mark.parametrize(("chat", "user", "text", "extra"), NEVER_SCORED)
async def test_never_scored(
    make_harness: MakeHarness,
    chat: dict[str, Any],
    user: dict[str, Any] | None,
    text: str | None,
    extra: dict[str, Any],
) -> None:
    h = await make_harness(
        gamification={"activity": {"points": {"text": 10}, "ignored_chats": [-300]}}
    )
    await h.say(chat, user, text, **extra)
    assert h.tx_count() == 0
    assert sum(h.services.stats.messages_seen.values()) == 0


async def test_frozen_user_never_scores(h: TelegramHarness) -> None:
    await h.services.moderation.freeze(CHAT_ID, 1, 9, "test")
    await h.say(CHAT, ALICE, SENTENCES[0])
    assert h.tx_count() == 0
    assert h.services.stats.refusals["frozen"] == 1


async def test_forwarded_messages_score_when_configured(make_harness: MakeHarness) -> None:
    h = await make_harness(
        gamification={"activity": {"points": {"text": 10}, "score_forwarded": True}}
    )
    await h.say(CHAT, ALICE, SENTENCES[0], forward_origin=FORWARD)
    assert await h.balance(CHAT_ID, 1) == 10


async def test_disabled_activity_scores_no_messages(make_harness: MakeHarness) -> None:
    """With activity off (thanks still on), ordinary messages earn nothing; thanks still do."""
    h = await make_harness(gamification={"activity": {"enabled": False, "points": {"text": 10}}})
    first = await h.say(CHAT, BOB, SENTENCES[0])
    assert first.message is not None
    await h.say(CHAT, ALICE, "thank you", reply_to=first.message.message_id)
    assert kinds(h) == ["thanks"]
    assert await h.balance(CHAT_ID, 2) == 5


# -- anti-abuse through the dispatcher ---------------------------------------------------


async def test_cooldown(h: TelegramHarness) -> None:
    """A token bucket: three quick messages score, the fourth waits for a refill."""
    for sentence in SENTENCES[:4]:
        await h.say(CHAT, ALICE, sentence)
        h.clock.advance(10)
    assert h.services.stats.refusals["cooldown"] == 1
    assert await h.balance(CHAT_ID, 1) == 30
    h.clock.advance(31)  # 71 s after the first: one token back
    await h.say(CHAT, ALICE, SENTENCES[4])
    assert await h.balance(CHAT_ID, 1) == 40
    await h.say(CHAT, ALICE, SENTENCES[5])
    assert h.services.stats.refusals["cooldown"] == 2


@pytest.mark.parametrize("text", ["ok", "!!!!!!!!!!!", "a a a a a a", "o\u200b\u200bk", " . "])
async def test_too_short(h: TelegramHarness, text: str) -> None:
    await h.say(CHAT, ALICE, text)
    assert h.tx_count() == 0
    assert h.services.stats.refusals["too_short"] == 1


@pytest.mark.parametrize(
    "again",
    [
        SENTENCES[1],
        SENTENCES[1].upper(),
        "Has anyone tried the new release, yet???",
        "has anyone tried the new release yet? ",
    ],
)
async def test_repeat_and_near_repeat(h: TelegramHarness, again: str) -> None:
    await h.say(CHAT, ALICE, SENTENCES[1])
    h.clock.advance(COOLDOWN)
    await h.say(CHAT, ALICE, again)
    assert h.services.stats.refusals["repeat"] == 1
    assert await h.balance(CHAT_ID, 1) == 10
    # Outside the window (a day by default) the same text scores again.
    h.clock.advance(h.services.config.anti_abuse.repeat_window_seconds + 1)
    await h.say(CHAT, ALICE, again)
    assert await h.balance(CHAT_ID, 1) == 20


async def test_daily_cap_clips_then_refuses_and_survives_a_restart(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification={**FIXED, "anti_abuse": {"daily_cap": 25}})
    for sentence in SENTENCES[:3]:
        await h.say(CHAT, ALICE, sentence)
        h.clock.advance(COOLDOWN)
    assert [row[3] for row in h.transactions()] == [10, 10, 5]
    await h.say(CHAT, ALICE, SENTENCES[3])
    assert h.services.stats.refusals["daily_cap"] == 1
    await h.restart()
    h.clock.advance(COOLDOWN)
    await h.say(CHAT, ALICE, SENTENCES[4])
    assert h.services.stats.refusals["daily_cap"] == 1
    assert await h.balance(CHAT_ID, 1) == 25
    h.clock.set(datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC))
    await h.say(CHAT, ALICE, SENTENCES[5])
    assert await h.balance(CHAT_ID, 1) == 35


async def test_burst_is_refused_and_flagged(h: TelegramHarness) -> None:
    for sentence in SENTENCES[:9]:
        await h.say(CHAT, ALICE, sentence)
        h.clock.advance(1)
    refusals = h.services.stats.refusals
    assert refusals["burst"] == 1
    assert refusals["cooldown"] == 5  # three tokens, then one a minute
    assert h.rows("SELECT chat_id, user_id, reason FROM suspicions") == [(CHAT_ID, 1, "burst")]
    assert not h.services.moderation.is_frozen(CHAT_ID, 1)


async def test_burst_freezes_with_auto_freeze_and_the_freeze_survives_restart(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification={**FIXED, "anti_abuse": {"auto_freeze": True}})
    for sentence in SENTENCES[:9]:
        await h.say(CHAT, ALICE, sentence)
        h.clock.advance(1)
    assert h.services.moderation.is_frozen(CHAT_ID, 1)
    assert h.rows("SELECT user_id, frozen_by, reason FROM freezes") == [
        (1, None, "automatic: burst")
    ]
    await h.restart()
    assert h.services.moderation.is_frozen(CHAT_ID, 1)
    h.clock.advance(3600)
    await h.say(CHAT, ALICE, SENTENCES[10])
    assert h.services.stats.refusals["frozen"] == 1
    assert await h.balance(CHAT_ID, 1) == 30  # the bucket's three, before the burst


async def test_admin_freeze_survives_restart(h: TelegramHarness) -> None:
    await meet(h, BOB)
    await h.say(CHAT, MOD, "/freeze @bob")
    await h.restart()
    await h.say(CHAT, BOB, SENTENCES[6])
    assert h.services.stats.refusals["frozen"] == 1
    assert await h.balance(CHAT_ID, 2) == 10
    assert await reply_sent(h, MOD, "/unfreeze @bob") == "Bob can earn points here again."


# -- thanks -------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["+", "+1", "thanks", "thank you", "спасибо", "Thanks!"])
async def test_thanks_gives_points_to_the_replied_author(h: TelegramHarness, trigger: str) -> None:
    target = await bob_says(h)
    text = await reply_sent(h, ALICE, trigger, reply_to=target)
    assert text == "Bob +5 (thanks from Alice), now 15."
    assert [row[1:7] for row in thanks_rows(h)] == [(CHAT_ID, 2, 5, "thanks", 1, "thanks")]


@pytest.mark.parametrize(
    "text",
    [
        "+5 to that idea",
        "I disagree",
        "no thanks to you at all, really, not at all, never ever again",
    ],
)
async def test_a_reply_that_is_not_thanks(h: TelegramHarness, text: str) -> None:
    target = await bob_says(h)
    await h.say(CHAT, ALICE, text, reply_to=target)
    assert thanks_rows(h) == []


async def test_self_thanks_is_refused(h: TelegramHarness) -> None:
    update = await h.say(CHAT, ALICE, SENTENCES[0])
    assert update.message is not None
    await h.say(CHAT, ALICE, "+", reply_to=update.message.message_id)
    assert thanks_rows(h) == []
    assert h.services.stats.refusals["self_thanks"] == 1


async def test_thanking_a_bot_is_refused(h: TelegramHarness) -> None:
    update = await h.say(CHAT, HELPER_BOT, "automated notice")
    assert update.message is not None
    await h.say(CHAT, ALICE, "thanks", reply_to=update.message.message_id)
    assert thanks_rows(h) == []
    assert h.services.stats.refusals["bot_thanks"] == 1


async def test_thanks_pair_cooldown(h: TelegramHarness) -> None:
    first = await bob_says(h, SENTENCES[0])
    h.clock.advance(COOLDOWN)
    second = await bob_says(h, SENTENCES[1])
    await h.say(CHAT, ALICE, "+", reply_to=first)
    await h.say(CHAT, ALICE, "+", reply_to=second)
    assert len(thanks_rows(h)) == 1
    assert h.services.stats.refusals["thanks_cooldown"] == 1
    # Carol is another pair; Alice may thank Bob again an hour later.
    await h.say(CHAT, CAROL, "+", reply_to=second)
    h.clock.advance(3601)
    await h.say(CHAT, ALICE, "+", reply_to=second)
    assert [row[5] for row in thanks_rows(h)] == [1, 3, 1]


async def test_thanks_daily_limit(make_harness: MakeHarness) -> None:
    h = await make_harness(
        gamification={**FIXED, "thanks": {"daily_limit": 2, "pair_cooldown_seconds": 0}}
    )
    targets = []
    for user in (BOB, CAROL, DAVE):
        update = await h.say(CHAT, user, SENTENCES[user["id"]])
        assert update.message is not None
        targets.append(update.message.message_id)
    for target in targets:
        await h.say(CHAT, ALICE, "+", reply_to=target)
    assert [row[2] for row in thanks_rows(h)] == [2, 3]
    assert h.services.stats.refusals["thanks_daily_limit"] == 1
    h.clock.set(datetime(2026, 11, 26, 1, tzinfo=UTC))
    await h.say(CHAT, ALICE, "+", reply_to=targets[2])
    assert [row[2] for row in thanks_rows(h)] == [2, 3, 4]


async def test_thanks_for_an_old_message_is_refused(h: TelegramHarness) -> None:
    old = int((h.clock.now() - timedelta(hours=49)).timestamp())
    by_date = await bob_says(h, SENTENCES[0], date=old)
    await h.say(CHAT, ALICE, "thanks", reply_to=by_date)
    assert thanks_rows(h) == []
    by_clock = await bob_says(h, SENTENCES[1])
    h.clock.advance(timedelta(hours=48, seconds=1))
    await h.say(CHAT, CAROL, "thanks", reply_to=by_clock)
    assert thanks_rows(h) == []
    assert h.services.stats.refusals["thanks_too_old"] == 2
    fresh = await bob_says(h, SENTENCES[2])
    await h.say(CHAT, CAROL, "thanks", reply_to=fresh)
    assert len(thanks_rows(h)) == 1


async def test_forum_topic_root_is_not_a_reply(h: TelegramHarness) -> None:
    forum = {**CHAT, "is_forum": True}
    created = {"forum_topic_created": {"name": "Ideas", "icon_color": 7322096}}
    root_update = await h.say(forum, BOB, content=created)
    assert root_update.message is not None
    root = root_update.message.message_id
    in_topic = {"message_thread_id": root, "is_topic_message": True}
    await h.say(forum, ALICE, "thanks", reply_to=root, **in_topic)
    assert thanks_rows(h) == []
    # A real reply inside the topic is a thanks.
    post = await bob_says(h, SENTENCES[1], chat=forum, reply_to=root, **in_topic)
    await h.say(forum, CAROL, "thanks", reply_to=post, **in_topic)
    assert [row[2] for row in thanks_rows(h)] == [2]


async def test_admin_command_in_a_topic_does_not_target_the_topic_root(
    h: TelegramHarness,
) -> None:
    forum = {**CHAT, "is_forum": True}
    created = {"forum_topic_created": {"name": "Ideas", "icon_color": 7322096}}
    root_update = await h.say(forum, BOB, content=created)
    assert root_update.message is not None
    root = root_update.message.message_id
    in_topic = {"message_thread_id": root, "is_topic_message": True}
    text = await reply_sent(h, MOD, "/award 5", chat=forum, reply_to=root, **in_topic)
    assert text == "Tell me how many points: /award @username 50 reason."
    assert h.tx_count() == 0


async def test_thanks_in_an_ignored_chat_gives_nothing(make_harness: MakeHarness) -> None:
    h = await make_harness(
        gamification={"activity": {"points": {"text": 10}, "ignored_chats": [-300]}}
    )
    target = await bob_says(h, chat=IGNORED)
    await h.say(IGNORED, ALICE, "thanks", reply_to=target)
    assert h.tx_count() == 0


async def test_frozen_user_earns_nothing_from_thanks(h: TelegramHarness) -> None:
    """The freeze reply promises "earns nothing until /unfreeze"; thanks are earnings too."""
    target = await bob_says(h)
    await h.say(CHAT, MOD, "/freeze @bob")
    await h.say(CHAT, ALICE, "thanks", reply_to=target)
    assert thanks_rows(h) == []
    assert await h.balance(CHAT_ID, 2) == 10


async def test_frozen_user_cannot_give_thanks(h: TelegramHarness) -> None:
    target = await bob_says(h)
    await h.services.moderation.freeze(CHAT_ID, 1, 9, "test")
    await h.say(CHAT, ALICE, "thanks", reply_to=target)
    assert thanks_rows(h) == []
    assert h.services.stats.refusals["frozen"] >= 1


# -- a router after the plugin sees everything -------------------------------------------


async def test_a_router_after_the_plugin_sees_every_message_the_plugin_does_not_answer(
    h: TelegramHarness,
) -> None:
    seen: list[int] = []
    later = Router(name="later")

    @later.message()
    async def catch_all(message: Message) -> None:
        seen.append(message.message_id)

    h.app.dispatcher.include_router(later)
    await meet(h, BOB)
    target = await bob_says(h, SENTENCES[2])
    fed: list[int] = []
    cases: list[tuple[dict[str, Any], dict[str, Any], str | None, dict[str, Any]]] = [
        (CHAT, ALICE, SENTENCES[0], {}),  # scored
        (CHAT, ALICE, SENTENCES[1], {}),  # refused: cooldown
        (CHAT, CAROL, "ok", {}),  # refused: too short
        (CHAT, CAROL, "thanks", {"reply_to": target}),  # a thanks, answered
        (CHAT, HELPER_BOT, SENTENCES[0], {}),
        (CHAT, CHANNEL_BOT, SENTENCES[0], {"sender_chat": CHANNEL}),
        (CHAT, ALICE, None, {"content": {"new_chat_members": [DAVE]}}),
        (CHAT, ALICE, None, {"content": PHOTO}),
        (CHAT, ALICE, "/whatever", {}),
        (CHAT, ALICE, "/points@other_bot", {}),
        (CHAT, ALICE, "/start", {}),
        (UpdateFactory.private(ALICE), ALICE, "hello bot", {}),
        (UpdateFactory.private(ALICE), ALICE, "/whatever", {}),
    ]
    for chat, user, text, extra in cases:
        update = await h.say(chat, user, text, **extra)
        assert update.message is not None
        fed.append(update.message.message_id)
    assert seen[-len(fed) :] == fed
    assert "Carol +5" not in " ".join(h.texts())
    assert "Bob +5 (thanks from Carol)" in " ".join(h.texts())
    # The plugin's own commands are answered, and only the plugin answers them.
    before = len(seen)
    await h.say(CHAT, ALICE, "/points@points_bot")
    assert len(seen) == before
    assert h.last_text().startswith("Alice: ")


# -- redelivery ---------------------------------------------------------------------------


async def test_a_redelivered_message_changes_nothing(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}})
    first = h.factory.message(CHAT, BOB, SENTENCES[0])
    await h.feed(first)
    balance, count = await h.balance(CHAT_ID, 2), h.tx_count()
    h.clock.advance(COOLDOWN)
    await h.feed(first)
    assert (await h.balance(CHAT_ID, 2), h.tx_count()) == (balance, count)
    assert first.message is not None
    thanks = h.factory.message(CHAT, ALICE, "+", reply_to=first.message.message_id)
    await h.feed(thanks, thanks)
    assert h.texts().count(f"Bob +5 (thanks from Alice), now {balance + 5}.") == 1
    assert await h.balance(CHAT_ID, 2) == balance + 5
    assert h.tx_count() == count + 1


async def test_redeliveries_do_not_count_as_a_burst(make_harness: MakeHarness) -> None:
    """Five messages in ten seconds, each delivered twice, is five messages, not ten."""
    h = await make_harness(gamification={**FIXED, "anti_abuse": {"auto_freeze": True}})
    for sentence in SENTENCES[:5]:
        update = h.factory.message(CHAT, ALICE, sentence)
        await h.feed(update, update)
        h.clock.advance(1)
    assert h.services.stats.refusals["burst"] == 0
    assert not h.services.moderation.is_frozen(CHAT_ID, 1)
    assert h.rows("SELECT * FROM suspicions") == []


# -- HTML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["<b>x", "x</b>", "<b>x</i>", "a & b", "<script>", "a > b", "<b>x</b> &amp"]
)
def test_the_html_check_rejects_what_telegram_rejects(text: str) -> None:
    with pytest.raises(AssertionError):
        assert_telegram_html(text)


def test_the_html_check_accepts_escaped_text_and_telegram_tags() -> None:
    assert_telegram_html("<b>a &lt;b&gt; &amp; &quot;</b>\n<pre>x</pre> <i>“q”</i> &#8212;")


async def test_names_and_reasons_are_escaped_in_every_reply(make_harness: MakeHarness) -> None:
    h = await make_harness(admins={CHAT_ID: {9}}, admin_log_chat_id=LOG_ID, gamification=FIXED)
    evil = UpdateFactory.user(7, "<b>x</b> & Co", "evil")
    evil_mod = UpdateFactory.user(8, "<i>Mod</i>", "evilmod")
    h.session.admins[CHAT_ID].add(8)
    target = await h.say(CHAT, evil, SENTENCES[0])
    assert target.message is not None
    await h.say(CHAT, ALICE, "thanks", reply_to=target.message.message_id)
    await h.say(CHAT, evil_mod, "/award @evil 5 <i>great</i> & more")
    for command in ("/points", "/top", "/history"):
        await h.say(CHAT, evil, command)
    for command in ("/audit @evil", "/freeze @evil <script>", "/award @nobody_<b> 5"):
        await h.say(CHAT, evil_mod, command)
    texts = h.texts()
    joined = "\n".join(texts)
    assert "&lt;b&gt;x&lt;/b&gt; &amp; Co" in joined
    assert "&lt;i&gt;great&lt;/i&gt; &amp; more" in joined
    assert "&lt;i&gt;Mod&lt;/i&gt;" in h.texts(LOG_ID)[0]
    assert "&lt;script&gt;" in h.texts(LOG_ID)[-1]
    for raw in ("<b>x</b>", "& Co", "<i>great</i>", "<i>Mod</i>", "<script>", "& more"):
        assert raw not in joined
    assert len(texts) >= 10
    for text in texts:
        assert_telegram_html(text)


async def test_a_long_audit_is_cut_within_telegrams_limit(make_harness: MakeHarness) -> None:
    h = await make_harness(admin_ids=[9], gamification=FIXED)
    await meet(h, BOB)
    reason = "r" * 200
    for i in range(25):
        await h.services.engine.adjust(CHAT_ID, 2, 1, key=f"k{i}", actor_id=9, reason=reason)
    text = await reply_sent(h, MOD, "/audit @bob")
    assert len(text) <= 4096
    assert_telegram_html(text)


# -- activity points ----------------------------------------------------------------------


async def test_ranged_points_are_deterministic_per_message(make_harness: MakeHarness) -> None:
    h = await make_harness(gamification={"activity": {"points": {"text": [15, 25]}}})
    people = [UpdateFactory.user(200 + i, f"U{i}") for i in range(12)]
    updates = [h.factory.message(CHAT, p, SENTENCES[i]) for i, p in enumerate(people)]
    await h.feed(*updates)
    await h.feed(*updates)
    rows = h.transactions()
    assert len(rows) == 12
    for update, row in zip(updates, rows, strict=True):
        assert update.message is not None
        key = message_key(CHAT_ID, update.message.message_id)
        assert row[3] == points_for((15, 25), key)
        assert 15 <= row[3] <= 25
    assert len({row[3] for row in rows}) > 1


@pytest.mark.parametrize(
    ("content", "points"),
    [
        (PHOTO, 7),
        ({**PHOTO, "caption": "look at this"}, 7),
        ({"sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1,
                      "height": 1, "is_animated": False, "is_video": False}}, 2),
        ({"dice": {"emoji": "🎲", "value": 3}}, 0),
    ],
)  # fmt: skip
async def test_media_earns_the_configured_points(
    make_harness: MakeHarness, content: dict[str, Any], points: int
) -> None:
    h = await make_harness(gamification={"activity": {"points": {"photo": 7}}})
    await h.say(CHAT, ALICE, content=content)
    assert await h.balance(CHAT_ID, 1) == points
    assert h.tx_count() == (1 if points else 0)


async def test_a_photo_is_not_too_short_the_same_file_is_a_repeat_and_obeys_the_cooldown(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(gamification={"activity": {"points": {"photo": 7}}})
    await h.say(CHAT, ALICE, content=PHOTO)
    await h.say(CHAT, ALICE, content=PHOTO)
    assert await h.balance(CHAT_ID, 1) == 7
    assert h.services.stats.refusals["repeat"] == 1
    for n in range(2, 5):
        photo = {
            "photo": [{"file_id": f"p{n}", "file_unique_id": f"u{n}", "width": 9, "height": 9}]
        }
        await h.say(CHAT, ALICE, content=photo)
    assert await h.balance(CHAT_ID, 1) == 21
    assert h.services.stats.refusals["cooldown"] == 1
