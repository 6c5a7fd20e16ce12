"""The ledger backends the contract tests run against: add one here and every contract,
model, concurrency and tamper test runs on it too.

A backend opens engines on its own fresh ledger, runs the integrity check on it, reads the
raw sums an outsider would compute, and hands out a tamperer that edits the ledger behind
the engine's back the way an attacker with access to that storage could.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from plugins.gamification import PointsEngine
from plugins.gamification.storage.sqlite.integrity import IntegrityReport, run_check


class LedgerBackend(Protocol):
    name: str
    # Where the ledger lives, as the backend names it (a file for SQLite).
    location: Path

    async def open_engine(self, **options: Any) -> PointsEngine: ...

    def check(self, *, record: bool = False, quick_check: bool = True) -> IntegrityReport: ...

    def sums(self) -> list[tuple[int, int, int, int]]: ...

    def cached_balances(self) -> list[tuple[int, int, int]]: ...

    def tampering(self) -> Any: ...


class SqliteBackend:
    """The SQLite ledger in one file; tampering is a plain connection without the triggers."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.location = folder / "ledger.sqlite3"

    async def open_engine(self, **options: Any) -> PointsEngine:
        return await PointsEngine.open(self.location, **options)

    def check(self, *, record: bool = False, quick_check: bool = True) -> IntegrityReport:
        return run_check(self.location, record=record, quick_check=quick_check)

    def _read(self, sql: str) -> list[Any]:
        conn = sqlite3.connect(self.location)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def sums(self) -> list[tuple[int, int, int, int]]:
        """(chat, user, sum of amounts, rows) per account, straight from the transactions."""
        return self._read(
            "SELECT chat_id, user_id, SUM(amount), COUNT(*) FROM transactions"
            " GROUP BY chat_id, user_id"
        )

    def cached_balances(self) -> list[tuple[int, int, int]]:
        return self._read("SELECT chat_id, user_id, balance FROM accounts")

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


BACKENDS: dict[str, type[SqliteBackend]] = {"sqlite": SqliteBackend}


def make_backend(name: str, folder: Path) -> LedgerBackend:
    return BACKENDS[name](folder)
