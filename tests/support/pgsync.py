"""Plain, blocking access to a PostgreSQL database for tests, the way `sqlite3` gives it.

Tests look at and tamper with the ledger behind the engine's back with synchronous calls,
often from inside a running event loop (an async test). asyncpg is async only, so every
call here runs on one event loop of its own, on a daemon thread, and blocks until done.
Statements are written in portable SQL with `?` placeholders; they become `$1, $2, …`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self.loop.run_forever, name="pgsync", daemon=True)
        thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@functools.cache
def _loop() -> _LoopThread:
    return _LoopThread()


def run(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run `coro` to its end on the helper loop, from any thread or loop."""
    return _loop().run(coro, timeout)


def placeholders(sql: str) -> str:
    """`?` outside quoted text and identifiers becomes `$1`, `$2`, … in order."""
    out: list[str] = []
    quote = ""
    number = 0
    for char in sql:
        if quote:
            if char == quote:
                quote = ""
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


class Rows(list[tuple[Any, ...]]):
    """What `execute` returns: the rows, and `fetchall()` as sqlite3's cursor has it."""

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self)


class SyncConnection:
    """One asyncpg connection driven synchronously (autocommit unless in `transaction()`)."""

    def __init__(self, dsn: str) -> None:
        import asyncpg

        self._conn: asyncpg.Connection = run(asyncpg.connect(dsn))

    def execute(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> Rows:
        records = run(self._conn.fetch(placeholders(sql), *params))
        return Rows(tuple(record) for record in records)

    def script(self, sql: str) -> None:
        """Several statements at once, without parameters."""
        run(self._conn.execute(sql))

    def close(self) -> None:
        run(self._conn.close())
