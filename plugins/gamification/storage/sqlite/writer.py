"""The write path: one batch of operations applied as one SQLite transaction.

Everything here is synchronous and runs on the write connection's own thread, so a
batch of any size costs the event loop a single await (see LedgerStore).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.errors import (
    N_,
    GamificationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    RevertError,
    StorageError,
    TransactionNotFoundError,
)
from plugins.gamification.domain.models import Breakdown, Receipt, Transaction, TxKind
from plugins.gamification.storage.hashing import chain_hash
from plugins.gamification.storage.operations import (
    ACCOUNT_CACHE,
    MAX_BALANCE,
    Operation,
    Outcome,
    Posting,
    Reversal,
    SideWrite,
)
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.storage.sqlite.effects import Effects
from plugins.gamification.storage.sqlite.queries import SELECT_LAST_ID
from plugins.gamification.storage.sqlite.rows import (
    INSERT_TX,
    SELECT_ACCOUNT,
    SELECT_REVERT_OF,
    SELECT_TX_BY_ID,
    SELECT_TX_BY_KEY,
    UPSERT_ACCOUNT,
    AccountRow,
    row_to_transaction,
)
from plugins.gamification.storage.sqlite.sidetables import INSERT_ADMIN_ACTION

log = logging.getLogger(__name__)


class BatchWriter:
    """Applies batches on one sqlite3 connection that is in autocommit mode."""

    def __init__(
        self,
        now: Callable[[], datetime],
        effects: Effects | None = None,
        cached_accounts: int = ACCOUNT_CACHE,
    ) -> None:
        self._now = now
        self._effects = effects
        # The account rows this writer last wrote, so an award need not read its account
        # back. The database stays the truth: the cache is emptied whenever another
        # connection has committed (PRAGMA data_version) and whenever anything of a batch
        # is rolled back, and an account's entry is dropped when effects write its row.
        self._accounts: dict[tuple[int, int], AccountRow] = {}
        self._cached_accounts = cached_accounts
        self._data_version: int | None = None

    def apply(self, conn: sqlite3.Connection, ops: Sequence[Operation]) -> list[Outcome]:
        """BEGIN IMMEDIATE, every op, one COMMIT; each op succeeds or fails on its own.

        A refused op almost always fails before it writes anything, so the fast path runs
        without savepoints and checks that with `total_changes`. An op that fails after
        writing sends the batch, rolled back, through the careful path: each op inside
        its own savepoint. Either way a refused or failing op becomes that caller's error
        and the rest of the batch commits. If BEGIN or COMMIT fails, the exception
        propagates and nothing of the batch is written.
        """
        try:
            return self._run(conn, ops, careful=False)
        except _HalfWritten:
            return self._run(conn, ops, careful=True)

    def _run(
        self, conn: sqlite3.Connection, ops: Sequence[Operation], *, careful: bool
    ) -> list[Outcome]:
        if conn.in_transaction:
            # A ROLLBACK that itself failed left the last batch open (and the write lock
            # held); end it now, or every batch from here on would fail to BEGIN.
            conn.execute("ROLLBACK")
            self._accounts.clear()
        try:
            conn.execute("BEGIN IMMEDIATE")
            (version,) = conn.execute("PRAGMA data_version").fetchone()
            if version != self._data_version:
                # Another connection committed since our last batch (a repair, a restore):
                # the rows it may have changed are read afresh.
                self._accounts.clear()
                self._data_version = version
            (last_id,) = conn.execute(SELECT_LAST_ID).fetchone()
            # One moment for the whole batch: its transactions commit together.
            moment = self._now()
            state = _BatchState(last_id + 1, moment, format_utc(moment))
            outcomes: list[Outcome] = []
            for op in ops:
                if careful:
                    conn.execute("SAVEPOINT op")
                changes = conn.total_changes
                try:
                    outcome: Outcome = self._apply_one(conn, op, state)
                except sqlite3.OperationalError:
                    # Disk, I/O or lock trouble: the database cannot take this batch, so it
                    # fails as a whole (rolled back below) and every caller hears of it.
                    raise
                except Exception as exc:
                    if not careful and conn.total_changes != changes:
                        raise _HalfWritten from exc
                    if careful:
                        conn.execute("ROLLBACK TO op")
                        self._accounts.clear()
                    if isinstance(exc, GamificationError):
                        outcome = exc
                    else:
                        # A bug or a damaged row hit one op: its writes are undone, the
                        # others go on.
                        log.exception("ledger operation %r failed", op)
                        outcome = StorageError(f"The operation could not be recorded ({exc}).")
                if careful:
                    conn.execute("RELEASE op")
                outcomes.append(outcome)
            conn.execute("COMMIT")
        except BaseException:
            self._accounts.clear()
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
        if isinstance(op, Reversal):
            # A revert's checks (already reverted?) would refuse its own retry, so the key
            # is looked up first; reverts are rare.
            fingerprint = op.fingerprint()
            repeated = self._repeat(conn, op.key, fingerprint)
            if repeated is not None:
                return repeated
            posting, original = self._reversal_posting(conn, op)
            tx = self._append(conn, posting, fingerprint, original, state)
            if op.audit is not None:
                self._audit(conn, tx, op.audit, state)
            return Receipt(tx)
        breakdown = op.breakdown_json or op.breakdown.to_json()
        fingerprint = op.request or op.fingerprint(breakdown)
        # Optimistic: a new key is the common case, so the insert itself detects a repeat
        # (UNIQUE on idem_key) instead of a lookup before every award.
        try:
            tx = self._append(conn, op, fingerprint, None, state, breakdown)
            if op.audit is not None:
                self._audit(conn, tx, op.audit, state)
            return Receipt(tx)
        except _KeyTaken as taken:
            if taken.key != op.key:
                raise
        except GamificationError:
            # A refusal (say an overdraft) of a request that was already granted is a retry.
            repeated = self._repeat(conn, op.key, fingerprint)
            if repeated is not None:
                return repeated
            raise
        repeated = self._repeat(conn, op.key, fingerprint)
        assert repeated is not None
        return repeated

    @staticmethod
    def _audit(
        conn: sqlite3.Connection, tx: Transaction, note: AuditNote, state: _BatchState
    ) -> None:
        """The admin's audit row, in the transaction's own savepoint and commit: a failure
        here undoes the change too, so neither exists without the other."""
        conn.execute(
            INSERT_ADMIN_ACTION,
            (tx.chat_id, tx.actor_id, note.action, tx.user_id, note.detail, state.stamp),
        )

    @staticmethod
    def _repeat(conn: sqlite3.Connection, key: str, fingerprint: str) -> Receipt | None:
        """The first receipt of `key`, a conflict if it was for something else, or None."""
        existing = conn.execute(SELECT_TX_BY_KEY, (key,)).fetchone()
        if existing is None:
            return None
        if existing[-1] != fingerprint:
            raise IdempotencyConflictError(
                N_("The key {key!r} was already used for a different operation."), key=key
            )
        return Receipt(row_to_transaction(existing[:-1]), duplicate=True)

    def _reversal_posting(
        self, conn: sqlite3.Connection, op: Reversal
    ) -> tuple[Posting, Transaction]:
        found = conn.execute(SELECT_TX_BY_ID, (op.tx_id,)).fetchone()
        if found is None or (op.chat_id is not None and found[1] != op.chat_id):
            raise TransactionNotFoundError(
                N_("There is no transaction #{tx_id} here."), tx_id=op.tx_id
            )
        original = row_to_transaction(found)
        if original.kind is TxKind.REVERT:
            raise RevertError(
                N_("Transaction #{tx_id} is itself a revert and cannot be reverted."),
                tx_id=op.tx_id,
            )
        earlier = conn.execute(SELECT_REVERT_OF, (op.tx_id,)).fetchone()
        if earlier is not None:
            raise RevertError(
                N_("Transaction #{tx_id} was already reverted by #{revert_id}."),
                tx_id=op.tx_id,
                revert_id=earlier[0],
            )
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
        breakdown: str | None = None,
    ) -> Transaction:
        if p.amount == 0:
            raise InvalidAmountError(N_("The amount must not be zero."))
        account = (p.chat_id, p.user_id)
        before = self._accounts.pop(account, None)
        if before is None:
            found = conn.execute(SELECT_ACCOUNT, account).fetchone()
            before = AccountRow(*found) if found else AccountRow()
        new_balance = before.balance + p.amount
        if p.amount < 0 and new_balance < 0 and not p.allow_negative:
            raise InsufficientBalanceError(
                N_("The balance is {balance:,}; taking {amount:,} would put it below zero."),
                balance=before.balance,
                amount=-p.amount,
            )
        if abs(new_balance) > MAX_BALANCE:
            raise InvalidAmountError(N_("The balance would leave the supported range."))
        if p.day_limit is not None and self._effects is not None:
            self._effects.check_day_limit(p, before, state.moment)
        earned = before.earned
        if p.kind is TxKind.REVERT:
            earned -= max(-p.amount, 0)
        elif p.amount > 0:
            earned += p.amount
        moment, now = state.moment, state.stamp
        tx_id, seq = state.next_id, before.seq + 1
        reverts_id = original.id if original is not None else None
        breakdown = breakdown if breakdown is not None else p.breakdown.to_json()
        digest = chain_hash(
            before.head,
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
        try:
            conn.execute(
                INSERT_TX,
                (
                    tx_id, p.chat_id, p.user_id, seq, p.amount, new_balance, p.kind.value,
                    p.key, p.actor_id, p.reason, breakdown, now, reverts_id, before.head,
                    digest, fingerprint,
                ),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            if "idem_key" in str(exc):
                raise _KeyTaken(p.key) from None
            raise
        tx = Transaction(
            id=tx_id,
            chat_id=p.chat_id,
            user_id=p.user_id,
            seq=seq,
            amount=p.amount,
            balance_after=new_balance,
            kind=p.kind,
            key=p.key,
            actor_id=p.actor_id,
            reason=p.reason,
            breakdown=p.breakdown,
            created_at=moment,
            reverts_id=reverts_id,
            prev_hash=before.head,
            hash=digest,
        )
        after = before.moved(new_balance, earned, seq, digest)
        if self._effects is not None:
            after = self._effects.streak(tx, after)
        conn.execute(
            UPSERT_ACCOUNT,
            (
                p.chat_id, p.user_id, new_balance, earned, seq, digest, now, after.streak_day,
                after.streak_length, after.streak_best, after.achievements, after.activity_day,
                after.activity_today,
            ),
        )  # fmt: skip
        state.next_id = tx_id + 1
        accounts = self._accounts
        if len(accounts) >= self._cached_accounts:
            # The least recently written account goes: a hit is popped and put back last.
            del accounts[next(iter(accounts))]
        accounts[account] = after
        if self._effects is not None:
            self._effects.after_append(
                conn,
                tx,
                before,
                after,
                original,
                append=lambda *reward: self._reward(conn, state, *reward),
                revert=lambda *revoked: self._compensate(conn, state, *revoked),
                forget=lambda *key: accounts.pop(key, None),
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
        breakdown = posting.breakdown.to_json()
        return self._append(conn, posting, posting.fingerprint(breakdown), None, state, breakdown)

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


class _HalfWritten(Exception):
    """An op failed after writing: the batch must be redone with a savepoint per op."""


class _KeyTaken(Exception):
    """The idempotency key of the transaction being inserted is already in the ledger."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(slots=True)
class _BatchState:
    next_id: int
    moment: datetime
    # `moment` as stored: formatted once per batch, not once per row.
    stamp: str
