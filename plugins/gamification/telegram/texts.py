"""Reply texts: short, HTML-escaped, within Telegram's 4,096 characters, never pinging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from plugins.gamification.domain.models import Leaderboard, Period, Standing, Transaction
from plugins.gamification.telegram.phrasing import MAX_MESSAGE, cut, esc, standing_line

__all__ = ["MAX_MESSAGE", "cut", "esc", "history_text", "leaderboard_text", "signed"]
PERIOD_TITLES = {
    Period.DAY: "today",
    Period.WEEK: "this week",
    Period.MONTH: "this month",
    Period.ALL: "all time",
}

Namer = Callable[[int], Awaitable[str]]


def signed(amount: int) -> str:
    return f"+{amount}" if amount > 0 else str(amount)


def describe_transaction(tx: Transaction, *, with_actor: str | None = None) -> str:
    when = tx.created_at.strftime("%Y-%m-%d %H:%M")
    parts = [f"#{tx.id} {when} <b>{signed(tx.amount)}</b> {tx.kind.value}"]
    if tx.reason:
        parts.append(f"“{esc(tx.reason)}”")
    if tx.breakdown.multipliers:
        parts.append(f"({esc(tx.breakdown.describe())})")
    if tx.reverts_id is not None:
        parts.append(f"reverts #{tx.reverts_id}")
    if with_actor is not None:
        parts.append(f"by {esc(with_actor)}")
    return " ".join(parts)


async def leaderboard_text(
    board: Leaderboard, caller: Standing | None, caller_id: int, name_of: Namer
) -> str:
    title = f"<b>Top {PERIOD_TITLES[board.period]}</b>"
    if not board.lines:
        return f"{title}\nNobody has points yet."
    lines = [title]
    for line in board.lines:
        lines.append(await _line(line, name_of))
    if caller is not None and all(line.user_id != caller_id for line in board.lines):
        lines.append("…")
        lines.append(await _line(caller, name_of))
    return cut("\n".join(lines))


async def _line(line: Standing, name_of: Namer) -> str:
    return standing_line(line, await name_of(line.user_id))


def history_text(title: str, transactions: Sequence[Transaction], actors: Sequence[str]) -> str:
    if not transactions:
        return f"{title}\nNo transactions yet."
    rows = [
        describe_transaction(tx, with_actor=actor or None)
        for tx, actor in zip(transactions, actors, strict=True)
    ]
    return cut("\n".join([title, *rows]))
