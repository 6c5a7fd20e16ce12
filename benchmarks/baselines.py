"""The baselines: a naive engine (a transaction and COMMIT per award) and the raw sqlite3 limit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from benchmarks.rows import AwardRows, account_of, award_rows, create_ledger
from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.storage.sqlite.effects import INSERT_OUTBOX
from plugins.gamification.storage.sqlite.rows import (
    INSERT_TX,
    SELECT_ACCOUNT,
    UPSERT_ACCOUNT,
    AccountRow,
)

RAW_BATCH = 1_000


class NaiveEngine:
    """What a first version would do: under one asyncio.Lock, per award, BEGIN IMMEDIATE,
    read the account, insert the hash-chained row, update the balance, COMMIT.

    Same rows and hashes as ours (no outbox or progress), one awaited aiosqlite call per
    statement, so every award pays its own fsync and five thread round trips.
    """

    def __init__(self, conn: aiosqlite.Connection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock
        self._lock = asyncio.Lock()
        self._next_id = 1

    @classmethod
    async def open(cls, path: Path) -> NaiveEngine:
        await asyncio.to_thread(lambda: create_ledger(path).close())
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA synchronous = FULL")
        return cls(conn, SystemClock())

    async def close(self) -> None:
        await self._conn.close()

    async def award(self, chat_id: int, user_id: int, key: str) -> None:
        conn = self._conn
        async with self._lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                async with conn.execute(SELECT_ACCOUNT, (chat_id, user_id)) as cursor:
                    found = await cursor.fetchone()
                head = AccountRow(*found) if found else AccountRow()
                now = format_utc(self._clock.now())
                rows = award_rows(head, self._next_id, chat_id, user_id, key, now)
                await conn.execute(INSERT_TX, rows.tx)
                await conn.execute(UPSERT_ACCOUNT, rows.account)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            self._next_id += 1


class BulkLedger:
    """Keeps every chain head in memory and writes awards in batches with executemany."""

    def __init__(self, path: Path, *, outbox: bool) -> None:
        self.conn = create_ledger(path)
        self._outbox = outbox
        self._heads: dict[tuple[int, int], AccountRow] = {}
        self._next_id = 1

    def write(self, count: int, accounts: int, *, prefix: str, start: float) -> float:
        """Append `count` awards over `accounts` accounts, one transaction per RAW_BATCH;
        return the seconds spent in executemany and COMMIT alone.

        Timestamps advance a millisecond per award from `start` (a Unix time).
        """
        inserting = 0.0
        for first in range(0, count, RAW_BATCH):
            batch: list[AwardRows] = []
            accounts_touched: dict[tuple[int, int], tuple[object, ...]] = {}
            for index in range(first, min(first + RAW_BATCH, count)):
                chat_id, user_id = account_of(index, accounts)
                head = self._heads.get((chat_id, user_id)) or AccountRow()
                now = format_utc(datetime.fromtimestamp(start + index / 1000, UTC))
                rows = award_rows(head, self._next_id, chat_id, user_id, f"{prefix}:{index}", now)
                self._next_id += 1
                self._heads[(chat_id, user_id)] = rows.head
                accounts_touched[(chat_id, user_id)] = rows.account
                batch.append(rows)
            started = time.perf_counter()
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(INSERT_TX, [rows.tx for rows in batch])
            self.conn.executemany(UPSERT_ACCOUNT, list(accounts_touched.values()))
            if self._outbox:
                self.conn.executemany(INSERT_OUTBOX, [rows.outbox for rows in batch])
            self.conn.execute("COMMIT")
            inserting += time.perf_counter() - started
        return inserting

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True, slots=True)
class RawLimit:
    """Awards per second of plain sqlite3 on one thread: building the rows and inserting them
    (the limit), and the inserts and COMMITs alone."""

    rate: float
    inserts_only: float


def raw_limit(path: Path, count: int, accounts: int) -> RawLimit:
    """Plain sqlite3 producing the same rows (transaction with its real hashes, account,
    outbox) and inserting them in batches of RAW_BATCH from one thread, synchronous=FULL, WAL.

    Building counts: any writer of these rows must hash them, ours included, so the fastest
    one thread can produce them durably is the limit. The insert-only rate is kept beside it.
    """
    ledger = BulkLedger(path, outbox=True)
    try:
        started = time.perf_counter()
        inserting = ledger.write(count, accounts, prefix="raw", start=time.time())
        total = time.perf_counter() - started
    finally:
        ledger.close()
    return RawLimit(count / total, count / inserting)
