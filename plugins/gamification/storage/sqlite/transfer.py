"""A SQLite ledger file as one side of a copy (storage/transfer.py): `migrate` and backups."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from plugins.gamification.domain.errors import StorageError
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.sqlite.faults import storage_error
from plugins.gamification.storage.sqlite.files import check_ledger_path
from plugins.gamification.storage.sqlite.integrity import (
    latest_checkpoint,
    open_for_check,
    verify_in_transaction,
)
from plugins.gamification.storage.sqlite.schema import migrate
from plugins.gamification.storage.tables import TABLES, Table

FETCH_CHUNK = 5000


class SqliteSide:
    """A ledger file on one connection; blocking calls, as the copy has nothing else to do."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, created: bool = False) -> None:
        self.conn = conn
        self.path = path
        self.where = str(path)
        # Made by this copy: removed again if the copy is not kept.
        self.created = created

    @classmethod
    def source(cls, path: Path) -> SqliteSide:
        return cls(open_for_check(path, read_only=True), path)

    @classmethod
    def target(cls, path: Path) -> SqliteSide:
        """An existing ledger file, or a new one (created and migrated here)."""
        if path.exists() or path.is_symlink():
            return cls(open_for_check(path), path)
        if not path.parent.is_dir():
            raise StorageError(f"The folder {path.parent} does not exist.")
        check_ledger_path(path, writing=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise storage_error(exc, path) from exc
        try:
            migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise storage_error(exc, path) from exc
        return cls(conn, path, created=True)

    def close(self, *, kept: bool = True) -> None:
        self.conn.close()
        if self.created and not kept:
            for leftover in (self.path, self.path.with_name(self.path.name + "-journal")):
                leftover.unlink(missing_ok=True)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("ROLLBACK")

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    async def counts(self) -> dict[str, int]:
        return {t.name: int(self.conn.execute(t.count).fetchone()[0]) for t in TABLES}

    async def rows(self, table: Table) -> AsyncIterator[Sequence[Sequence[Any]]]:
        cursor = self.conn.execute(table.select)
        while rows := cursor.fetchmany(FETCH_CHUNK):
            yield rows

    async def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(table.sqlite_insert, rows)

    async def finish_copy(self) -> None:
        """SQLite's INTEGER PRIMARY KEY continues after the largest id by itself."""

    async def verify(self) -> IntegrityReport:
        return verify_in_transaction(self.conn, anchor=latest_checkpoint(self.conn))
