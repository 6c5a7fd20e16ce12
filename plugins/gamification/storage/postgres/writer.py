"""The write path on PostgreSQL: one batch of operations applied as one transaction.

Several processes may write the same ledger at once. A batch:

1. takes the ledger's advisory lock (schema.LEDGER_LOCK) for its transaction: writers of
   every process queue on that one lock, so transaction ids (max + 1, as on SQLite) and
   outbox ids follow commit order, which the checkpoints' high-water mark and the relay's
   commit-order delivery rely on;
2. locks the accounts it touches in (chat_id, user_id) order (`FOR UPDATE`), so a session
   that writes accounts without the advisory lock cannot interleave either; with one
   lock order there is no deadlock by construction;
3. reads, in a constant number of round trips, everything the batch's rules look at: the
   accounts, their progress counters, the idempotency keys it uses, and (for reverts) the
   originals, their reverts and the unlocks they caused;
4. applies every operation in memory with the same rules as the SQLite writer (the same
   hash chain, idempotency, overdraft and range checks, streaks, levels, achievements and
   outbox events, shared through Effects);
5. writes the rows in bulk (COPY for the transactions, one statement per other table) and
   commits once. `synchronous_commit` is on: COMMIT returned means on the server's disk.

A deadlock, serialization failure or unique violation that still happens (a session
outside the writers, a race with an operator's SQL) rolls the batch back and it is run
again from step 1, up to RETRIES times, never shown to a caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.errors import (
    N_,
    GamificationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    RequestError,
    RevertError,
    StorageError,
    TransactionNotFoundError,
)
from plugins.gamification.domain.models import Breakdown, Receipt, Transaction, TxKind
from plugins.gamification.storage.hashing import chain_hash
from plugins.gamification.storage.operations import (
    MAX_BALANCE,
    Operation,
    Outcome,
    Posting,
    Reversal,
    SideWrite,
)
from plugins.gamification.storage.postgres.connect import (
    RETRYABLE,
    CommitInDoubt,
    is_connection_loss,
    sqlstate,
)
from plugins.gamification.storage.postgres.schema import LEDGER_LOCK
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.storage.sqlite.effects import Effects
from plugins.gamification.storage.sqlite.rows import AccountRow, row_to_transaction

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

# How often a batch that met a deadlock, a serialization failure or a unique violation is
# run again before its callers hear of it (as a transient fault).
RETRIES = 8

# Every statement is a complete literal with $n parameters, never assembled at run time.
TAKE_LEDGER_LOCK = "SELECT pg_advisory_xact_lock($1)"
SELECT_LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM transactions"
SELECT_TX_BY_KEYS = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash, request_hash FROM transactions"
    " WHERE idem_key = ANY($1::text[])"
)
SELECT_TX_BY_IDS = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash FROM transactions"
    " WHERE id = ANY($1::bigint[])"
)
SELECT_REVERTS_OF = "SELECT reverts_id, id FROM transactions WHERE reverts_id = ANY($1::bigint[])"
SELECT_CAUSED = (
    "SELECT chat_id, user_id, achievement, unlocked_at, cause_tx_id, reward_tx_id"
    " FROM unlocks WHERE cause_tx_id = ANY($1::bigint[]) AND revoked_tx_id IS NULL"
)
LOCK_ACCOUNTS = (
    "SELECT a.chat_id, a.user_id, a.balance, a.earned, a.seq, a.head_hash, a.streak_day,"
    " a.streak_length, a.streak_best, a.achievements, a.activity_day, a.activity_today"
    " FROM accounts AS a JOIN unnest($1::bigint[], $2::bigint[]) AS k (chat_id, user_id)"
    " ON a.chat_id = k.chat_id AND a.user_id = k.user_id"
    " ORDER BY a.chat_id, a.user_id FOR UPDATE OF a"
)
SELECT_COUNTERS = (
    "SELECT p.chat_id, p.user_id, p.name, p.value FROM progress AS p"
    " JOIN unnest($1::bigint[], $2::bigint[]) AS k (chat_id, user_id)"
    " ON p.chat_id = k.chat_id AND p.user_id = k.user_id WHERE p.name = ANY($3::text[])"
)
TX_COPY_COLUMNS = (
    "id", "chat_id", "user_id", "seq", "amount", "balance_after", "kind", "idem_key",
    "request_hash", "actor_id", "reason", "breakdown", "created_at", "reverts_id",
    "prev_hash", "hash",
)  # fmt: skip
UPSERT_ACCOUNTS = (
    "INSERT INTO accounts (chat_id, user_id, balance, earned, seq, head_hash, updated_at,"
    " streak_day, streak_length, streak_best, achievements, activity_day, activity_today)"
    " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],"
    " $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[],"
    " $11::text[], $12::text[], $13::bigint[])"
    " ON CONFLICT (chat_id, user_id) DO UPDATE SET balance = excluded.balance,"
    " earned = excluded.earned, seq = excluded.seq, head_hash = excluded.head_hash,"
    " updated_at = excluded.updated_at, streak_day = excluded.streak_day,"
    " streak_length = excluded.streak_length, streak_best = excluded.streak_best,"
    " achievements = excluded.achievements, activity_day = excluded.activity_day,"
    " activity_today = excluded.activity_today"
)
# COPY takes outbox ids from the identity row by row, in the order given: commit order,
# which the relay delivers by. Every event id the writer makes names a transaction of this
# batch (or an unlock caused by one), so none can be in the outbox already.
OUTBOX_COPY_COLUMNS = ("event_id", "type", "chat_id", "user_id", "payload", "occurred_at")
UPSERT_COUNTERS = (
    "INSERT INTO progress (chat_id, user_id, name, value)"
    " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[])"
    " ON CONFLICT (chat_id, user_id, name) DO UPDATE SET value = excluded.value"
)
UPSERT_UNLOCKS = (
    "INSERT INTO unlocks (chat_id, user_id, achievement, unlocked_at, cause_tx_id,"
    " reward_tx_id, revoked_tx_id)"
    " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],"
    " $5::bigint[], $6::bigint[], $7::bigint[])"
    " ON CONFLICT (chat_id, user_id, achievement) DO UPDATE SET"
    " unlocked_at = excluded.unlocked_at, cause_tx_id = excluded.cause_tx_id,"
    " reward_tx_id = excluded.reward_tx_id, revoked_tx_id = excluded.revoked_tx_id"
)
INSERT_AUDIT = (
    "INSERT INTO admin_actions (chat_id, actor_id, action, target_id, detail, created_at)"
    " SELECT c, a, k, t, d, w FROM unnest($1::bigint[], $2::bigint[], $3::text[],"
    " $4::bigint[], $5::text[], $6::text[]) WITH ORDINALITY AS x (c, a, k, t, d, w, n)"
    " ORDER BY n"
)

Account = tuple[int, int]


@dataclass(slots=True)
class _Unlock:
    """An unlocks row as the batch leaves it."""

    unlocked_at: str
    cause_tx_id: int
    reward_tx_id: int | None = None
    revoked_tx_id: int | None = None


@dataclass(slots=True)
class _Loaded:
    """What the batch read under its locks: the state every attempt of the batch starts from."""

    last_id: int
    accounts: dict[Account, AccountRow]
    counters: dict[tuple[int, int, str], int]
    # idem_key -> (transaction, request fingerprint)
    keys: dict[str, tuple[Transaction, str]]
    txs: dict[int, Transaction]
    # original id -> id of the transaction reverting it
    reverted: dict[int, int]
    # cause tx id -> [(account, achievement)] of unlocks it caused, not revoked
    caused: dict[int, list[tuple[Account, str]]]
    unlocks: dict[tuple[int, int, str], _Unlock]


@dataclass(slots=True)
class _State:
    """The batch applied in memory: the loaded state plus everything written so far."""

    loaded: _Loaded
    moment: datetime
    stamp: str
    next_id: int
    accounts: dict[Account, AccountRow]
    counters: dict[tuple[int, int, str], int]
    keys: dict[str, tuple[Transaction, str]]
    txs: dict[int, Transaction]
    reverted: dict[int, int]
    caused: dict[int, list[tuple[Account, str]]]
    unlocks: dict[tuple[int, int, str], _Unlock]
    new_txs: list[tuple[object, ...]] = field(default_factory=list)
    outbox: list[tuple[str, str, int, int, str, str]] = field(default_factory=list)
    audits: list[tuple[int, int | None, str, int, str, str]] = field(default_factory=list)
    touched_accounts: set[Account] = field(default_factory=set)
    touched_counters: set[tuple[int, int, str]] = field(default_factory=set)
    touched_unlocks: set[tuple[int, int, str]] = field(default_factory=set)
    # Bumped by every write, so a failing operation that wrote something is noticed.
    writes: int = 0

    @classmethod
    def start(cls, loaded: _Loaded, moment: datetime) -> _State:
        return cls(
            loaded, moment, format_utc(moment), loaded.last_id + 1, dict(loaded.accounts),
            dict(loaded.counters), dict(loaded.keys), dict(loaded.txs), dict(loaded.reverted),
            {k: list(v) for k, v in loaded.caused.items()},
            {k: _Unlock(u.unlocked_at, u.cause_tx_id, u.reward_tx_id, u.revoked_tx_id)
             for k, u in loaded.unlocks.items()},
        )  # fmt: skip


class PgBatchWriter:
    """Applies batches of operations to the PostgreSQL ledger (see the module's docstring)."""

    def __init__(self, now: Callable[[], datetime], effects: Effects | None = None) -> None:
        self._now = now
        self._effects = effects

    async def apply(self, conn: asyncpg.Connection, ops: Sequence[Operation]) -> list[Outcome]:
        """One transaction for the whole batch; each op succeeds or fails on its own.

        A refused or failing op becomes that caller's error and the rest of the batch
        commits. Connection trouble or a server error failing the whole batch propagates;
        then nothing of the batch is committed unless COMMIT itself was lost in transit
        (the callers' idempotency keys make their retries safe either way): a connection
        lost during COMMIT is raised as CommitInDoubt.
        """
        attempt = 0
        while True:
            committing = False
            try:
                async with conn.transaction():
                    outcomes = await self._batch(conn, ops)
                    committing = True
                return outcomes
            except Exception as exc:
                if committing and is_connection_loss(exc):
                    raise CommitInDoubt(exc) from exc
                attempt += 1
                if sqlstate(exc) not in RETRYABLE or attempt >= RETRIES:
                    raise
                log.info("ledger batch retried after %s (attempt %d)", sqlstate(exc), attempt)
                await asyncio.sleep(0.002 * 2**attempt)

    async def _batch(self, conn: asyncpg.Connection, ops: Sequence[Operation]) -> list[Outcome]:
        await conn.execute(TAKE_LEDGER_LOCK, LEDGER_LOCK)
        loaded = await self._load(conn, ops)
        moment = self._now()
        # An op that fails after writing in memory is left out and the batch is applied
        # again from the loaded state: the failed op's writes are gone, the others redone.
        failed: dict[int, GamificationError] = {}
        while True:
            state = _State.start(loaded, moment)
            outcomes: list[Outcome] = []
            side: list[tuple[int, SideWrite]] = []
            retry = False
            for index, op in enumerate(ops):
                if index in failed:
                    outcomes.append(failed[index])
                    continue
                if isinstance(op, SideWrite):
                    side.append((index, op))
                    outcomes.append(None)
                    continue
                writes = state.writes
                try:
                    outcomes.append(self._apply_one(op, state))
                except Exception as exc:
                    error = _as_outcome(exc, op)
                    if state.writes != writes:
                        failed[index] = error
                        retry = True
                        break
                    outcomes.append(error)
            if not retry:
                break
        await self._flush(conn, state)
        for index, op in side:
            outcomes[index] = await _side_write(conn, op)
        return outcomes

    # -- reading what the batch needs -------------------------------------------------

    async def _load(self, conn: asyncpg.Connection, ops: Sequence[Operation]) -> _Loaded:
        keys = [op.key for op in ops if not isinstance(op, SideWrite)]
        found: dict[str, tuple[Transaction, str]] = {}
        if keys:
            for row in await conn.fetch(SELECT_TX_BY_KEYS, keys):
                found[row[7]] = (row_to_transaction(tuple(row)[:15]), row[15])
        txs: dict[int, Transaction] = {}
        reverted: dict[int, int] = {}
        caused: dict[int, list[tuple[Account, str]]] = {}
        unlocks: dict[tuple[int, int, str], _Unlock] = {}
        # Reverts read their originals, whether those were reverted already, the unlocks
        # they caused and those unlocks' rewards, which a revert undoes in turn.
        frontier = {op.tx_id for op in ops if isinstance(op, Reversal)}
        while frontier:
            for row in await conn.fetch(SELECT_TX_BY_IDS, list(frontier)):
                txs[row[0]] = row_to_transaction(tuple(row))
            for original, revert in await conn.fetch(SELECT_REVERTS_OF, list(frontier)):
                reverted[original] = revert
            rewards: set[int] = set()
            for chat, user, achievement, at, cause, reward in await conn.fetch(
                SELECT_CAUSED, list(frontier)
            ):
                caused.setdefault(cause, []).append(((chat, user), achievement))
                unlocks[(chat, user, achievement)] = _Unlock(at, cause, reward)
                if reward is not None:
                    rewards.add(reward)
            frontier = rewards - txs.keys()
        accounts = {(op.chat_id, op.user_id) for op in ops if isinstance(op, Posting)} | {
            (tx.chat_id, tx.user_id) for tx in txs.values()
        }
        ordered = sorted(accounts)
        chats, users = [a[0] for a in ordered], [a[1] for a in ordered]
        rows: dict[Account, AccountRow] = {}
        if ordered:
            for row in await conn.fetch(LOCK_ACCOUNTS, chats, users):
                rows[(row[0], row[1])] = AccountRow(*tuple(row)[2:])
        counters: dict[tuple[int, int, str], int] = {}
        tracked = self._tracked()
        if ordered and tracked:
            for chat, user, name, value in await conn.fetch(
                SELECT_COUNTERS, chats, users, tracked
            ):
                counters[(chat, user, name)] = value
        last_id = int(await conn.fetchval(SELECT_LAST_ID))
        return _Loaded(last_id, rows, counters, found, txs, reverted, caused, unlocks)

    def _tracked(self) -> list[str]:
        return [] if self._effects is None else sorted(self._effects.tracked_counters)

    # -- applying one operation in memory (the SQLite writer's rules) ---------------------

    def _apply_one(self, op: Posting | Reversal, state: _State) -> Receipt:
        if isinstance(op, Reversal):
            fingerprint = op.fingerprint()
            repeated = _repeat(state, op.key, fingerprint)
            if repeated is not None:
                return repeated
            _storable(op.key, op.reason)
            _auditable(op)
            posting, original = _reversal_posting(state, op)
            tx = self._append(state, posting, fingerprint, original)
            if op.audit is not None:
                _audit(state, tx, op.audit)
            return Receipt(tx)
        breakdown = op.breakdown_json or op.breakdown.to_json()
        fingerprint = op.request or op.fingerprint(breakdown)
        repeated = _repeat(state, op.key, fingerprint)
        if repeated is not None:
            return repeated
        _storable(op.key, op.reason)
        _auditable(op)
        tx = self._append(state, op, fingerprint, None, breakdown)
        if op.audit is not None:
            _audit(state, tx, op.audit)
        return Receipt(tx)

    def _append(
        self,
        state: _State,
        p: Posting,
        fingerprint: str,
        original: Transaction | None,
        breakdown: str | None = None,
    ) -> Transaction:
        if p.amount == 0:
            raise InvalidAmountError(N_("The amount must not be zero."))
        account = (p.chat_id, p.user_id)
        before = state.accounts.get(account) or AccountRow()
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
            # Under the account's row lock: no other process's batch can pass it meanwhile.
            self._effects.check_day_limit(p, before, state.moment)
        if p.key in state.keys:
            # A reward's or compensation's own key met again: never two rows for one key.
            raise IdempotencyConflictError(N_("The key {key!r} was already used."), key=p.key)
        earned = before.earned
        if p.kind is TxKind.REVERT:
            earned -= max(-p.amount, 0)
        elif p.amount > 0:
            earned += p.amount
        tx_id, seq = state.next_id, before.seq + 1
        reverts_id = original.id if original is not None else None
        breakdown = breakdown if breakdown is not None else p.breakdown.to_json()
        digest = chain_hash(
            before.head, tx_id=tx_id, chat_id=p.chat_id, user_id=p.user_id, seq=seq,
            amount=p.amount, balance_after=new_balance, kind=p.kind.value, idem_key=p.key,
            actor_id=p.actor_id, reason=p.reason, breakdown=breakdown, created_at=state.stamp,
            reverts_id=reverts_id,
        )  # fmt: skip
        tx = Transaction(
            id=tx_id, chat_id=p.chat_id, user_id=p.user_id, seq=seq, amount=p.amount,
            balance_after=new_balance, kind=p.kind, key=p.key, actor_id=p.actor_id,
            reason=p.reason, breakdown=p.breakdown, created_at=state.moment,
            reverts_id=reverts_id, prev_hash=before.head, hash=digest,
        )  # fmt: skip
        state.writes += 1
        state.new_txs.append(
            (tx_id, p.chat_id, p.user_id, seq, p.amount, new_balance, p.kind.value, p.key,
             fingerprint, p.actor_id, p.reason, breakdown, state.stamp, reverts_id,
             before.head, digest)
        )  # fmt: skip
        state.next_id = tx_id + 1
        state.keys[p.key] = (tx, fingerprint)
        state.txs[tx_id] = tx
        if reverts_id is not None:
            state.reverted[reverts_id] = tx_id
        after = before.moved(new_balance, earned, seq, digest)
        effects = self._effects
        if effects is not None:
            after = effects.streak(tx, after)
        state.accounts[account] = after
        state.touched_accounts.add(account)
        if effects is not None:
            self._effects_of(effects, state, tx, before, after, original)
        return tx

    # -- what a transaction sets off (Effects.after_append, in memory) --------------------

    def _effects_of(
        self,
        effects: Effects,
        state: _State,
        tx: Transaction,
        before: AccountRow,
        after: AccountRow,
        original: Transaction | None,
    ) -> None:
        state.outbox.append(effects.outbox_row(*effects.points_event(tx, before.balance)))
        if tx.kind is TxKind.REVERT and original is not None:
            _count(effects, state, original, -1)
            self._revoke(effects, state, tx, original)
            return
        counters = _count(effects, state, tx, +1)
        level = effects.level_event(tx, before.earned, after.earned)
        if level is not None:
            state.outbox.append(effects.outbox_row(*level))
        if effects.rules.achievements and tx.amount > 0:
            self._unlock(effects, state, tx, after, counters)

    def _unlock(
        self,
        effects: Effects,
        state: _State,
        tx: Transaction,
        after: AccountRow,
        counters: dict[str, int],
    ) -> None:
        due = effects.due(after, counters)
        account = (tx.chat_id, tx.user_id)
        for spec in due:
            # Rewards run these effects again and may unlock more: the account as it is
            # now says what is unlocked.
            current = state.accounts[account]
            taken = current.unlocked()
            if spec.id in taken:
                continue
            key = (tx.chat_id, tx.user_id, spec.id)
            state.unlocks[key] = _Unlock(state.stamp, tx.id)
            state.touched_unlocks.add(key)
            state.caused.setdefault(tx.id, []).append((account, spec.id))
            state.accounts[account] = current._replace(
                achievements=",".join(sorted(taken | {spec.id}))
            )
            state.writes += 1
            reward_tx_id = None
            if spec.reward:
                posting = Posting(
                    chat_id=tx.chat_id, user_id=tx.user_id, amount=spec.reward,
                    kind=TxKind.ACHIEVEMENT, key=effects.reward_key(tx, spec), actor_id=None,
                    reason=f"achievement: {spec.title}",
                    breakdown=Breakdown(base=spec.reward, result=spec.reward, tag=spec.id),
                )  # fmt: skip
                text = posting.breakdown.to_json()
                reward = self._append(state, posting, posting.fingerprint(text), None, text)
                reward_tx_id = reward.id
                state.unlocks[key].reward_tx_id = reward.id
            state.outbox.append(effects.outbox_row(*effects.unlock_event(tx, spec, reward_tx_id)))

    def _revoke(
        self, effects: Effects, state: _State, tx: Transaction, original: Transaction
    ) -> None:
        for account, achievement in list(state.caused.get(original.id, ())):
            key = (account[0], account[1], achievement)
            unlock = state.unlocks[key]
            if unlock.revoked_tx_id is not None or unlock.cause_tx_id != original.id:
                continue
            unlock.revoked_tx_id = tx.id
            state.touched_unlocks.add(key)
            current = state.accounts[(tx.chat_id, tx.user_id)]
            state.accounts[(tx.chat_id, tx.user_id)] = current._replace(
                achievements=",".join(sorted(current.unlocked() - {achievement}))
            )
            state.writes += 1
            if unlock.reward_tx_id is not None:
                self._compensate(
                    state, unlock.reward_tx_id, f"revoke:{unlock.reward_tx_id}",
                    f"{achievement} revoked",
                )  # fmt: skip
            state.outbox.append(
                effects.outbox_row(*effects.revoke_event(tx, original, achievement))
            )

    def _compensate(self, state: _State, tx_id: int, key: str, reason: str) -> None:
        """Revert a reward whose achievement was revoked, unless an admin already did."""
        reversal = Reversal(tx_id, key, None, reason)
        try:
            posting, original = _reversal_posting(state, reversal)
        except RevertError:
            return
        self._append(state, posting, reversal.fingerprint(), original)

    # -- writing the batch ----------------------------------------------------------------

    async def _flush(self, conn: asyncpg.Connection, state: _State) -> None:
        if state.new_txs:
            await conn.copy_records_to_table(
                "transactions", records=state.new_txs, columns=TX_COPY_COLUMNS
            )
        if state.touched_accounts:
            rows = [(a, state.accounts[a]) for a in sorted(state.touched_accounts)]
            accounts = (
                (c, u, r.balance, r.earned, r.seq, r.head, state.stamp, r.streak_day,
                 r.streak_length, r.streak_best, r.achievements, r.activity_day,
                 r.activity_today)
                for (c, u), r in rows
            )  # fmt: skip
            await conn.execute(UPSERT_ACCOUNTS, *_columns(accounts, 13))
        if state.touched_counters:
            await conn.execute(
                UPSERT_COUNTERS,
                *_columns(((c, u, n, state.counters[(c, u, n)])
                           for c, u, n in sorted(state.touched_counters)), 4),
            )  # fmt: skip
        if state.touched_unlocks:
            unlocks = [(k, state.unlocks[k]) for k in sorted(state.touched_unlocks)]
            await conn.execute(
                UPSERT_UNLOCKS,
                *_columns(((c, u, a, x.unlocked_at, x.cause_tx_id, x.reward_tx_id,
                            x.revoked_tx_id) for (c, u, a), x in unlocks), 7),
            )  # fmt: skip
        if state.outbox:
            await conn.copy_records_to_table(
                "outbox", records=state.outbox, columns=OUTBOX_COPY_COLUMNS
            )
        if state.audits:
            await conn.execute(INSERT_AUDIT, *_columns(state.audits, 6))


def _columns(rows: Iterable[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column: the arrays an unnest() insert takes."""
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _count(effects: Effects, state: _State, tx: Transaction, step: int) -> dict[str, int]:
    """Move the counters `tx` feeds by `step`; their new values (Effects._count in memory)."""
    if tx.amount <= 0:
        return {}
    values = {}
    for name in effects.counter_names(tx):
        if not effects.tracks(name):
            continue
        key = (tx.chat_id, tx.user_id, name)
        value = state.counters.get(key, 0) + step
        state.counters[key] = value
        state.touched_counters.add(key)
        state.writes += 1
        values[name] = value
    return values


def _repeat(state: _State, key: str, fingerprint: str) -> Receipt | None:
    """The first receipt of `key`, a conflict if it was for something else, or None."""
    existing = state.keys.get(key)
    if existing is None:
        return None
    if existing[1] != fingerprint:
        raise IdempotencyConflictError(
            N_("The key {key!r} was already used for a different operation."), key=key
        )
    return Receipt(existing[0], duplicate=True)


def _reversal_posting(state: _State, op: Reversal) -> tuple[Posting, Transaction]:
    original = state.txs.get(op.tx_id)
    if original is None or (op.chat_id is not None and original.chat_id != op.chat_id):
        raise TransactionNotFoundError(
            N_("There is no transaction #{tx_id} here."), tx_id=op.tx_id
        )
    if original.kind is TxKind.REVERT:
        raise RevertError(
            N_("Transaction #{tx_id} is itself a revert and cannot be reverted."), tx_id=op.tx_id
        )
    earlier = state.reverted.get(op.tx_id)
    if earlier is not None:
        raise RevertError(
            N_("Transaction #{tx_id} was already reverted by #{revert_id}."),
            tx_id=op.tx_id,
            revert_id=earlier,
        )
    amount = -original.amount
    return Posting(
        chat_id=original.chat_id, user_id=original.user_id, amount=amount, kind=TxKind.REVERT,
        key=op.key, actor_id=op.actor_id, reason=op.reason,
        breakdown=Breakdown(base=amount, result=amount),
        # A revert restores the truth about an earlier credit, even if the points were
        # already spent; refusing it would leave a wrong credit standing.
        allow_negative=True,
    ), original  # fmt: skip


def _audit(state: _State, tx: Transaction, note: AuditNote) -> None:
    """The admin's audit row, committed with the transaction it records."""
    state.writes += 1
    state.audits.append(
        (tx.chat_id, tx.actor_id, note.action, tx.user_id, note.detail, state.stamp)
    )


def _storable(*texts: str) -> None:
    """PostgreSQL's text cannot hold the NUL character: refuse it before anything is written."""
    if any("\x00" in text for text in texts):
        raise RequestError("The key and the reason must not contain the NUL character.")


def _auditable(op: Posting | Reversal) -> None:
    """admin_actions.actor_id is NOT NULL: an audited change without an actor is refused
    here, for this op alone (as the SQLite writer's constraint refuses it), instead of
    failing the whole batch's INSERT."""
    if op.audit is not None and op.actor_id is None:
        raise StorageError(
            "The operation could not be recorded (an audited change needs the admin's id)."
        )


async def _side_write(conn: asyncpg.Connection, op: SideWrite) -> GamificationError | None:
    """Side-table statements in a savepoint of their own: a failure is this op's alone."""
    try:
        async with conn.transaction():
            for sql, params in op.statements:
                await conn.execute(sql, *params)
    except Exception as exc:
        if sqlstate(exc) in RETRYABLE or not sqlstate(exc):
            raise
        log.warning("a side-table write failed: %s", exc)
        return StorageError(f"The write could not be recorded ({str(exc).splitlines()[0]}).")
    return None


def _as_outcome(exc: Exception, op: Operation) -> GamificationError:
    if isinstance(exc, GamificationError):
        return exc
    # A bug or a damaged row hit one op: its writes are undone, the others go on.
    log.exception("ledger operation %r failed", op)
    return StorageError(f"The operation could not be recorded ({exc}).")
