"""Unit tests of the anti-abuse gate and of what an activity message or a thanks is worth."""

from __future__ import annotations

import itertools
import random
import tracemalloc
from array import array
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from benchmarks.farming import sentence
from plugins.gamification.domain.activity import ActivityFact, is_thanks, points_for
from plugins.gamification.domain.anti_abuse import (
    SKETCH,
    AntiAbuseGate,
    Refusal,
    Verdict,
    at_least_as_similar,
    fingerprint,
    hashes,
    meaningful_length,
    similarity,
    unpack,
)
from plugins.gamification.domain.config import AntiAbuseSection, ThanksSection
from plugins.gamification.domain.keys import message_key

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = "2026-11-25"
CHAT = -100
_ids = itertools.count(1)


def fact(text: str = "a perfectly ordinary message", *, user: int = 1, **kw: Any) -> ActivityFact:
    fields: dict[str, Any] = {
        "chat_id": CHAT,
        "user_id": user,
        "message_id": next(_ids),
        "kind": "text",
        "text": text,
        "sent_at": T0,
    }
    fields.update(kw)
    return ActivityFact(**fields)


# The classic rules alone (a hard cooldown, no engagement weighting), unless a test asks.
PLAIN = {"cooldown_burst": 1, "monologue_factor": 1, "engaged_share": 0}


def gate(**settings: Any) -> AntiAbuseGate:
    return AntiAbuseGate(AntiAbuseSection(**{**PLAIN, **settings}))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


SENTENCES = [
    "good morning everyone, coffee is ready",
    "has anyone tried the new release yet?",
    "I think the meeting moved to friday",
    "the weather here is grey and rainy",
    "my cat knocked the plant off the shelf",
    "who wants to review my pull request",
    "lunch at the italian place sounds great",
    "the train was late again this morning",
    "finally fixed that flaky test suite",
    "reading a book about medieval castles",
]


# -- the gate -----------------------------------------------------------------------------


def test_a_first_message_is_allowed_with_its_amount() -> None:
    verdict = gate().judge(fact(), 20, T0, DAY)
    assert verdict == Verdict(amount=20)
    assert verdict.allowed


def test_cooldown_counts_from_the_last_scored_message() -> None:
    g = gate(cooldown_seconds=60)
    assert g.judge(fact(SENTENCES[0]), 10, at(0), DAY).allowed
    assert g.judge(fact(SENTENCES[1]), 10, at(59.9), DAY).refusal is Refusal.COOLDOWN
    assert g.judge(fact(SENTENCES[2]), 10, at(60), DAY).allowed
    # A refused message does not restart the cooldown.
    assert g.judge(fact(SENTENCES[3]), 10, at(90), DAY).refusal is Refusal.COOLDOWN
    assert g.judge(fact(SENTENCES[4]), 10, at(120), DAY).allowed


def test_cooldown_is_per_user_and_per_chat() -> None:
    g = gate(cooldown_seconds=60)
    assert g.judge(fact(SENTENCES[0]), 10, at(0), DAY).allowed
    assert g.judge(fact(SENTENCES[1], user=2), 10, at(1), DAY).allowed
    assert g.judge(fact(SENTENCES[2], chat_id=-200), 10, at(2), DAY).allowed


@pytest.mark.parametrize("text", ["", "ok", "  a  ", "!!!!!!!!", "o\u200bk", "hhhhhhiiiii"])
def test_too_short(text: str) -> None:
    assert gate(min_length=3).judge(fact(text), 10, T0, DAY).refusal is Refusal.TOO_SHORT


def test_media_is_never_too_short() -> None:
    assert gate(min_length=3).judge(fact("", kind="photo"), 10, T0, DAY).allowed


@pytest.mark.parametrize(
    "again",
    [
        SENTENCES[1],
        SENTENCES[1].upper(),
        "Has anyone tried the NEW release, yet???",
        "hás ányone tríed the new reléase yet",
        "has  anyone\ttried the new release yet",
    ],
)
def test_repeats_and_near_repeats_are_refused(again: str) -> None:
    g = gate(cooldown_seconds=60, repeat_window_seconds=900)
    assert g.judge(fact(SENTENCES[1]), 10, at(0), DAY).allowed
    assert g.judge(fact(again), 10, at(61), DAY).refusal is Refusal.REPEAT


def test_a_repeat_outside_the_window_scores() -> None:
    g = gate(cooldown_seconds=60, repeat_window_seconds=900)
    assert g.judge(fact(SENTENCES[1]), 10, at(0), DAY).allowed
    assert g.judge(fact(SENTENCES[1]), 10, at(901), DAY).allowed


def test_different_texts_are_not_repeats() -> None:
    g = gate(cooldown_seconds=0, burst_messages=100)
    for i, text in enumerate(SENTENCES):
        assert g.judge(fact(text), 10, at(i * 61), DAY).allowed, text


def test_repeat_memory_is_bounded() -> None:
    g = gate(cooldown_seconds=0, repeat_memory=2, burst_messages=100)
    for i, text in enumerate(SENTENCES[:3]):
        assert g.judge(fact(text), 10, at(i * 61), DAY).allowed
    # SENTENCES[0] fell out of a memory of two texts.
    assert g.judge(fact(SENTENCES[0]), 10, at(200), DAY).allowed
    assert g.judge(fact(SENTENCES[2]), 10, at(300), DAY).refusal is Refusal.REPEAT


def test_frozen_is_refused_before_anything_else() -> None:
    g = gate()
    g.frozen.add((CHAT, 1))
    assert g.judge(fact("ok"), 10, T0, DAY).refusal is Refusal.FROZEN
    assert g.judge(fact(user=2), 10, T0, DAY).allowed


def test_burst_is_refused_and_suspicious_once_per_burst() -> None:
    g = gate(burst_messages=4, burst_seconds=10, cooldown_seconds=0)
    verdicts = [g.judge(fact(text), 10, at(i), DAY) for i, text in enumerate(SENTENCES[:7])]
    assert [v.allowed for v in verdicts] == [True] * 4 + [False] * 3
    assert {v.refusal for v in verdicts[4:]} == {Refusal.BURST}
    assert [v.suspicious for v in verdicts] == [False] * 4 + [True, False, False]
    # After a quiet spell the window is empty again.
    assert g.judge(fact(SENTENCES[8]), 10, at(30), DAY).allowed


def test_the_daily_cap_clips_then_refuses_and_resets_on_a_new_day() -> None:
    g = gate(daily_cap=25, cooldown_seconds=0)
    amounts = [g.judge(fact(text), 10, at(i), DAY) for i, text in enumerate(SENTENCES[:4])]
    assert [v.amount for v in amounts[:3]] == [10, 10, 5]
    assert amounts[3].refusal is Refusal.DAILY_CAP
    assert g.judge(fact(SENTENCES[5]), 10, at(86_400), "2026-11-26").amount == 10


def test_the_daily_total_is_loaded_once_per_day() -> None:
    g = gate(daily_cap=25, cooldown_seconds=0)
    first = fact(SENTENCES[0])
    assert g.needs_daily_total(first, DAY)
    g.set_daily_total(first, DAY, 20)
    assert not g.needs_daily_total(first, DAY)
    g.set_daily_total(first, DAY, 0)  # a late loader must not overwrite the reservation
    assert g.judge(first, 10, T0, DAY).amount == 5
    assert g.needs_daily_total(first, "2026-11-26")


def test_refund_gives_back_the_reservation() -> None:
    g = gate(daily_cap=25, cooldown_seconds=60)
    first = fact(SENTENCES[0])
    assert g.judge(first, 20, at(0), DAY).amount == 20
    g.refund(first, 20)
    # The award failed: neither the cooldown nor the cap holds it against the user.
    assert g.judge(fact(SENTENCES[1]), 20, at(1), DAY).amount == 20


def test_refund_of_a_duplicate_keeps_the_cooldown() -> None:
    g = gate(daily_cap=25, cooldown_seconds=60)
    first = fact(SENTENCES[0])
    assert g.judge(first, 20, at(0), DAY).amount == 20
    g.refund(first, 20, keep_cooldown=True)
    assert g.judge(fact(SENTENCES[1]), 20, at(1), DAY).refusal is Refusal.COOLDOWN
    assert g.judge(fact(SENTENCES[2]), 20, at(61), DAY).amount == 20


def test_a_redelivered_message_passes_again_with_the_same_amount() -> None:
    g = gate(daily_cap=25, cooldown_seconds=60)
    first = fact(SENTENCES[0])
    assert g.judge(first, 20, at(0), DAY).amount == 20
    again = g.judge(first, 20, at(5), DAY)
    assert again.allowed
    assert again.amount == 20
    # Not counted twice against the cap.
    assert g.judge(fact(SENTENCES[1]), 20, at(61), DAY).amount == 5


def test_redeliveries_of_refused_messages_do_not_make_a_burst() -> None:
    """Each of five messages delivered twice is five messages, as far as a burst goes."""
    g = gate(burst_messages=8, burst_seconds=10, cooldown_seconds=60)
    verdicts = []
    for i, text in enumerate(SENTENCES[:5]):
        message = fact(text)
        verdicts += [g.judge(message, 10, at(i), DAY), g.judge(message, 10, at(i + 0.5), DAY)]
    assert Refusal.BURST not in {v.refusal for v in verdicts}
    assert not any(v.suspicious for v in verdicts)


def test_memory_is_bounded_by_tracked_users() -> None:
    g = gate(tracked_users=100)
    for user in range(10_000):
        g.judge(fact(SENTENCES[user % 10], user=user), 10, at(user), DAY)
        assert len(g) <= 100
    assert len(g) == 100
    # The most recent users are the ones remembered.
    assert g.judge(fact(SENTENCES[1], user=9_999), 10, at(10_000), DAY).refusal in {
        Refusal.COOLDOWN,
        Refusal.REPEAT,
    }
    assert g.judge(fact(SENTENCES[3], user=0), 10, at(10_001), DAY).allowed


def test_frozen_state_survives_eviction() -> None:
    g = gate(tracked_users=100)
    g.frozen.add((CHAT, 0))
    for user in range(1, 500):
        g.judge(fact(user=user), 10, at(user), DAY)
    assert g.judge(fact(user=0), 10, at(1000), DAY).refusal is Refusal.FROZEN


# -- fingerprints and lengths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello, World!", "hello world"),
        ("Café crème", "cafe creme"),
        ("a-b_c d", "abcd"),
        ("ПРИВЕТ всем", "привет, всем!"),
    ],
)
def test_fingerprint_ignores_case_accents_punctuation_and_spacing(a: str, b: str) -> None:
    assert fingerprint(a) == fingerprint(b)
    assert similarity(fingerprint(a), fingerprint(b)) == 1.0


def test_similarity_of_unrelated_texts_is_low() -> None:
    a, b = fingerprint(SENTENCES[0]), fingerprint(SENTENCES[5])
    assert similarity(a, b) < 0.2
    assert similarity(a, b) == similarity(b, a)


def test_similarity_of_a_small_edit_is_high() -> None:
    a = fingerprint("has anyone tried the new release yet")
    b = fingerprint("has anyone tried the new release yet, folks")
    assert 0.7 < similarity(a, b) < 1.0


def test_similarity_of_empty_fingerprints_is_zero() -> None:
    assert similarity(frozenset(), fingerprint("abc")) == 0.0
    assert similarity(frozenset(), frozenset()) == 0.0


def test_fingerprint_is_bounded_for_huge_texts() -> None:
    huge = "".join(map(str, range(10_000)))
    assert len(fingerprint(huge)) == SKETCH
    # A bounded sketch still tells the same long text from a different one.
    assert similarity(fingerprint(huge), fingerprint(huge)) == 1.0
    other = "".join(map(str, range(20_000, 30_000)))
    assert similarity(fingerprint(huge), fingerprint(other)) < 0.5


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("", 0),
        ("hi", 2),
        ("abc", 3),
        ("hello", 4),  # a run counts once: "ll"
        ("aaaaaaa", 1),
        ("ok.......", 2),
        ("   ", 0),
        ("\t\n ok \n", 2),
        ("a b c", 3),
        ("\u200b\u200b\u200b", 0),
        ("o\u200bk", 2),
        ("hi\u200b\u200c\u200d\u2060\ufeff", 2),
        ("\u00a0\u2003ok\u3000", 2),
        ("привет", 6),
    ],
)
def test_meaningful_length(text: str, length: int) -> None:
    assert meaningful_length(text) == length


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_zero_width_characters_do_not_break_a_run_of_padding(invisible: str) -> None:
    """Zero-width characters are dropped, as whitespace is: "a<zw>a<zw>a" is the run "aaa"."""
    padded = invisible.join("aaaaaaaa")
    assert meaningful_length(padded) == meaningful_length("aaaaaaaa") == 1
    assert meaningful_length(padded) == meaningful_length(" ".join("aaaaaaaa"))


# -- what a message or a thanks is worth --------------------------------------------------


def test_fixed_points() -> None:
    assert points_for(10, message_key(CHAT, 1)) == 10
    assert points_for(0, message_key(CHAT, 1)) == 0


def test_ranged_points_are_deterministic_and_within_range() -> None:
    seen = set()
    for message_id in range(1, 2001):
        key = message_key(CHAT, message_id)
        amount = points_for((15, 25), key)
        assert 15 <= amount <= 25
        assert points_for((15, 25), key) == amount
        seen.add(amount)
    assert seen == set(range(15, 26))


def test_a_degenerate_range_is_its_one_value() -> None:
    assert {points_for((7, 7), message_key(CHAT, i)) for i in range(50)} == {7}


def test_ranged_points_depend_on_the_key_only() -> None:
    amounts = [points_for((1, 1000), message_key(CHAT, i)) for i in range(100)]
    assert amounts == [points_for((1, 1000), message_key(CHAT, i)) for i in range(100)]
    assert len(set(amounts)) > 50


TRIGGERS = frozenset(
    t.strip().lower() for group in ThanksSection().triggers.values() for t in group
)


@pytest.mark.parametrize(
    "text",
    [
        "+",
        "+1",
        " +1 ",
        "thanks",
        "Thanks!",
        "THANK YOU",
        "thank you so much",
        "thanks, that really helped",
        "many thanks.",
        "thx",
        "ty!",
        "спасибо",
        "Спасибо!",
        "спс",
        "danke",
        "gracias amigo",
        "one two three four five six seven eight nine ten eleven thanks",
    ],
)
def test_is_thanks(text: str) -> None:
    assert is_thanks(text, TRIGGERS)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "+5 to that idea",
        "+1 great idea",
        "+2",
        "++",
        "-1",
        "thanksgiving is coming",
        "I want to thank everyone",
        "tyranny",
        "one two three four five six seven eight nine ten eleven twelve thanks",
        "thanks " + "word " * 20,
    ],
)
def test_is_not_thanks(text: str) -> None:
    assert not is_thanks(text, TRIGGERS)


def test_the_quick_similarity_test_agrees_with_the_estimate() -> None:
    """at_least_as_similar skips the estimate only when it cannot reach the threshold."""
    rng = random.Random(7)
    words = [
        "the",
        "a",
        "new",
        "release",
        "bot",
        "points",
        "chat",
        "hello",
        "thanks",
        "today",
        "week",
        "game",
    ]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(150)]
    texts += ["ab", "abc", "", "!!!", "hello there", "hello there!"]
    shapes = [fingerprint(t) for t in texts]
    agreed = 0
    for a in shapes:
        for b in shapes:
            # A remembered sketch is compared as stored, its hashes read in place.
            stored = hashes(array("q", b).tobytes())
            assert similarity(a, stored) == similarity(a, b)
            for threshold in (0.1, 0.5, 0.75, 1.0):
                expected = similarity(a, b) >= threshold
                assert at_least_as_similar(a, b, threshold) == expected
                assert at_least_as_similar(a, stored, threshold) == expected
                agreed += 1
    assert agreed == len(shapes) ** 2 * 4


def test_the_repeat_memory_counts_match_its_texts_and_the_prefilter_never_hides_a_repeat() -> None:
    """The per-person filter covers every remembered text through evictions and refunds, and
    the quick answer of _repeats agrees with comparing against each remembered text."""
    rng = random.Random(11)
    words = ["hello", "there", "release", "new", "bot", "points", "the", "a", "week", "ok"]
    settings = AntiAbuseSection(repeat_memory=5, cooldown_seconds=0, burst_messages=1000)
    g = AntiAbuseGate(settings)
    checked = 0
    for n in range(400):
        text = " ".join(rng.choices(words, k=rng.randint(2, 6)))
        f = fact(text, message_id=n)
        track = g._track(f.chat_id, f.user_id)
        shape = fingerprint(text)
        expected = any(
            similarity(shape, unpack(earlier)) >= settings.repeat_similarity
            for _, earlier, _ in track.texts
        )
        assert g._repeats(track, shape, at(n).timestamp()) == expected
        checked += expected
        verdict = g.judge(f, 10, at(n), DAY)
        if verdict.allowed and rng.random() < 0.2:
            g.refund(f, verdict.amount)
        # Every remembered text's hashes have their bits set, whatever was forgotten.
        for _, remembered, _ in track.texts:
            assert track.shared_bits(unpack(remembered)) == len(unpack(remembered))
    assert checked > 20  # repeats did happen, and were found


def test_the_same_greeting_every_morning_scores_but_not_twice_a_morning() -> None:
    g = gate()
    hello = "Good morning everyone, coffee is ready"
    assert g.judge(fact(hello), 10, at(0), DAY).allowed
    again = g.judge(fact(hello), 10, at(2 * 3600), DAY)
    assert again.refusal is Refusal.REPEAT
    # Next morning, an hour earlier than the day before: outside the 18 h window.
    assert g.judge(fact(hello), 10, at(23 * 3600), "2026-11-26").allowed


def test_a_tracked_person_costs_a_bounded_few_kilobytes() -> None:
    """The gate's memory is tracked_users times this: 30 remembered texts, 16 verdicts."""
    rng = random.Random(3)
    g = gate(cooldown_seconds=0)
    people = 100
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(40):
            for user in range(people):
                text = " ".join(rng.choices(SENTENCES, k=2)) + f" {n} {user}"
                g.judge(fact(text, user=user), 10, at(n * 61 + user * 0.01), DAY)
        per_person = (tracemalloc.get_traced_memory()[0] - before) / people
    finally:
        tracemalloc.stop()
    assert len(g) == people
    assert per_person < 16 * 1024, f"{per_person / 1024:.1f} KiB per tracked person"


# -- engagement-era rules -----------------------------------------------------------------


def test_the_token_bucket_lets_three_quick_follow_ups_through_then_one_a_minute() -> None:
    g = gate(cooldown_burst=3)
    verdicts = [g.judge(fact(SENTENCES[n]), 20, at(n * 10), DAY) for n in range(4)]
    assert [v.refusal for v in verdicts] == [None, None, None, Refusal.COOLDOWN]
    assert g.judge(fact(SENTENCES[4]), 20, at(90), DAY).allowed  # a token back at 60 s
    assert g.judge(fact(SENTENCES[5]), 20, at(95), DAY).refusal is Refusal.COOLDOWN


def test_a_short_answer_scores_at_half_and_short_padding_does_not() -> None:
    g = gate()
    assert g.judge(fact("ok"), 20, T0, DAY).refusal is Refusal.TOO_SHORT
    answer = g.judge(fact("ok", user=2, reply_to_user=1, reply_to_message=1), 20, at(1), DAY)
    assert answer.amount == 10
    assert [m.name for m in answer.multipliers] == ["short answer"]
    # Said within two minutes of someone else: an answer too; later, padding again.
    assert g.judge(fact("no", user=3), 20, at(30), DAY).amount == 10
    assert g.judge(fact("no", user=4), 20, at(400), DAY).refusal is Refusal.TOO_SHORT


def test_copying_another_persons_recent_message_earns_nothing() -> None:
    g = gate()
    original = "I finally finished the castle puzzle, a thousand pieces of grey sky"
    assert g.judge(fact(original, user=1), 20, T0, DAY).allowed
    assert g.judge(fact(original, user=2), 20, at(100), DAY).refusal is Refusal.COPY
    shuffled = " ".join(reversed(original.split()))
    assert g.judge(fact(shuffled, user=3), 20, at(200), DAY).refusal is Refusal.COPY
    assert g.judge(fact(original, user=4), 20, at(4000), DAY).allowed  # an hour later


def test_letter_soup_earns_nothing_and_the_same_file_is_a_repeat() -> None:
    g = gate()
    soup = fact("qzxkvbnmwrtplkjhgfdsqzxcv")
    assert g.judge(soup, 20, T0, DAY).refusal is Refusal.LETTER_SOUP
    photo = {"kind": "photo", "text": "", "media_id": "file-1"}
    assert g.judge(fact(**photo), 10, at(100), DAY).allowed
    assert g.judge(fact(**photo), 10, at(200), DAY).refusal is Refusal.REPEAT
    # Another person's same photo is a copy; the same sticker is shared vocabulary.
    assert g.judge(fact(user=2, **photo), 10, at(300), DAY).refusal is Refusal.COPY
    sticker = {"kind": "sticker", "text": "", "media_id": "sticker-1"}
    assert g.judge(fact(user=3, **sticker), 2, at(400), DAY).allowed
    assert g.judge(fact(user=4, **sticker), 2, at(500), DAY).allowed


def test_an_unanswered_record_falls_to_nothing_and_engagement_lifts_it() -> None:
    g = gate(cooldown_seconds=0, engaged_share=0.25, monologue_factor=1)
    amounts = [g.judge(fact(SENTENCES[n % 10] + f" {n}" * n), 20, at(n), DAY).amount
               for n in range(12)]  # fmt: skip
    assert amounts[:3] == [20, 20, 20]
    assert amounts[-1] == 0
    for responder in range(100, 106):
        g.engaged(CHAT, 1, DAY, responder)
    assert g.judge(fact("a new thought about the castle garden"), 20, at(50), DAY).amount == 20


def test_a_closed_group_counts_two_engaged_messages_per_responder() -> None:
    g = gate(cooldown_seconds=0, engaged_share=0.25, monologue_factor=1)
    rng = random.Random(4)
    for n in range(40):
        assert g.judge(fact(sentence(rng)), 20, at(n * 60), DAY).refusal in (
            None,
            Refusal.NO_ENGAGEMENT,
        )
    for _ in range(20):
        g.engaged(CHAT, 1, DAY, 200)  # one account engaging everything
    late = g.judge(fact("and yet another message nobody else answers"), 20, at(9999), DAY)
    assert late.refusal is Refusal.NO_ENGAGEMENT


def test_a_monologue_is_worth_a_quarter_and_the_relative_cap_clips() -> None:
    g = gate(monologue_factor=0.25)
    alone = g.judge(fact(SENTENCES[0]), 20, T0, DAY)
    assert alone.amount == 5
    assert [m.name for m in alone.multipliers] == ["monologue"]
    g.judge(fact(SENTENCES[1], user=2), 20, at(10), DAY)
    capped = g.judge(fact(SENTENCES[2], user=2), 20, at(100), DAY, cap=25)
    assert capped.amount == 5
    assert g.judge(fact(SENTENCES[3], user=2), 20, at(200), DAY, cap=25).refusal is (
        Refusal.CHAT_CAP
    )
