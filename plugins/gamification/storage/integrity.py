"""The integrity check's rules, for every backend: fed the ledger's rows, it finds what is wrong.

A backend reads its rows inside one snapshot, in the orders the statements below give, and
hands them to a `LedgerVerifier`: transactions in id order, then the account rows, then the
revert links. The verifier recomputes every SHA-256 link, every balance as the sum of its
transactions, each revert's link (at most one per original), and holds the whole history to
the latest checkpoint; its report and digest are therefore the same on SQLite and PostgreSQL
for the same rows. The statements are portable SQL without parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from plugins.gamification.domain.errors import StorageError
from plugins.gamification.storage.hashing import GENESIS_HASH, chain_hash, heads_digest

MAX_LISTED = 1000
SELECT_TRANSACTIONS = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id,"
    " reason, breakdown, created_at, reverts_id, prev_hash, hash FROM transactions"
    " ORDER BY id"
)
SELECT_ACCOUNT_HEADS = (
    "SELECT chat_id, user_id, balance, earned, seq, head_hash FROM accounts"
    " ORDER BY chat_id, user_id"
)
SELECT_REVERT_LINKS = (
    "SELECT r.id, r.chat_id, r.user_id, r.kind, r.amount, r.reverts_id,"
    " o.id, o.chat_id, o.user_id, o.kind, o.amount"
    " FROM transactions AS r LEFT JOIN transactions AS o ON o.id = r.reverts_id"
    " WHERE r.reverts_id IS NOT NULL OR r.kind = 'revert' ORDER BY r.id"
)
OUTBOX_LAG = "SELECT COUNT(*), MIN(occurred_at) FROM outbox WHERE delivered_at IS NULL"
SELECT_LATEST_CHECKPOINT = (
    "SELECT id, created_at, high_water, tx_count, digest FROM checkpoints ORDER BY id DESC LIMIT 1"
)
SQLITE_CHECK = "SQLite quick_check"


class CheckpointNotStoredError(StorageError):
    """The check ran to its verdict, but its checkpoint could not be stored; `report` holds it."""

    def __init__(self, report: IntegrityReport, cause: StorageError) -> None:
        reason = str(cause).rstrip(".").split("; nothing was written")[0]
        super().__init__(
            f"The checkpoint was not stored: {reason[:1].lower()}{reason[1:]}; run with"
            " --no-record to check without storing one."
        )
        self.report = report


@dataclass(frozen=True, slots=True)
class Violation:
    """The first bad row found for one account (tx_id None: the account row itself)."""

    chat_id: int | None
    user_id: int | None
    tx_id: int | None
    problem: str

    def describe(self) -> str:
        where = "ledger" if self.chat_id is None else f"account {self.chat_id}/{self.user_id}"
        row = f", transaction #{self.tx_id}" if self.tx_id is not None else ""
        return f"{where}{row}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An earlier report's anchor: the digest of all chain heads as of one transaction id."""

    id: int
    created_at: str
    high_water: int
    tx_count: int
    digest: str
    # (chat_id, user_id) -> (seq, hash) of every chain head then; empty if not kept.
    heads: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)


@dataclass(slots=True)
class IntegrityReport:
    """One check's verdict. `storage_check` names the backend's own check of its storage and
    `quick_check` holds that check's answer ("ok" when sound)."""

    checked_at: str
    accounts: int = 0
    transactions: int = 0
    high_water: int = 0
    digest: str = ""
    violation_count: int = 0
    violations: list[Violation] = field(default_factory=list)
    anchor: Checkpoint | None = None
    quick_check: str = "not run"
    outbox_pending: int = 0
    outbox_oldest: str | None = None
    duration_s: float = 0.0
    heads: list[tuple[int, int, int, str]] = field(default_factory=list, repr=False)
    storage_check: str = SQLITE_CHECK

    @property
    def ok(self) -> bool:
        return self.violation_count == 0

    def add(self, violation: Violation) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_LISTED:
            self.violations.append(violation)

    def checkpoint_row(self) -> tuple[str, int, int, int, str, int, str]:
        """The values of a checkpoints row (created_at, high_water, tx_count, accounts,
        digest, violations, report) that anchors the next check to this one."""
        return (
            self.checked_at,
            self.high_water,
            self.transactions,
            self.accounts,
            self.digest,
            self.violation_count,
            self.to_json(),
        )

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("heads")
        if data["anchor"] is not None:
            data["anchor"].pop("heads")
        data["ok"] = self.ok
        return json.dumps(data, indent=2, ensure_ascii=False)

    def to_text(self, listed: int = 10) -> str:
        verdict = "CLEAN" if self.ok else f"VIOLATIONS FOUND: {self.violation_count}"
        lines = [
            f"Ledger integrity: {verdict}",
            f"Checked {self.accounts:,} accounts and {self.transactions:,} transactions"
            f" in {self.duration_s:.2f} s (up to transaction #{self.high_water}).",
            f"Digest: {self.digest}",
            f"{self.storage_check}: {self.quick_check}",
            f"Outbox: {self.outbox_pending:,} events waiting"
            + (f", the oldest since {self.outbox_oldest}." if self.outbox_oldest else "."),
        ]
        if self.anchor is not None:
            lines.append(
                f"Compared with the checkpoint of {self.anchor.created_at}"
                f" (transaction #{self.anchor.high_water}, digest {self.anchor.digest[:16]}…)."
            )
        for violation in self.violations[:listed]:
            lines.append(f"- {violation.describe()}")
        if self.violation_count > listed:
            lines.append(f"… and {self.violation_count - listed:,} more.")
        return "\n".join(lines)


@dataclass(slots=True)
class _Chain:
    seq: int = 0
    head: str = GENESIS_HASH
    balance: int = 0
    earned: int = 0
    anchored_seq: int = 0
    anchored_head: str = GENESIS_HASH
    broken: bool = False
    # Whether the row at the checkpoint's head seq has the checkpoint's hash (None: unseen).
    anchor_match: bool | None = None


def checkpoint_of(row: Sequence[Any], heads: Iterable[Sequence[Any]]) -> Checkpoint:
    """A SELECT_LATEST_CHECKPOINT row and its (chat_id, user_id, seq, hash) head rows."""
    kept = {(int(c), int(u)): (int(seq), str(head)) for c, u, seq, head in heads}
    return Checkpoint(int(row[0]), row[1], int(row[2]), int(row[3]), row[4], heads=kept)


class LedgerVerifier:
    """Recomputes the ledger from its rows; feed it in the order of the statements above."""

    def __init__(self, report: IntegrityReport, anchor: Checkpoint | None = None) -> None:
        self.report = report
        report.anchor = anchor
        self._anchor = anchor
        self._high_water = anchor.high_water if anchor else 0
        self._anchor_heads = anchor.heads if anchor else {}
        self._anchored_rows = 0
        self._chains: dict[tuple[int, int], _Chain] = {}
        self._accounts_seen: set[tuple[int, int]] = set()
        self._revert_targets: dict[int, int] = {}
        self._counted = False

    def reads(self) -> tuple[tuple[str, Callable[[Iterable[Sequence[Any]]], None]], ...]:
        """Each statement to run, in this order, and the method its rows go to."""
        return (
            (SELECT_TRANSACTIONS, self.transactions),
            (SELECT_ACCOUNT_HEADS, self.accounts),
            (SELECT_REVERT_LINKS, self.reverts),
        )

    def storage(self, name: str, answer: str) -> None:
        """The backend's own check of its storage (`name`): anything but "ok" is a violation."""
        self.report.quick_check = answer
        if answer != "ok":
            self.report.add(Violation(None, None, None, f"{name}: {answer}"))

    def transactions(self, rows: Iterable[Sequence[Any]]) -> None:
        """SELECT_TRANSACTIONS rows, in id order (may be called once per chunk)."""
        report, chains = self.report, self._chains
        for row in rows:
            (tx_id, chat_id, user_id, seq, amount, balance_after, kind, key, actor_id, reason,
             breakdown, created_at, reverts_id, prev_hash, stored_hash) = row  # fmt: skip
            report.transactions += 1
            report.high_water = tx_id
            chain = chains.get((chat_id, user_id))
            if chain is None:
                chain = chains[(chat_id, user_id)] = _Chain()
            problem = None
            if seq != chain.seq + 1:
                problem = f"sequence {seq} follows {chain.seq} (a row is missing or moved)"
            elif prev_hash != chain.head:
                problem = "its previous-hash link does not match the row before it"
            elif balance_after != chain.balance + amount:
                problem = f"balance after {balance_after} is not {chain.balance} + {amount}"
            else:
                expected = chain_hash(
                    prev_hash, tx_id=tx_id, chat_id=chat_id, user_id=user_id, seq=seq,
                    amount=amount, balance_after=balance_after, kind=kind, idem_key=key,
                    actor_id=actor_id, reason=reason, breakdown=breakdown,
                    created_at=created_at, reverts_id=reverts_id,
                )  # fmt: skip
                if expected != stored_hash:
                    problem = "its content does not match its hash (the row was edited)"
            if problem is not None and not chain.broken:
                chain.broken = True
                report.add(Violation(chat_id, user_id, tx_id, problem))
            chain.seq, chain.head = seq, stored_hash
            chain.balance += amount
            if kind == "revert":
                chain.earned -= max(-amount, 0)
            elif amount > 0:
                chain.earned += amount
            if tx_id <= self._high_water:
                self._anchored_rows += 1
                chain.anchored_seq, chain.anchored_head = seq, stored_hash
            if self._anchor_heads:
                expected_head = self._anchor_heads.get((chat_id, user_id))
                if expected_head is not None and expected_head[0] == seq:
                    chain.anchor_match = expected_head[1] == stored_hash

    def accounts(self, rows: Iterable[Sequence[Any]]) -> None:
        """SELECT_ACCOUNT_HEADS rows, after every transaction (may be called per chunk)."""
        self._count_anchored()
        for chat_id, user_id, balance, earned, seq, head in rows:
            self._accounts_seen.add((chat_id, user_id))
            chain = self._chains.get((chat_id, user_id), _Chain())
            if balance != chain.balance:
                problem = f"cached balance {balance} but its transactions sum to {chain.balance}"
            elif earned != chain.earned:
                problem = f"cached lifetime earned {earned} but the ledger says {chain.earned}"
            elif (seq, head) != (chain.seq, chain.head):
                problem = f"cached chain head is at {seq}, the ledger's at {chain.seq}"
            else:
                continue
            self.report.add(Violation(chat_id, user_id, None, problem))

    def reverts(self, rows: Iterable[Sequence[Any]]) -> None:
        """SELECT_REVERT_LINKS rows, in the revert's id order."""
        self._count_anchored()
        for row in rows:
            (r_id, chat, user, kind, amount, reverts_id,
             o_id, o_chat, o_user, o_kind, o_amount) = row  # fmt: skip
            targets = self._revert_targets
            if kind != "revert" or reverts_id is None:
                problem = "a revert must have kind 'revert' and name its original"
            elif o_id is None:
                problem = f"reverts #{reverts_id}, which does not exist"
            elif (o_chat, o_user) != (chat, user) or amount != -o_amount:
                problem = f"does not exactly compensate #{o_id}"
            elif o_kind == "revert":
                problem = f"reverts #{o_id}, which is itself a revert"
            elif o_id >= r_id:
                problem = f"reverts #{o_id}, which comes after it"
            elif reverts_id in targets:
                problem = f"reverts #{reverts_id} a second time (first by #{targets[reverts_id]})"
            else:
                targets[reverts_id] = r_id
                continue
            self.report.add(Violation(chat, user, r_id, problem))

    def outbox(self, pending: int, oldest: str | None) -> None:
        self.report.outbox_pending, self.report.outbox_oldest = int(pending), oldest

    def finish(self) -> IntegrityReport:
        """The accounts the cache lacks, the digest, and the comparison with the checkpoint."""
        self._count_anchored()
        report, chains, anchor = self.report, self._chains, self._anchor
        for chat_id, user_id in sorted(chains.keys() - self._accounts_seen):
            report.add(Violation(chat_id, user_id, None, "has transactions but no balance row"))
        heads = sorted((c, u, chain.seq, chain.head) for (c, u), chain in chains.items())
        report.accounts = len(chains)
        report.digest = heads_digest(heads)
        report.heads = heads
        if anchor is not None and anchor.heads:
            self._check_anchored_heads(anchor)
        if anchor is not None:
            anchored = sorted(
                (c, u, chain.anchored_seq, chain.anchored_head)
                for (c, u), chain in chains.items()
                if chain.anchored_seq
            )
            if heads_digest(anchored) != anchor.digest:
                report.add(
                    Violation(
                        None,
                        None,
                        anchor.high_water,
                        f"history up to this transaction no longer matches the checkpoint of "
                        f"{anchor.created_at} (digest {anchor.digest[:16]}…): rows were"
                        " rewritten or cut since",
                    )
                )
        return report

    def _count_anchored(self) -> None:
        """Once, after the last transaction: the rows up to the checkpoint must all be there."""
        anchor = self._anchor
        if anchor is None or self._counted:
            return
        self._counted = True
        if self._anchored_rows != anchor.tx_count:
            self.report.add(
                Violation(
                    None,
                    None,
                    anchor.high_water,
                    f"{self._anchored_rows:,} transactions up to this one exist, the checkpoint"
                    f" of {anchor.created_at} counted {anchor.tx_count:,}",
                )
            )

    def _check_anchored_heads(self, anchor: Checkpoint) -> None:
        """Every chain head of the checkpoint must still be in its chain, unchanged."""
        stored = sorted((c, u, seq, head) for (c, u), (seq, head) in anchor.heads.items())
        if heads_digest(stored) != anchor.digest:
            self.report.add(
                Violation(None, None, None, f"the chain heads kept with the checkpoint of "
                          f"{anchor.created_at} do not match its digest: they were altered")
            )  # fmt: skip
            return
        for (chat_id, user_id), (seq, _head) in sorted(anchor.heads.items()):
            chain = self._chains.get((chat_id, user_id))
            if chain is None or chain.anchor_match is None:
                problem = f"its chain head #{seq} of the checkpoint of {anchor.created_at} is gone"
            elif not chain.anchor_match:
                problem = f"its chain head #{seq} of the checkpoint of {anchor.created_at} changed"
            else:
                continue
            self.report.add(
                Violation(chat_id, user_id, None, f"{problem}: history was cut or rewritten")
            )
