"""The write path: one batch of operations applied as one SQLite transaction.

Everything here is synchronous and runs on the write connection's own thread, so a
batch of any size costs the event loop a single await (see LedgerStore).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from plugins.gamification.errors import (
    GamificationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    RevertError,
    StorageError,
    TransactionNotFoundError,
)
from plugins.gamification.ledger.hashing import chain_hash, request_hash
from plugins.gamification.ledger.rows import (
    INSERT_TX,
    SELECT_TX_BY_ID,
    SELECT_TX_BY_KEY,
    row_to_transaction,
)
from plugins.gamification.ledger.schema import GENESIS_HASH
from plugins.gamification.models import Breakdown, Receipt, Transaction, TxKind
from plugins.gamification.progress import Effects

log = logging.getLogger(__name__)

# SQLite stores 64-bit integers; staying far below keeps every sum exact.
MAX_BALANCE = 2**53


@dataclass(frozen=True, slots=True)
class Posting:
    """Credit or debit one account by an already computed amount."""

    chat_id: int
    user_id: int
    amount: int
    kind: TxKind
    key: str
    actor_id: int | None
    reason: str
    breakdown: Breakdown
    allow_negative: bool = False

    def fingerprint(self) -> str:
        return request_hash(
            "post",
            self.chat_id,
            self.user_id,
            self.amount,
            self.kind,
            self.actor_id,
            self.reason,
            self.breakdown.to_json(),
        )


@dataclass(frozen=True, slots=True)
class Reversal:
    """Compensate an earlier transaction; `chat_id` scopes it when not None."""

    tx_id: int
    key: str
    actor_id: int | None
    reason: str
    chat_id: int | None = None

    def fingerprint(self) -> str:
        return request_hash("revert", self.tx_id, self.actor_id, self.reason, self.chat_id)


@dataclass(frozen=True, slots=True)
class SideWrite:
    """Writes to tables beside the ledger (freezes, people seen, the audit log, the outbox).

    All statements commit together. Each SQL text is one of the module-level statement
    constants, never built from input.
    """

    statements: tuple[tuple[str, tuple[object, ...]], ...]


Operation = Posting | Reversal | SideWrite
Outcome = Receipt | None | GamificationError


class BatchWriter:
    """Applies batches on one sqlite3 connection that is in autocommit mode."""

    def __init__(self, now: Callable[[], str], effects: Effects | None = None) -> None:
        self._now = now
        self._effects = effects

    def apply(self, conn: sqlite3.Connection, ops: Sequence[Operation]) -> list[Outcome]:
        """BEGIN IMMEDIATE, each op inside its own savepoint, one COMMIT.

        A refused or failing op rolls back to its savepoint and becomes that caller's
        error; the rest of the batch still commits. If BEGIN or COMMIT fails, the
        exception propagates and nothing of the batch is written.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            (last_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM transactions").fetchone()
            state = _BatchState(next_id=last_id + 1)
            outcomes: list[Outcome] = []
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    outcome: Outcome = self._apply_one(conn, op, state)
                except GamificationError as refused:
                    conn.execute("ROLLBACK TO op")
                    outcome = refused
                except sqlite3.OperationalError:
                    # Disk, I/O or lock trouble: the database cannot take this batch, so it
                    # fails as a whole (the caller rolls back) and every caller hears of it.
                    raise
                except Exception as exc:
                    # A bug or a damaged row hit one op: undo its writes, keep the others.
                    log.exception("ledger operation %r failed", op)
                    conn.execute("ROLLBACK TO op")
                    outcome = StorageError(f"The operation could not be recorded ({exc}).")
                conn.execute("RELEASE op")
                outcomes.append(outcome)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _apply_one(
        self, conn: sqlite3.Connection, op: Operation, state: _BatchState
    ) -> Receipt | None:
        if isinstance(op, SideWrite):
            for sql, params in op.statements:
                conn.execute(sql, params)
            return None
        fingerprint = op.fingerprint()
        existing = conn.execute(SELECT_TX_BY_KEY, (op.key,)).fetchone()
        if existing is not None:
            if existing[-1] != fingerprint:
                raise IdempotencyConflictError(
                    f"The key {op.key!r} was already used for a different operation."
                )
            return Receipt(row_to_transaction(existing[:-1]), duplicate=True)
        if isinstance(op, Posting):
            return Receipt(self._append(conn, op, fingerprint, None, state))
        posting, original = self._reversal_posting(conn, op)
        return Receipt(self._append(conn, posting, fingerprint, original, state))

    def _reversal_posting(
        self, conn: sqlite3.Connection, op: Reversal
    ) -> tuple[Posting, Transaction]:
        found = conn.execute(SELECT_TX_BY_ID, (op.tx_id,)).fetchone()
        if found is None or (op.chat_id is not None and found[1] != op.chat_id):
            raise TransactionNotFoundError(f"There is no transaction #{op.tx_id} here.")
        original = row_to_transaction(found)
        if original.kind is TxKind.REVERT:
            raise RevertError(
                f"Transaction #{op.tx_id} is itself a revert and cannot be reverted."
            )
        earlier = conn.execute(
            "SELECT id FROM transactions WHERE reverts_id = ?", (op.tx_id,)
        ).fetchone()
        if earlier is not None:
            raise RevertError(f"Transaction #{op.tx_id} was already reverted by #{earlier[0]}.")
        amount = -original.amount
        return Posting(
            chat_id=original.chat_id,
            user_id=original.user_id,
            amount=amount,
            kind=TxKind.REVERT,
            key=op.key,
            actor_id=op.actor_id,
            reason=op.reason,
            breakdown=Breakdown(base=amount, result=amount),
            # A revert restores the truth about an earlier credit, even if the points
            # were already spent; refusing it would leave a wrong credit standing.
            allow_negative=True,
        ), original

    def _append(
        self,
        conn: sqlite3.Connection,
        p: Posting,
        fingerprint: str,
        original: Transaction | None,
        state: _BatchState,
    ) -> Transaction:
        reverts_id = original.id if original is not None else None
        if p.amount == 0:
            raise InvalidAmountError("The amount must not be zero.")
        account = conn.execute(
            "SELECT balance, earned, seq, head_hash FROM accounts"
            " WHERE chat_id = ? AND user_id = ?",
            (p.chat_id, p.user_id),
        ).fetchone()
        balance, old_earned, seq, prev_hash = account or (0, 0, 0, GENESIS_HASH)
        earned = old_earned
        new_balance = balance + p.amount
        if p.amount < 0 and new_balance < 0 and not p.allow_negative:
            raise InsufficientBalanceError(
                f"The balance is {balance}; taking {-p.amount} would put it below zero."
            )
        if abs(new_balance) > MAX_BALANCE:
            raise InvalidAmountError("The balance would leave the supported range.")
        if p.kind is TxKind.REVERT:
            earned -= max(-p.amount, 0)
        elif p.amount > 0:
            earned += p.amount
        tx_id, seq, now, breakdown = state.next_id, seq + 1, self._now(), p.breakdown.to_json()
        digest = chain_hash(
            prev_hash,
            tx_id=tx_id,
            chat_id=p.chat_id,
            user_id=p.user_id,
            seq=seq,
            amount=p.amount,
            balance_after=new_balance,
            kind=p.kind.value,
            idem_key=p.key,
            actor_id=p.actor_id,
            reason=p.reason,
            breakdown=breakdown,
            created_at=now,
            reverts_id=reverts_id,
        )
        row = (
            tx_id, p.chat_id, p.user_id, seq, p.amount, new_balance, p.kind.value, p.key,
            p.actor_id, p.reason, breakdown, now, reverts_id, prev_hash, digest,
        )  # fmt: skip
        conn.execute(INSERT_TX, (*row, fingerprint))
        conn.execute(
            "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE SET"
            " balance = excluded.balance, earned = excluded.earned, seq = excluded.seq,"
            " head_hash = excluded.head_hash, updated_at = excluded.updated_at",
            (p.chat_id, p.user_id, new_balance, earned, seq, digest, now),
        )
        state.next_id = tx_id + 1
        tx = row_to_transaction(row)
        if self._effects is not None:
            self._effects.after_append(
                conn,
                tx,
                balance,
                old_earned,
                earned,
                original,
                append=lambda *reward: self._reward(conn, state, *reward),
                revert=lambda tx_id, key, reason: self._compensate(
                    conn, state, tx_id, key, reason
                ),
            )
        return tx

    def _reward(
        self,
        conn: sqlite3.Connection,
        state: _BatchState,
        chat_id: int,
        user_id: int,
        amount: int,
        key: str,
        reason: str,
        tag: str,
    ) -> Transaction:
        """An achievement's reward, appended by the effects of the transaction that earned it."""
        posting = Posting(
            chat_id=chat_id,
            user_id=user_id,
            amount=amount,
            kind=TxKind.ACHIEVEMENT,
            key=key,
            actor_id=None,
            reason=reason,
            breakdown=Breakdown(base=amount, result=amount, tag=tag),
        )
        return self._append(conn, posting, posting.fingerprint(), None, state)

    def _compensate(
        self, conn: sqlite3.Connection, state: _BatchState, tx_id: int, key: str, reason: str
    ) -> Transaction | None:
        """Revert a reward whose achievement was revoked; None if an admin already did."""
        reversal = Reversal(tx_id, key, None, reason)
        try:
            posting, original = self._reversal_posting(conn, reversal)
        except RevertError:
            return None
        return self._append(conn, posting, reversal.fingerprint(), original, state)


@dataclass(slots=True)
class _BatchState:
    next_id: int
