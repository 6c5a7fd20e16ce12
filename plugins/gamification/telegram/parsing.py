"""Parsing admin command arguments into targets, amounts and reasons, with one-sentence errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

from plugins.gamification.telegram.i18n import _, ngettext, num

MAX_REASON = 200
_USERNAME = re.compile(r"^@[A-Za-z0-9_]{3,32}$")
# ASCII digits only: int() also reads "٥٠" or "５０", and an amount that does not look
# like the number it is makes a change an admin did not mean.
_NUMBER = re.compile(r"^[+-]?[0-9]+$")


class CommandSyntaxError(ValueError):
    """The command's arguments are wrong; the message is the sentence to reply with."""


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """Who a command is about, before resolving: a reply, a @username or a numeric id."""

    username: str | None = None
    user_id: int | None = None
    by_reply: bool = False


def split_args(args: str | None) -> list[str]:
    return (args or "").split()


def take_target(tokens: list[str], has_reply: bool, usage: str) -> tuple[TargetSpec, list[str]]:
    """Take the target from the front of `tokens`, or from the reply when none is given.

    With a reply, a leading number is the amount (`/award 50` replying to someone), unless
    two numbers lead (`/award 12345 50`), which name an id and then the amount.
    """
    first = tokens[0] if tokens else ""
    if _USERNAME.match(first):
        return TargetSpec(username=first[1:]), tokens[1:]
    if first.startswith("@"):
        raise CommandSyntaxError(
            _("{token} is not a valid @username.").format(token=repr(first[:40]))
        )
    two_numbers = (
        len(tokens) >= 2 and bool(_NUMBER.match(first)) and bool(_NUMBER.match(tokens[1]))
    )
    if has_reply and not two_numbers:
        return TargetSpec(by_reply=True), tokens
    if not first:
        raise CommandSyntaxError(
            _("Tell me who: reply to their message, or {usage}.").format(usage=usage)
        )
    if not _NUMBER.match(first) or first.startswith(("-", "+")) or len(first) > 15:
        raise CommandSyntaxError(
            _("{token} is not a user: use a reply, an @username or a numeric id.").format(
                token=repr(first[:40])
            )
        )
    return TargetSpec(user_id=int(first)), tokens[1:]


def take_amount(tokens: list[str], cap: int, usage: str) -> tuple[int, list[str]]:
    """A positive whole number up to `cap` from the front of `tokens`."""
    if not tokens:
        raise CommandSyntaxError(_("Tell me how many points: {usage}.").format(usage=usage))
    token = tokens[0]
    if not _NUMBER.match(token):
        raise CommandSyntaxError(
            _("{token} is not a whole number of points.").format(token=repr(token[:40]))
        )
    if len(token.lstrip("+-")) > 12:
        raise CommandSyntaxError(
            _("That amount is out of range; the most is {cap}.").format(cap=num(cap))
        )
    amount = int(token)
    if amount <= 0:
        raise CommandSyntaxError(_("The amount must be above zero."))
    if amount > cap:
        raise CommandSyntaxError(
            _("That is over the cap: one admin change is at most {cap}.").format(cap=num(cap))
        )
    return amount, tokens[1:]


def take_reason(tokens: list[str]) -> str:
    reason = " ".join(tokens).strip()
    if len(reason) > MAX_REASON:
        raise CommandSyntaxError(
            ngettext(
                "The reason is too long: at most {count} character.",
                "The reason is too long: at most {count} characters.",
                MAX_REASON,
            ).format(count=num(MAX_REASON))
        )
    return reason


def take_tx_id(tokens: list[str], usage: str) -> tuple[int, list[str]]:
    if not tokens:
        raise CommandSyntaxError(_("Tell me which transaction: {usage}.").format(usage=usage))
    token = tokens[0].lstrip("#")
    if not (token.isascii() and token.isdecimal()) or len(token) > 15 or int(token) == 0:
        raise CommandSyntaxError(
            _("{token} is not a transaction number.").format(token=repr(tokens[0][:40]))
        )
    return int(token), tokens[1:]
