"""A PostgreSQL ledger as one side of a copy (storage/transfer.py): `migrate` and backups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from plugins.gamification.domain.clock import SystemClock
from plugins.gamification.domain.errors import StorageError
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.postgres.integrity import (
    TAKE_LEDGER_LOCK,
    verify_in_transaction,
)
from plugins.gamification.storage.postgres.schema import (
    LEDGER_LOCK,
    SCHEMA_VERSION,
    ledger_version,
    migrate,
)
from plugins.gamification.storage.tables import TABLES, Table

if TYPE_CHECKING:
    import asyncpg

FETCH_CHUNK = 5000
# The identity sequence continues after the largest copied id (is_called: next is id + 1).
SET_IDENTITY = "SELECT setval(pg_get_serial_sequence($1, $2), $3, true)"


async def require_ledger(conn: asyncpg.Connection, where: str) -> None:
    """Refuse a database that holds no ledger of this program's version, in one sentence."""
    version = await ledger_version(conn, where)
    if version == 0:
        raise StorageError(f"The database at {where} holds no ledger.")
    if version != SCHEMA_VERSION:
        raise StorageError(
            f"The ledger at {where} has schema version {version}; this program reads"
            f" {SCHEMA_VERSION} (start the bot on it once to migrate it)."
        )


class PostgresSide:
    def __init__(self, conn: asyncpg.Connection, where: str) -> None:
        self.conn = conn
        self.where = where
        self._last_ids: dict[str, int] = {}

    @classmethod
    async def source(cls, conn: asyncpg.Connection, where: str) -> PostgresSide:
        await require_ledger(conn, where)
        return cls(conn, where)

    @classmethod
    async def target(cls, conn: asyncpg.Connection, where: str) -> PostgresSide:
        await migrate(conn, where)
        return cls(conn, where)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        async with self.conn.transaction(isolation="repeatable_read", readonly=True):
            yield

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        async with self.conn.transaction():
            await self.conn.execute(TAKE_LEDGER_LOCK, LEDGER_LOCK)
            yield

    async def counts(self) -> dict[str, int]:
        return {t.name: int(await self.conn.fetchval(t.count)) for t in TABLES}

    async def rows(self, table: Table) -> AsyncIterator[Sequence[Sequence[Any]]]:
        cursor = await self.conn.cursor(table.select)
        while rows := await cursor.fetch(FETCH_CHUNK):
            yield [tuple(row) for row in rows]

    async def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        await self.conn.copy_records_to_table(table.name, records=rows, columns=table.columns)
        if table.identity is not None and rows:
            column = table.columns.index(table.identity)
            last = max(int(row[column]) for row in rows)
            self._last_ids[table.name] = max(last, self._last_ids.get(table.name, 0))

    async def finish_copy(self) -> None:
        for table in TABLES:
            last = self._last_ids.get(table.name)
            if table.identity is not None and last:
                await self.conn.execute(SET_IDENTITY, table.name, table.identity, last)

    async def verify(self) -> IntegrityReport:
        return await verify_in_transaction(self.conn, SystemClock())
