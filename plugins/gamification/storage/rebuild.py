"""Rebuilding the accounts cache from the ledger: the rules every backend applies the same way.

The ledger (`transactions`) is the truth and `accounts` only a cache of it, so a repair
rewrites cache rows, never a transaction, and each repair is logged in `admin_actions`.
A backend reads SELECT_CHAINS and SELECT_CACHE in one snapshot and hands the rows here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.storage.hashing import GENESIS_HASH
from plugins.gamification.storage.integrity import IntegrityReport

SELECT_CHAINS = "SELECT chat_id, user_id, seq, amount, kind, hash FROM transactions ORDER BY id"
SELECT_CACHE = "SELECT chat_id, user_id, balance, earned, seq, head_hash FROM accounts"
REBUILD_ACTION = "rebuild-balance"
TAMPERED = (
    "The ledger itself fails the integrity check, so the balances were not rebuilt:"
    " rebuilding from a tampered ledger would launder the tampering"
    " (run `python -m bot check` to see where)."
)


class OperationRefusedError(GamificationError):
    """An operator command that would destroy or launder data was refused; nothing changed."""


class RebuildRefusedError(OperationRefusedError):
    """Rebuilding the cache was refused; `differences` still says what differs."""

    def __init__(self, message: str, differences: list[BalanceDifference]) -> None:
        super().__init__(message)
        self.differences = differences


@dataclass(frozen=True, slots=True)
class AccountState:
    balance: int = 0
    earned: int = 0
    seq: int = 0
    head_hash: str = GENESIS_HASH


@dataclass(frozen=True, slots=True)
class BalanceDifference:
    """One account whose cached row (None: missing) is not what its transactions say."""

    chat_id: int
    user_id: int
    cached: AccountState | None
    recomputed: AccountState

    def describe(self) -> str:
        where = f"account {self.chat_id}/{self.user_id}"
        new = self.recomputed
        if self.cached is None:
            return f"{where}: no cached row -> balance {new.balance}, earned {new.earned}"
        old = self.cached
        parts = [
            f"{name} {before} -> {after}"
            for name, before, after in (
                ("balance", old.balance, new.balance),
                ("earned", old.earned, new.earned),
                ("seq", old.seq, new.seq),
                ("head", old.head_hash[:12], new.head_hash[:12]),
            )
            if before != after
        ]
        return f"{where}: {', '.join(parts)}"

    def audit_detail(self, actor: str) -> str:
        """The admin_actions detail of this repair."""
        return json.dumps(
            {
                "actor": actor,
                "before": asdict(self.cached) if self.cached else None,
                "after": asdict(self.recomputed),
            }
        )


class Replay:
    """Replays SELECT_CHAINS rows (in id order) into each account's state."""

    def __init__(self) -> None:
        self.chains: dict[tuple[int, int], AccountState] = {}

    def feed(self, rows: Iterable[Sequence[Any]]) -> None:
        chains = self.chains
        for chat_id, user_id, seq, amount, kind, digest in rows:
            old = chains.get((chat_id, user_id), AccountState())
            earned = old.earned
            # The writer's rule: a revert takes back what its original earned, no more.
            if kind == "revert":
                earned -= max(-amount, 0)
            elif amount > 0:
                earned += amount
            chains[(chat_id, user_id)] = AccountState(old.balance + amount, earned, seq, digest)

    def differences(self, cache: Iterable[Sequence[Any]]) -> list[BalanceDifference]:
        """Compare with SELECT_CACHE rows; an account row without transactions must be zeros."""
        cached: Mapping[tuple[int, int], AccountState] = {
            (row[0], row[1]): AccountState(*row[2:]) for row in cache
        }
        found = []
        for key in sorted(self.chains.keys() | cached.keys()):
            recomputed = self.chains.get(key, AccountState())
            if cached.get(key) != recomputed:
                found.append(BalanceDifference(key[0], key[1], cached.get(key), recomputed))
        return found


def refuse_if_tampered(report: IntegrityReport, differences: list[BalanceDifference]) -> None:
    """Applying is allowed only when the stale cache rows are all the check found wrong.

    A stale cache row is one account violation without a transaction; anything else (a
    chain, a revert link, the checkpoint, the storage) means the ledger is not sound, and
    rebuilding from it would launder the tampering into balances that look right.
    """
    stale = {(d.chat_id, d.user_id) for d in differences}
    explained = all(v.tx_id is None and (v.chat_id, v.user_id) in stale for v in report.violations)
    if not explained or report.violation_count != len(differences):
        raise RebuildRefusedError(TAMPERED, differences)


def changed_meanwhile(
    difference: BalanceDifference, differences: list[BalanceDifference]
) -> RebuildRefusedError:
    return RebuildRefusedError(
        f"The cached balance of account {difference.chat_id}/{difference.user_id} changed"
        " while the balances were rebuilt; nothing was changed, run the command again.",
        differences,
    )
