"""Ledger operations for storage tests: postings in one chat, and the default effects."""

from __future__ import annotations

from typing import Any

from plugins.gamification.domain.config import ProgressSection
from plugins.gamification.domain.models import Breakdown, TxKind
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.storage.operations import Posting
from plugins.gamification.storage.sqlite.effects import Effects

CHAT = -100_200


def effects() -> Effects:
    """The shipped achievements: unlocks, rewards and counters in every batch."""
    return Effects(ProgressRules(achievements=ProgressSection().achievements))


def post(
    user: int,
    amount: int,
    key: str,
    kind: TxKind = TxKind.ACTIVITY,
    *,
    chat: int = CHAT,
    **extra: Any,
) -> Posting:
    """A posting to (chat, user); activity is tagged "text" unless `tag` says otherwise."""
    tag = extra.pop("tag", "text" if kind is TxKind.ACTIVITY else "")
    return Posting(
        chat, user, amount, kind, key, extra.pop("actor_id", None), extra.pop("reason", ""),
        Breakdown(base=amount, result=amount, tag=tag), **extra,
    )  # fmt: skip
