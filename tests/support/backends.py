"""The ledger backends the contract tests run against: add one here and every contract,
model, concurrency and tamper test runs on it too.

A backend opens engines on its own fresh ledger (as often as a test reopens it), runs the
integrity check on it (with or without the recorded checkpoint), reads and writes it the way
an outsider with a plain connection would (rows, raw sums, the schema version), and hands out
a tamperer that edits the ledger behind the engine's back the way an attacker with access to
that storage could. Raw statements are written in portable SQL with `?` placeholders.

Tests that exercise one storage engine's own machinery (SQLite's file locks, its journal mode)
say so with `@pytest.mark.only_backends("sqlite", reason=...)`; they are skipped on the others.

PostgreSQL gets a database of its own per test (made from a migrated template, dropped by the
fixture's finalizer); where no server is reachable its tests skip with the reason (see
tests/support/postgres.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from plugins.gamification import PointsEngine, check_ledger
from plugins.gamification.domain.clock import SystemClock
from plugins.gamification.storage.postgres import integrity, maintenance
from plugins.gamification.storage.postgres.connect import connect
from plugins.gamification.storage.sqlite.integrity import IntegrityReport, run_check
from plugins.gamification.storage.sqlite.schema import SCHEMA_VERSION as SQLITE_VERSION
from tests.support import pgsync, postgres

CLOCK = SystemClock()


class LedgerBackend(Protocol):
    name: str
    # Where the ledger lives, as the backend names it (a file for SQLite, a DSN for
    # PostgreSQL): what PointsEngine.open takes.
    location: Path | str
    # The schema version this program writes.
    latest_version: int

    async def open_engine(self, **options: Any) -> PointsEngine: ...

    def check(self, *, record: bool = False, quick_check: bool = True) -> IntegrityReport: ...

    def check_unanchored(self) -> IntegrityReport: ...

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]: ...

    def write(self, sql: str, params: tuple[object, ...] = ()) -> None: ...

    # What `write` raises when the ledger's own guards (the append-only triggers) refuse it.
    integrity_error: type[Exception]

    def schema_version(self) -> int: ...

    def set_schema_version(self, version: int) -> None: ...

    def sums(self) -> list[tuple[int, int, int, int]]: ...

    def cached_balances(self) -> list[tuple[int, int, int]]: ...

    def tampering(self) -> Any: ...


class SqliteBackend:
    """The SQLite ledger in one file; tampering is a plain connection without the triggers."""

    name = "sqlite"
    integrity_error: type[Exception] = sqlite3.IntegrityError
    latest_version = SQLITE_VERSION

    def __init__(self, folder: Path) -> None:
        self.location: Path = folder / "ledger.sqlite3"

    def drop(self) -> None:
        """Nothing to do: the file goes with the test's temporary folder."""

    async def open_engine(self, **options: Any) -> PointsEngine:
        return await PointsEngine.open(self.location, **options)

    def check(self, *, record: bool = False, quick_check: bool = True) -> IntegrityReport:
        return run_check(self.location, record=record, quick_check=quick_check)

    def check_unanchored(self) -> IntegrityReport:
        """The chain check alone, on a plain connection, without comparing to a checkpoint."""
        conn = sqlite3.connect(self.location, isolation_level=None)
        try:
            return check_ledger(conn)
        finally:
            conn.close()

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement on a plain connection of its own, as an outsider would run it."""
        conn = sqlite3.connect(self.location)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def write(self, sql: str, params: tuple[object, ...] = ()) -> None:
        """One committed statement on a plain connection, the ledger's triggers in force."""
        conn = sqlite3.connect(self.location)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()

    def schema_version(self) -> int:
        return int(self.read("PRAGMA user_version")[0][0])

    def set_schema_version(self, version: int) -> None:
        conn = sqlite3.connect(self.location)
        try:
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.commit()
        finally:
            conn.close()

    def sums(self) -> list[tuple[int, int, int, int]]:
        """(chat, user, sum of amounts, rows) per account, straight from the transactions."""
        return self.read(
            "SELECT chat_id, user_id, SUM(amount), COUNT(*) FROM transactions"
            " GROUP BY chat_id, user_id"
        )

    def cached_balances(self) -> list[tuple[int, int, int]]:
        return self.read("SELECT chat_id, user_id, balance FROM accounts")

    @contextmanager
    def tampering(self) -> Iterator[sqlite3.Connection]:
        """A plain connection with the append-only triggers dropped, as an attacker has."""
        conn = sqlite3.connect(self.location, isolation_level=None)
        try:
            conn.execute("DROP TRIGGER transactions_no_update")
            conn.execute("DROP TRIGGER transactions_no_delete")
            yield conn
        finally:
            conn.close()


def _integrity_error() -> type[Exception]:
    import asyncpg

    # What the ledger's append-only triggers raise (ERRCODE integrity_constraint_violation).
    error: type[Exception] = asyncpg.exceptions.IntegrityConstraintViolationError
    return error


class PostgresBackend:
    """A PostgreSQL database of its own (made from the migrated template, dropped after the
    test); tampering is a connection with the append-only triggers disabled."""

    name = "postgresql"
    prefix = "gamif_i"

    def __init__(self, folder: Path) -> None:
        postgres.require_postgres()
        self.integrity_error = _integrity_error()
        from plugins.gamification.storage.postgres.schema import SCHEMA_VERSION

        self.latest_version = SCHEMA_VERSION
        self.database = pgsync.run(postgres.create_database(self.prefix))
        self.location: str = postgres.database_url(self.database)

    def drop(self) -> None:
        pgsync.run(postgres.drop_database(self.database))

    async def open_engine(self, **options: Any) -> PointsEngine:
        return await PointsEngine.open(self.location, **options)

    def check(self, *, record: bool = False, quick_check: bool = True) -> IntegrityReport:
        """The operator's check (`python -m bot check`) on a connection of its own."""

        async def run() -> IntegrityReport:
            conn = await connect(self.location)
            try:
                return await maintenance.check(conn, self.location, record=record, clock=CLOCK)
            finally:
                await conn.close()

        return pgsync.run(run())

    def check_unanchored(self) -> IntegrityReport:
        """The chain check alone: run with the checkpoints out of sight, then rolled back."""

        async def run() -> IntegrityReport:
            conn = await connect(self.location)
            try:
                transaction = conn.transaction(isolation="repeatable_read")
                await transaction.start()
                try:
                    await conn.execute("DELETE FROM checkpoint_heads")
                    await conn.execute("DELETE FROM checkpoints")
                    return await integrity.verify_in_transaction(conn, CLOCK)
                finally:
                    await transaction.rollback()
            finally:
                await conn.close()

        return pgsync.run(run())

    @contextmanager
    def _connection(self) -> Iterator[pgsync.SyncConnection]:
        conn = pgsync.SyncConnection(self.location)
        try:
            yield conn
        finally:
            conn.close()

    def read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def write(self, sql: str, params: tuple[object, ...] = ()) -> None:
        with self._connection() as conn:
            conn.execute(sql, params)

    def schema_version(self) -> int:
        return int(self.read("SELECT COALESCE(MAX(version), 0) FROM ledger_schema")[0][0])

    def set_schema_version(self, version: int) -> None:
        with self._connection() as conn:
            conn.script(
                "BEGIN; DELETE FROM ledger_schema;"
                f" INSERT INTO ledger_schema (version) VALUES ({int(version)}); COMMIT"
            )

    def sums(self) -> list[tuple[int, int, int, int]]:
        # SUM of a BIGINT is NUMERIC on PostgreSQL: cast, so rows compare as SQLite's do.
        return self.read(
            "SELECT chat_id, user_id, SUM(amount)::BIGINT, COUNT(*) FROM transactions"
            " GROUP BY chat_id, user_id"
        )

    def cached_balances(self) -> list[tuple[int, int, int]]:
        return self.read("SELECT chat_id, user_id, balance FROM accounts")

    @contextmanager
    def tampering(self) -> Iterator[pgsync.SyncConnection]:
        """A connection with the append-only triggers off, as the table's owner has: all of
        it in one transaction that turns them on again before COMMIT."""
        with self._connection() as conn:
            conn.script("BEGIN; ALTER TABLE transactions DISABLE TRIGGER USER")
            try:
                yield conn
            except BaseException:
                conn.script("ROLLBACK")
                raise
            conn.script("ALTER TABLE transactions ENABLE TRIGGER USER; COMMIT")


BACKENDS: dict[str, type[SqliteBackend] | type[PostgresBackend]] = {
    "postgresql": PostgresBackend,
    "sqlite": SqliteBackend,
}


def make_backend(name: str, folder: Path) -> SqliteBackend | PostgresBackend:
    return BACKENDS[name](folder)
