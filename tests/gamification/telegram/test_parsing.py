"""Admin command arguments: targets, amounts, reasons, transaction ids; valid or one sentence."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from plugins.gamification.telegram.parsing import (
    MAX_REASON,
    CommandSyntaxError,
    TargetSpec,
    split_args,
    take_amount,
    take_reason,
    take_target,
    take_tx_id,
)

USAGE = "/award @username 50 reason"
CAP = 10_000


@pytest.mark.parametrize(
    ("args", "tokens"),
    [
        (None, []),
        ("", []),
        ("   ", []),
        ("@bob 50 for   the\ttalk", ["@bob", "50", "for", "the", "talk"]),
        ("\n@bob\n5\n", ["@bob", "5"]),
    ],
)
def test_split_args(args: str | None, tokens: list[str]) -> None:
    assert split_args(args) == tokens


@pytest.mark.parametrize(
    ("tokens", "has_reply", "spec", "rest"),
    [
        (["@bob", "50"], False, TargetSpec(username="bob"), ["50"]),
        (["@Bob_99", "50", "x"], False, TargetSpec(username="Bob_99"), ["50", "x"]),
        (["@bob", "50"], True, TargetSpec(username="bob"), ["50"]),
        (["@" + "a" * 32], False, TargetSpec(username="a" * 32), []),
        (["12345", "50"], False, TargetSpec(user_id=12345), ["50"]),
        (["12345"], False, TargetSpec(user_id=12345), []),
        (["50"], True, TargetSpec(by_reply=True), ["50"]),
        (["50", "thanks"], True, TargetSpec(by_reply=True), ["50", "thanks"]),
        (["12345", "50"], True, TargetSpec(user_id=12345), ["50"]),
        ([], True, TargetSpec(by_reply=True), []),
        (["spam"], True, TargetSpec(by_reply=True), ["spam"]),
        (["123456789012345"], False, TargetSpec(user_id=123456789012345), []),
    ],
)
def test_take_target(
    tokens: list[str], has_reply: bool, spec: TargetSpec, rest: list[str]
) -> None:
    assert take_target(tokens, has_reply, USAGE) == (spec, rest)


@pytest.mark.parametrize(
    ("tokens", "has_reply", "message"),
    [
        ([], False, f"Tell me who: reply to their message, or {USAGE}."),
        (["@bo"], False, "'@bo' is not a valid @username."),
        (["@bo"], True, "'@bo' is not a valid @username."),
        (["@"], False, "'@' is not a valid @username."),
        (["@bob!"], False, "'@bob!' is not a valid @username."),
        (["@" + "a" * 33], False, f"'@{'a' * 33}' is not a valid @username."),
        (["bob"], False, "'bob' is not a user: use a reply, an @username or a numeric id."),
        (["-5", "5"], False, "'-5' is not a user: use a reply, an @username or a numeric id."),
        (["+5", "5"], False, "'+5' is not a user: use a reply, an @username or a numeric id."),
        (["١٢٣", "5"], False, "'١٢٣' is not a user: use a reply, an @username or a numeric id."),
        (["-5", "5"], True, "'-5' is not a user: use a reply, an @username or a numeric id."),
        (["1" * 16], False, f"'{'1' * 16}' is not a user: use a reply, an @username or a numeric id."),  # noqa: E501
        (["5.5"], False, "'5.5' is not a user: use a reply, an @username or a numeric id."),
    ],
)  # fmt: skip
def test_take_target_refusals(tokens: list[str], has_reply: bool, message: str) -> None:
    with pytest.raises(CommandSyntaxError) as info:
        take_target(tokens, has_reply, USAGE)
    assert str(info.value) == message


def test_take_target_cuts_a_long_token_in_its_message() -> None:
    with pytest.raises(CommandSyntaxError) as info:
        take_target(["x" * 5000], False, USAGE)
    assert len(str(info.value)) < 120


@pytest.mark.parametrize(
    ("tokens", "amount", "rest"),
    [
        (["50"], 50, []),
        (["+50", "why"], 50, ["why"]),
        (["1"], 1, []),
        ([str(CAP)], CAP, []),
        (["0050"], 50, []),
    ],
)
def test_take_amount(tokens: list[str], amount: int, rest: list[str]) -> None:
    assert take_amount(tokens, CAP, USAGE) == (amount, rest)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([], f"Tell me how many points: {USAGE}."),
        (["0"], "The amount must be above zero."),
        (["-0"], "The amount must be above zero."),
        (["-5"], "The amount must be above zero."),
        ([str(CAP + 1)], "That is over the cap: one admin change is at most 10,000."),
        (["999999999999"], "That is over the cap: one admin change is at most 10,000."),
        (["9" * 13], "That amount is out of range; the most is 10,000."),
        (["9" * 5000], "That amount is out of range; the most is 10,000."),
        (["5.5"], "'5.5' is not a whole number of points."),
        (["abc"], "'abc' is not a whole number of points."),
        (["1e3"], "'1e3' is not a whole number of points."),
        (["1_000"], "'1_000' is not a whole number of points."),
        (["0x10"], "'0x10' is not a whole number of points."),
        (["5pts"], "'5pts' is not a whole number of points."),
        (["²"], "'²' is not a whole number of points."),
        (["٥٠"], "'٥٠' is not a whole number of points."),
        (["５０"], "'５０' is not a whole number of points."),
        (["1٥"], "'1٥' is not a whole number of points."),
    ],
)
def test_take_amount_refusals(tokens: list[str], message: str) -> None:
    with pytest.raises(CommandSyntaxError) as info:
        take_amount(tokens, CAP, USAGE)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("tokens", "reason"),
    [
        ([], ""),
        (["for", "the", "talk"], "for the talk"),
        (["<b>x</b>", "&"], "<b>x</b> &"),
        (["x" * MAX_REASON], "x" * MAX_REASON),
    ],
)
def test_take_reason(tokens: list[str], reason: str) -> None:
    assert take_reason(tokens) == reason


def test_take_reason_too_long() -> None:
    with pytest.raises(CommandSyntaxError) as info:
        take_reason(["x" * (MAX_REASON + 1)])
    assert str(info.value) == f"The reason is too long: at most {MAX_REASON} characters."


@pytest.mark.parametrize(
    ("tokens", "tx_id", "rest"),
    [
        (["12"], 12, []),
        (["#12", "oops"], 12, ["oops"]),
        (["012"], 12, []),
        (["9" * 15], int("9" * 15), []),
    ],
)
def test_take_tx_id(tokens: list[str], tx_id: int, rest: list[str]) -> None:
    assert take_tx_id(tokens, "/revert 123 reason") == (tx_id, rest)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([], "Tell me which transaction: /revert 123 reason."),
        (["0"], "'0' is not a transaction number."),
        (["#"], "'#' is not a transaction number."),
        (["-3"], "'-3' is not a transaction number."),
        (["abc"], "'abc' is not a transaction number."),
        (["9" * 16], f"'{'9' * 16}' is not a transaction number."),
        (["²"], "'²' is not a transaction number."),
        (["①"], "'①' is not a transaction number."),
        (["٣"], "'٣' is not a transaction number."),
        (["#１２"], "'#１２' is not a transaction number."),
    ],
)
def test_take_tx_id_refusals(tokens: list[str], message: str) -> None:
    with pytest.raises(CommandSyntaxError) as info:
        take_tx_id(tokens, "/revert 123 reason")
    assert str(info.value) == message


# -- any text at all: a valid value or one sentence ---------------------------------------

_USERNAME = re.compile(r"[A-Za-z0-9_]{3,32}")

# Text that looks like arguments: digits of every script, signs, @ and # prefixes.
argument_text = st.lists(
    st.one_of(
        st.text(min_size=0, max_size=30),
        st.from_regex(r"[@#+-]?[0-9]{1,20}", fullmatch=True),
        st.from_regex(r"@[A-Za-z0-9_]{0,40}", fullmatch=True),
        st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=5),
    ),
    max_size=5,
).map(" ".join)


def assert_one_sentence(error: CommandSyntaxError) -> None:
    message = str(error)
    assert message
    assert len(message.splitlines()) == 1
    assert "\n" not in message
    assert "\r" not in message
    assert len(message) < 300


def _is_suffix(rest: list[str], tokens: list[str]) -> bool:
    return len(rest) <= len(tokens) and tokens[len(tokens) - len(rest) :] == rest


@given(text=argument_text, has_reply=st.booleans())
@example(text="@bob 5", has_reply=False)
@example(text="12 50", has_reply=True)
def test_take_target_returns_a_target_or_one_sentence(text: str, has_reply: bool) -> None:
    tokens = split_args(text)
    try:
        spec, rest = take_target(tokens, has_reply, USAGE)
    except CommandSyntaxError as error:
        assert_one_sentence(error)
        return
    assert _is_suffix(rest, tokens)
    chosen = [spec.username is not None, spec.user_id is not None, spec.by_reply]
    assert chosen.count(True) == 1
    if spec.username is not None:
        assert _USERNAME.fullmatch(spec.username)
    if spec.user_id is not None:
        assert isinstance(spec.user_id, int)
        assert 0 <= spec.user_id < 10**15
    if spec.by_reply:
        assert has_reply


@given(text=argument_text, cap=st.integers(min_value=1, max_value=10**9))
@example(text="99999999999999999999", cap=10_000)
def test_take_amount_returns_an_amount_or_one_sentence(text: str, cap: int) -> None:
    tokens = split_args(text)
    try:
        amount, rest = take_amount(tokens, cap, USAGE)
    except CommandSyntaxError as error:
        assert_one_sentence(error)
        return
    assert isinstance(amount, int)
    assert 1 <= amount <= cap
    assert rest == tokens[1:]


@given(text=st.text(max_size=400))
def test_take_reason_returns_a_reason_or_one_sentence(text: str) -> None:
    tokens = split_args(text)
    try:
        reason = take_reason(tokens)
    except CommandSyntaxError as error:
        assert_one_sentence(error)
        return
    assert isinstance(reason, str)
    assert len(reason) <= MAX_REASON
    assert reason == reason.strip()


@given(text=argument_text)
@example(text="²")
@example(text="#①")
def test_take_tx_id_returns_an_id_or_one_sentence(text: str) -> None:
    tokens = split_args(text)
    try:
        tx_id, rest = take_tx_id(tokens, "/revert 123 reason")
    except CommandSyntaxError as error:
        assert_one_sentence(error)
        return
    assert isinstance(tx_id, int)
    assert 1 <= tx_id < 10**15
    assert rest == tokens[1:]
