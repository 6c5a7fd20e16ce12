"""Moderation: freezes, suspicions, admin audit rows and the events they publish."""

from __future__ import annotations

import json
import logging
import uuid

from plugins.gamification.domain.clock import Clock, format_utc
from plugins.gamification.domain.config import AntiAbuseSection
from plugins.gamification.services.gate_state import GateState
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import AdminAction, OutboxEvent

log = logging.getLogger(__name__)


class Moderation:
    """Frozen accounts (kept in the ledger and cached in the gate, which refuses them),
    suspicions and audit rows; an admin's change and its audit row always commit in one
    transaction. With shared anti-abuse state, a freeze on one instance makes the others
    read the frozen accounts again (see GateState.frozen_changed)."""

    def __init__(
        self,
        store: LedgerStorage,
        clock: Clock,
        gate: GateState,
        retry: StorageRetry,
        settings: AntiAbuseSection,
    ) -> None:
        self._store = store
        self._clock = clock
        self._state = gate
        self._gate = gate.gate
        self._retry = retry
        self._settings = settings

    async def load(self) -> None:
        """Read the state that outlives a restart: frozen accounts."""
        self._gate.frozen = await self._store.frozen_accounts()

    async def refresh(self) -> None:
        """Read the frozen accounts again if another instance changed them."""
        await self._state.refresh_frozen()

    def is_frozen(self, chat_id: int, user_id: int) -> bool:
        return (chat_id, user_id) in self._gate.frozen

    async def flag(self, chat_id: int, user_id: int, reason: str, detail: str) -> None:
        """Record a suspicion; freeze the account when the config says so."""
        now = format_utc(self._clock.now())
        event = self.outbox_event("abuse.suspected", chat_id, user_id, {"reason": reason})
        await self._retry(
            self._store.record_suspicion, chat_id, user_id, reason, detail, now, event
        )
        log.warning("suspicious activity in chat %s by user %s: %s", chat_id, user_id, reason)
        if self._settings.auto_freeze:
            await self.freeze(chat_id, user_id, None, f"automatic: {reason}")

    async def freeze(
        self,
        chat_id: int,
        user_id: int,
        actor_id: int | None,
        reason: str,
        *,
        audit: bool = False,
    ) -> bool:
        """Freeze the account; False if it already was. With `audit`, the admin's audit row
        commits in the same transaction as the freeze."""
        await self.refresh()
        if self.is_frozen(chat_id, user_id):
            return False
        now = format_utc(self._clock.now())
        action = AdminAction(chat_id, actor_id, "freeze", user_id, reason) if audit else None
        await self._retry(self._store.freeze, chat_id, user_id, now, actor_id, reason, action)
        self._gate.frozen.add((chat_id, user_id))
        await self._state.frozen_changed()
        return True

    async def unfreeze(self, chat_id: int, user_id: int, actor_id: int | None = None) -> bool:
        """Lift a freeze; False if there was none. With `actor_id`, that admin's audit row
        commits in the same transaction."""
        await self.refresh()
        if not self.is_frozen(chat_id, user_id):
            return False
        now = format_utc(self._clock.now())
        action = None
        if actor_id is not None:
            action = AdminAction(chat_id, actor_id, "unfreeze", user_id, "")
        await self._retry(self._store.unfreeze, chat_id, user_id, now, action)
        self._gate.frozen.discard((chat_id, user_id))
        await self._state.frozen_changed()
        return True

    def outbox_event(
        self, kind: str, chat_id: int | None, user_id: int | None, payload: dict[str, object]
    ) -> OutboxEvent:
        """An event for the outbox, to commit with the write it belongs to."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
        now = format_utc(self._clock.now())
        return OutboxEvent(f"{kind}:{uuid.uuid4().hex}", kind, chat_id, user_id, body, now)

    async def publish_later(
        self, kind: str, chat_id: int | None, user_id: int | None, payload: dict[str, object]
    ) -> None:
        """Queue an event through the outbox: committed like a ledger row, relayed later."""
        await self._retry(self._store.publish, self.outbox_event(kind, chat_id, user_id, payload))

    async def audit(
        self, chat_id: int, actor_id: int, action: str, target_id: int | None, detail: str
    ) -> None:
        now = format_utc(self._clock.now())
        row = AdminAction(chat_id, actor_id, action, target_id, detail)
        await self._retry(self._store.record_admin_action, row, now)
