"""Reply texts: short, HTML-escaped, within Telegram's 4,096 characters, never pinging,
in the reader's language (see i18n.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from plugins.gamification.domain.models import Leaderboard, Period, Standing, Transaction, TxKind
from plugins.gamification.services.runtime import Services
from plugins.gamification.telegram.i18n import N_, _, moment, num
from plugins.gamification.telegram.phrasing import MAX_MESSAGE, cut, esc, standing_line

__all__ = [
    "MAX_MESSAGE",
    "cut",
    "esc",
    "history_text",
    "leaderboard_text",
    "name_getter",
    "signed",
]
PERIOD_TITLES = {
    Period.DAY: N_("<b>Top today</b>"),
    Period.WEEK: N_("<b>Top this week</b>"),
    Period.MONTH: N_("<b>Top this month</b>"),
    Period.ALL: N_("<b>Top all time</b>"),
}
KIND_NAMES = {
    TxKind.ACTIVITY: N_("activity"),
    TxKind.THANKS: N_("thanks"),
    TxKind.REACTION: N_("reaction"),
    TxKind.ADMIN: N_("admin"),
    TxKind.REVERT: N_("revert"),
    TxKind.EVENT: N_("event"),
    TxKind.ACHIEVEMENT: N_("achievement"),
}

Namer = Callable[[int], Awaitable[str]]


def cut_text(text: str) -> str:
    """`cut` with the marker in the reader's language."""
    return cut(text, marker=_("… (cut)"))


def signed(amount: int) -> str:
    return f"+{num(amount)}" if amount > 0 else num(amount)


def name_getter(services: Services) -> Namer:
    """A display name that never pings: the full name, else "user <id>" in the language."""

    async def name_of(user_id: int) -> str:
        person = await services.people.person(user_id)
        if person is not None and person.full_name:
            return person.full_name
        return _("user {id}").format(id=user_id)

    return name_of


def describe_transaction(tx: Transaction, *, with_actor: str | None = None) -> str:
    kind = _(KIND_NAMES[tx.kind])
    parts = [f"#{tx.id} {moment(tx.created_at)} <b>{signed(tx.amount)}</b> {kind}"]
    if tx.reason:
        parts.append(f"“{esc(tx.reason)}”")
    if tx.breakdown.multipliers:
        parts.append(f"({esc(tx.breakdown.describe())})")
    if tx.reverts_id is not None:
        parts.append(_("reverts #{tx_id}").format(tx_id=tx.reverts_id))
    if with_actor is not None:
        parts.append(_("by {name}").format(name=esc(with_actor)))
    return " ".join(parts)


async def leaderboard_text(
    board: Leaderboard, caller: Standing | None, caller_id: int, name_of: Namer
) -> str:
    title = _(PERIOD_TITLES[board.period])
    if not board.lines:
        return f"{title}\n{_('Nobody has points yet.')}"
    lines = [title]
    for line in board.lines:
        lines.append(await _line(line, name_of))
    if caller is not None and all(line.user_id != caller_id for line in board.lines):
        lines.append("…")
        lines.append(await _line(caller, name_of))
    return cut_text("\n".join(lines))


async def _line(line: Standing, name_of: Namer) -> str:
    return standing_line(line, await name_of(line.user_id), num)


def history_text(title: str, transactions: Sequence[Transaction], actors: Sequence[str]) -> str:
    if not transactions:
        return f"{title}\n{_('No transactions yet.')}"
    rows = [
        describe_transaction(tx, with_actor=actor or None)
        for tx, actor in zip(transactions, actors, strict=True)
    ]
    return cut_text("\n".join([title, *rows]))
