"""Fault injection for the ledger writer: a connection proxy, and a store that uses it.

sqlite3.Connection cannot be monkeypatched, and BatchWriter only needs `execute`,
`executemany`, `total_changes` and `in_transaction`, so a proxy that forwards those to a
real connection can fail any chosen statement while everything else stays real SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import aiosqlite

from plugins.gamification.storage.sqlite.store import LedgerStore

T = TypeVar("T")

# Given the statement's number in this proxy's life (from 1) and its SQL: the exception to
# raise for it, or None to let it through.
Rule = Callable[[int, str], BaseException | None]

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def is_write(sql: str) -> bool:
    return sql.lstrip().upper().startswith(WRITES)


class FaultyConnection:
    """Forwards to a real sqlite3 connection; `rule` decides which statements fail.

    With `after=False` a failing statement is never run (SQLite refused it). With
    `after=True` it runs and then the exception is raised: the reply was lost, or the
    code right after the statement failed.
    """

    def __init__(self, real: sqlite3.Connection, rule: Rule | None = None, *, after: bool = False):
        self.real = real
        self.rule = rule
        self.after = after
        self.statements: list[str] = []
        self.raised: list[tuple[int, str, BaseException]] = []

    def _check(self, sql: str) -> BaseException | None:
        self.statements.append(sql)
        error = self.rule(len(self.statements), sql) if self.rule is not None else None
        if error is not None:
            self.raised.append((len(self.statements), sql, error))
        return error

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        error = self._check(sql)
        if error is None:
            return self.real.execute(sql, params)
        if self.after:
            # Closed at once: a cursor kept alive by the traceback would leave a RETURNING
            # statement in progress and block the COMMIT, which no real fault does.
            self.real.execute(sql, params).close()
        raise error

    def executemany(self, sql: str, params: Iterable[Any]) -> sqlite3.Cursor:
        error = self._check(sql)
        if error is None:
            return self.real.executemany(sql, params)
        if self.after:
            self.real.executemany(sql, params).close()
        raise error

    def as_connection(self) -> sqlite3.Connection:
        """This proxy, typed as what BatchWriter.apply takes (it uses only what is here)."""
        return cast(sqlite3.Connection, self)

    @property
    def total_changes(self) -> int:
        return self.real.total_changes

    @property
    def in_transaction(self) -> bool:
        return self.real.in_transaction


def once_at(k: int, make: Callable[[], BaseException]) -> Rule:
    """Fail only the k-th statement (one-shot: a retry of the same batch goes through)."""
    return lambda index, _sql: make() if index == k else None


class FaultyStore(LedgerStore):
    """A LedgerStore whose writer sees its connection through a FaultyConnection.

    `rule` is consulted for every statement of every batch while it is set; statements are
    numbered from 1 within each batch. `on_writer` runs a function on the raw write
    connection between batches (to set a PRAGMA there).
    """

    rule: Rule | None = None
    after: bool = False
    last: FaultyConnection | None = None

    async def _on_thread(  # type: ignore[override]
        self, conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]
    ) -> T:
        rule = self.rule
        if rule is None or conn is not self._write_conn:
            return await LedgerStore._on_thread(conn, fn)

        def wrapped(raw: sqlite3.Connection) -> T:
            self.last = FaultyConnection(raw, rule, after=self.after)
            return fn(self.last.as_connection())

        return await LedgerStore._on_thread(conn, wrapped)

    async def on_writer(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._write_conn is not None
        return await LedgerStore._on_thread(self._write_conn, fn)
