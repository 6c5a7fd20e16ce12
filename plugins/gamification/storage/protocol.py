"""LedgerStorage: everything the engine, services, relay and operator tools ask of a ledger.

The one boundary of storage. `LedgerStore` (SQLite) implements it; a second backend
implements the same methods and passes the same contract tests. Callers outside the
ledger package use these methods only: no SQL, no connection, no file name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal, Protocol, TextIO

from plugins.gamification.domain.clock import Clock
from plugins.gamification.domain.models import AccountBalance, Receipt, Transaction
from plugins.gamification.storage.health import StorageHealth, WriterStats
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.operations import Posting, Reversal
from plugins.gamification.storage.rebuild import BalanceDifference
from plugins.gamification.storage.records import (
    AdminAction,
    AuditEntry,
    KnownPerson,
    OutboxEvent,
    OutboxRow,
    ProgressRow,
    TodayRow,
)


class LedgerStorage(Protocol):
    """A points ledger: one serialised writer, readers beside it (see DESIGN: the contract)."""

    # -- life cycle and monitoring ------------------------------------------------------

    # Called after every committed batch (the outbox relay's wake-up); must not block.
    on_commit: Callable[[], None] | None

    @property
    def health(self) -> StorageHealth: ...

    @property
    def stats(self) -> WriterStats: ...

    @property
    def queue_depth(self) -> int: ...

    async def open(self) -> LedgerStorage: ...

    async def close(self) -> None: ...

    # -- writing ------------------------------------------------------------------------

    def submit(self, op: Posting | Reversal) -> Awaitable[Receipt]:
        """Queue one operation; the awaitable resolves once its batch is committed.

        A Posting or Reversal may carry an AuditNote: its admin_actions row is written in
        the same transaction, and not at all when the key is a repeat.
        """
        ...

    # -- reading the ledger -------------------------------------------------------------

    async def balance(self, chat_id: int, user_id: int) -> AccountBalance: ...

    async def history(
        self, chat_id: int, user_id: int, limit: int, before_seq: int | None = None
    ) -> list[Transaction]: ...

    async def transaction(self, tx_id: int) -> Transaction | None: ...

    async def transaction_by_key(self, key: str) -> Transaction | None:
        """The transaction written under idempotency key `key`, if any."""
        ...

    async def last_transaction_id(self) -> int: ...

    async def standings(
        self, chat_id: int, since: str | None, limit: int
    ) -> list[tuple[int, int]]: ...

    async def standing_of(
        self, chat_id: int, user_id: int, since: str | None
    ) -> tuple[int, int] | None: ...

    async def progress(self, chat_id: int, user_id: int) -> ProgressRow: ...

    async def today(self, chat_id: int, user_id: int) -> TodayRow | None: ...

    # -- the outbox ---------------------------------------------------------------------

    async def outbox_lag(self) -> int: ...

    async def outbox_pending(self, limit: int) -> list[OutboxRow]: ...

    async def outbox_delivered(self, up_to_id: int, at: str) -> None: ...

    async def outbox_prune(self, keep: int) -> None: ...

    async def publish(self, event: OutboxEvent) -> None:
        """Queue one event in the outbox and wait for its COMMIT."""
        ...

    # -- tables beside the ledger -------------------------------------------------------

    async def frozen_accounts(self) -> set[tuple[int, int]]: ...

    async def freeze(
        self,
        chat_id: int,
        user_id: int,
        at: str,
        by: int | None,
        reason: str,
        audit: AdminAction | None = None,
    ) -> None: ...

    async def unfreeze(
        self, chat_id: int, user_id: int, at: str, audit: AdminAction | None = None
    ) -> None: ...

    async def record_admin_action(self, action: AdminAction, at: str) -> None: ...

    async def record_suspicion(
        self, chat_id: int, user_id: int, reason: str, detail: str, at: str, event: OutboxEvent
    ) -> None:
        """A suspicion row and its outbox event, committed together."""
        ...

    def remember_person_later(
        self, person: KnownPerson, at: str, on_failure: Callable[[], None] | None = None
    ) -> None:
        """Write who `person` is without waiting (a failure is logged and reported to
        `on_failure`; a full queue drops the write)."""
        ...

    async def known_person(self, user_id: int) -> KnownPerson | None: ...

    async def known_username(self, username: str) -> KnownPerson | None: ...

    async def thanks_between(self, chat_id: int, receiver: int, giver: int, since: str) -> int: ...

    async def first_transaction_at(self, chat_id: int) -> str | None:
        """When the chat's earliest transaction happened (as stored), or None: no rows."""
        ...

    async def last_admin_action(self, chat_id: int, action: str) -> str | None:
        """The detail of the chat's latest admin_actions row of `action`, or None."""
        ...

    async def thanks_given(self, chat_id: int, giver: int, since: str) -> int: ...

    async def claim_job_run(
        self, job: str, slot: str, claimant: str, at: str, forget_before: str
    ) -> bool:
        """Claim one scheduled run of `job` (its `slot`) for `claimant`; True only for the
        first claimant of that slot across every process sharing the ledger (again True for
        that claimant's retry). Claims made before `forget_before` are dropped with it."""
        ...

    # -- the pages on the web ------------------------------------------------------------

    async def set_web_public(
        self, chat_id: int, public: bool, at: str, audit: AdminAction
    ) -> None:
        """Record whether the chat's pages are public; the audit row commits with it."""
        ...

    async def web_public(self, chat_id: int) -> bool:
        """Whether the chat's admins made its pages public (False until they do)."""
        ...

    async def chat_known(self, chat_id: int) -> bool:
        """Whether the ledger has any account in the chat."""
        ...

    async def audit_trail(self, chat_id: int, limit: int) -> list[AuditEntry]:
        """The chat's latest admin_actions rows, newest first."""
        ...

    async def amounts_since(self, chat_id: int, user_id: int, since: str) -> list[tuple[str, int]]:
        """(created_at, amount) of the account's transactions from `since` on, in order."""
        ...

    async def chat_language(self, chat_id: int) -> str | None:
        """The language the chat's admins chose; None: none chosen."""
        ...

    async def set_chat_language(
        self, chat_id: int, language: str | None, at: str, audit: AdminAction
    ) -> None:
        """Store the chat's language (None: each person's own) with its audit row."""
        ...

    # -- the engagement rules' reads of the ledger --------------------------------------

    async def member_days(self, chat_id: int, since: str, until: str) -> list[int]:
        """Activity points of each member and UTC day with any, in [since, until)."""
        ...

    async def scored_messages(self, chat_id: int, user_id: int, since: str) -> int:
        """The member's scored messages in the chat since `since`."""
        ...

    async def engaged_by(self, chat_id: int, user_id: int, since: str) -> list[tuple[int, int]]:
        """(member, engagement bonuses) the member received from each member since `since`."""
        ...

    async def engaged_pair(self, chat_id: int, author: int, responder: int, since: str) -> int:
        """Engagement bonuses `responder` gave `author` since `since`."""
        ...

    # -- the whole ledger: integrity, checkpoints, operator tasks ------------------------

    async def check(
        self, *, record: bool = False, quick_check: bool = True, clock: Clock | None = None
    ) -> IntegrityReport:
        """Balances = sums, chains, revert links, against (and with `record`, storing) the
        latest checkpoint."""
        ...

    async def backup(self, dest: Path) -> IntegrityReport: ...

    async def export(
        self, out: TextIO, fmt: Literal["csv", "jsonl"], chat_id: int | None = None
    ) -> int: ...

    async def rebuild_balances(self, *, apply: bool, actor: str) -> list[BalanceDifference]: ...
