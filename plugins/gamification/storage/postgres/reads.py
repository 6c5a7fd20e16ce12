"""The PostgreSQL store's reads: a small pool beside the writer, each read retried once
when it met a connection the server had already dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from plugins.gamification.domain.errors import EngineClosedError
from plugins.gamification.domain.models import AccountBalance, Transaction
from plugins.gamification.storage.options import redact
from plugins.gamification.storage.postgres import connect as pg
from plugins.gamification.storage.postgres import statements as s
from plugins.gamification.storage.reading import known_person, progress_row, today_row
from plugins.gamification.storage.records import (
    AuditEntry,
    KnownPerson,
    OutboxRow,
    ProgressRow,
    TodayRow,
)
from plugins.gamification.storage.sqlite.rows import row_to_transaction

if TYPE_CHECKING:
    import asyncpg

# After a lost connection the pool opens a new one; a pause this long lets a restarting
# server's listener come back before the one retry.
RETRY_PAUSE = 0.1
POOL_CLOSE_TIMEOUT = 5.0


class PgReads:
    """Every read of the storage protocol, on the pool `_pool` (opened by the store)."""

    def __init__(self, dsn: str, *, read_timeout: float) -> None:
        self.dsn = dsn
        # The DSN as every sentence and log line names it: never with its password.
        self.where = redact(dsn)
        self._read_timeout = read_timeout
        self._pool: asyncpg.Pool | None = None

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """One statement on a pooled connection; StorageError with one sentence if not."""
        retries = 1  # a connection the server dropped shows only when used: try another
        while True:
            pool = self._pool
            if pool is None:
                raise EngineClosedError("The points ledger is closed.")
            try:
                async with pool.acquire(timeout=self._read_timeout) as conn:
                    rows: list[asyncpg.Record] = await conn.fetch(
                        sql, *args, timeout=self._read_timeout
                    )
                    return rows
            except Exception as exc:
                if not (retries and pg.is_connection_loss(exc)):
                    raise pg.storage_error(exc, self.dsn, writing=False) from exc
            retries -= 1
            await asyncio.sleep(RETRY_PAUSE)

    async def _value(self, sql: str, *args: object) -> Any:
        rows = await self._fetch(sql, *args)
        return rows[0][0] if rows else None

    @contextlib.asynccontextmanager
    async def _operator(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for an operator task (check, backup, export, repair)."""
        pool = self._pool
        if pool is None:
            raise EngineClosedError("The points ledger is closed.")
        try:
            conn = await pool.acquire(timeout=self._read_timeout)
        except Exception as exc:
            raise pg.storage_error(exc, self.dsn, writing=False) from exc
        try:
            # A pooled connection proxies every Connection method the tasks use.
            yield cast("asyncpg.Connection", conn)
        finally:
            await pool.release(conn)

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
        except Exception:
            pool.terminate()

    # -- the ledger -----------------------------------------------------------------------

    async def balance(self, chat_id: int, user_id: int) -> AccountBalance:
        rows = await self._fetch(s.SELECT_BALANCE, chat_id, user_id)
        balance, earned, count = rows[0] if rows else (0, 0, 0)
        return AccountBalance(chat_id, user_id, balance, earned, count)

    async def history(
        self, chat_id: int, user_id: int, limit: int, before_seq: int | None = None
    ) -> list[Transaction]:
        before = before_seq if before_seq is not None else 2**62
        rows = await self._fetch(s.SELECT_HISTORY, chat_id, user_id, before, limit)
        return [row_to_transaction(tuple(r)) for r in rows]

    async def transaction(self, tx_id: int) -> Transaction | None:
        rows = await self._fetch(s.SELECT_TX_BY_ID, tx_id)
        return row_to_transaction(tuple(rows[0])) if rows else None

    async def transaction_by_key(self, key: str) -> Transaction | None:
        rows = await self._fetch(s.SELECT_TX_BY_KEY, key)
        return row_to_transaction(tuple(rows[0])) if rows else None

    async def last_transaction_id(self) -> int:
        """The id of the newest transaction (0 for an empty ledger)."""
        return int(await self._value(s.SELECT_LAST_ID))

    async def standings(
        self, chat_id: int, since: str | None, limit: int
    ) -> list[tuple[int, int]]:
        """(user_id, points) best first; all-time from balances, a period from the ledger."""
        if since is None:
            rows = await self._fetch(s.STANDINGS_ALL, chat_id, limit)
        else:
            rows = await self._fetch(s.STANDINGS_SINCE, chat_id, since, limit)
        return [(int(r[0]), int(r[1])) for r in rows]

    async def standing_of(
        self, chat_id: int, user_id: int, since: str | None
    ) -> tuple[int, int] | None:
        """(rank, points) of one user, or None when they have no points in the window."""
        if since is None:
            rows = await self._fetch(s.STANDING_OF_ALL, chat_id, user_id)
        else:
            rows = await self._fetch(s.STANDING_OF_SINCE, chat_id, user_id, since)
        return (int(rows[0][1]), int(rows[0][0])) if rows else None

    async def progress(self, chat_id: int, user_id: int) -> ProgressRow:
        """Counters, streak and unlocked achievements of one account."""
        counters = await self._fetch(s.SELECT_PROGRESS, chat_id, user_id)
        streak = await self._fetch(s.SELECT_STREAK, chat_id, user_id)
        unlocked = await self._fetch(s.SELECT_UNLOCKS, chat_id, user_id)
        return progress_row(counters, streak, unlocked)

    async def today(self, chat_id: int, user_id: int) -> TodayRow | None:
        """The account's streak and today's activity points; None for a new account."""
        rows = await self._fetch(s.SELECT_TODAY, chat_id, user_id)
        return today_row(rows[0]) if rows else None

    # -- the outbox -------------------------------------------------------------------

    async def outbox_lag(self) -> int:
        """How many committed events wait for delivery."""
        return int(await self._value(s.COUNT_PENDING))

    async def outbox_pending(self, limit: int) -> list[OutboxRow]:
        """The oldest undelivered events, in commit order."""
        return [OutboxRow(*r) for r in await self._fetch(s.SELECT_PENDING, limit)]

    # -- tables beside the ledger -------------------------------------------------------

    async def frozen_accounts(self) -> set[tuple[int, int]]:
        rows = await self._fetch(s.SELECT_FREEZES)
        return {(int(chat), int(user)) for chat, user in rows}

    async def known_person(self, user_id: int) -> KnownPerson | None:
        rows = await self._fetch(s.SELECT_KNOWN_USER, user_id)
        return known_person(rows[0]) if rows else None

    async def known_username(self, username: str) -> KnownPerson | None:
        """The person last seen with `username` (any case)."""
        rows = await self._fetch(s.SELECT_KNOWN_USERNAME, username)
        return known_person(rows[0]) if rows else None

    async def thanks_between(self, chat_id: int, receiver: int, giver: int, since: str) -> int:
        """Thanks `giver` gave `receiver` in the chat since `since`."""
        return int(await self._value(s.COUNT_THANKS_PAIR, chat_id, receiver, giver, since) or 0)

    async def first_transaction_at(self, chat_id: int) -> str | None:
        value = await self._value(s.FIRST_TRANSACTION_AT, chat_id)
        return None if value is None else str(value)

    async def last_admin_action(self, chat_id: int, action: str) -> str | None:
        value = await self._value(s.LAST_ADMIN_ACTION, chat_id, action)
        return None if value is None else str(value)

    async def thanks_given(self, chat_id: int, giver: int, since: str) -> int:
        """Thanks `giver` gave anyone in the chat since `since`."""
        return int(await self._value(s.COUNT_THANKS_GIVEN, chat_id, giver, since) or 0)

    async def web_public(self, chat_id: int) -> bool:
        return bool(await self._value(s.SELECT_WEB_PUBLIC, chat_id))

    async def chat_known(self, chat_id: int) -> bool:
        return bool(await self._value(s.CHAT_KNOWN, chat_id))

    async def audit_trail(self, chat_id: int, limit: int) -> list[AuditEntry]:
        rows = await self._fetch(s.SELECT_AUDIT_TRAIL, chat_id, limit)
        return [AuditEntry(*row) for row in rows]

    async def amounts_since(self, chat_id: int, user_id: int, since: str) -> list[tuple[str, int]]:
        rows = await self._fetch(s.SELECT_AMOUNTS_SINCE, chat_id, user_id, since)
        return [(str(at), int(amount)) for at, amount in rows]

    async def member_days(self, chat_id: int, since: str, until: str) -> list[int]:
        rows = await self._fetch(s.MEMBER_DAYS, chat_id, since, until)
        return [int(row[0]) for row in rows]

    async def scored_messages(self, chat_id: int, user_id: int, since: str) -> int:
        return int(await self._value(s.COUNT_SCORED_MESSAGES, chat_id, user_id, since) or 0)

    async def engaged_by(self, chat_id: int, user_id: int, since: str) -> list[tuple[int, int]]:
        rows = await self._fetch(s.ENGAGED_BY, chat_id, user_id, since)
        return [(int(actor), int(count)) for actor, count in rows]

    async def engaged_pair(self, chat_id: int, author: int, responder: int, since: str) -> int:
        return int(await self._value(s.COUNT_ENGAGED_PAIR, chat_id, author, responder, since) or 0)
