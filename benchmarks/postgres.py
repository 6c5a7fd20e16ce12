"""The PostgreSQL section: our engine on a server database beside the raw asyncpg limit.

Every measurement gets a scratch database of its own on the server (`<db>_bench_<hex>`,
made from the migrated schema and dropped afterwards), so runs never see each other's rows.

- raw limit: the rows our writer would write for the same awards (transactions with their
  hashes, accounts, outbox), built before the clock starts, then inserted by one asyncpg
  connection in batches of 1,000 (COPY for transactions and outbox, one unnest upsert for
  the accounts), one COMMIT per batch, `synchronous_commit = on`: no hashing, no locks, no
  idempotency reads. The rate with the building included is kept beside it.
- ours: `PointsEngine.open(dsn)` with its defaults, awaited until committed, as on SQLite.
- two processes: the same total in flight split over two OS processes on one database,
  started together; their awards per second together against one process's.

`python -m benchmarks.postgres child DSN COUNT WIDTH ACCOUNTS PREFIX` is the child of the
two-process run: it opens the engine, warms up, says "ready", waits for "go" on stdin, runs,
and prints its seconds as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from benchmarks import ledger
from benchmarks.ledger import Flight, drive, frozen_inputs
from benchmarks.rows import AwardRows, account_of, award_rows
from benchmarks.webhook import WebhookRun
from plugins.gamification.domain.clock import format_utc
from plugins.gamification.storage.options import LocationError, parse_location, redact
from plugins.gamification.storage.postgres import schema
from plugins.gamification.storage.postgres.connect import connect
from plugins.gamification.storage.postgres.writer import (
    OUTBOX_COPY_COLUMNS,
    TX_COPY_COLUMNS,
    UPSERT_ACCOUNTS,
)
from plugins.gamification.storage.sqlite.rows import AccountRow

SERVER_ENV = "GAMIFICATION_BENCH_POSTGRES_URL"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
RAW_BATCH = 1_000
PROCESSES = 2


def is_postgres(url: str) -> bool:
    try:
        return parse_location(url).backend == "postgresql"
    except LocationError:
        return False


def default_server() -> str:
    return os.environ.get(SERVER_ENV, DEFAULT_SERVER)


async def reachable(server: str) -> str:
    """Empty when the server answers; otherwise why not, in one line."""
    try:
        conn = await connect(server)
    except Exception as exc:
        return str(exc)
    await conn.close()
    return ""


def _with_database(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@asynccontextmanager
async def scratch(server: str) -> AsyncIterator[str]:
    """A new, migrated database on the server for one measurement; dropped afterwards."""
    base = urlsplit(server).path.strip("/") or "postgres"
    name = f"{base}_bench_{uuid.uuid4().hex[:10]}"
    admin = await connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(server, name)
    try:
        conn = await connect(dsn)
        try:
            await schema.migrate(conn, redact(dsn))
        finally:
            await conn.close()
        yield dsn
    finally:
        admin = await connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# -- the raw limit ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgRaw:
    """Awards per second of one asyncpg connection inserting prepared rows (the limit), and
    with the building of those rows (hashes included) counted too."""

    rate: float
    with_building: float


def _batches(count: int, accounts: int, start: float) -> list[list[AwardRows]]:
    heads: dict[tuple[int, int], AccountRow] = {}
    batches: list[list[AwardRows]] = []
    for first in range(0, count, RAW_BATCH):
        batch = []
        for index in range(first, min(first + RAW_BATCH, count)):
            chat_id, user_id = account_of(index, accounts)
            head = heads.get((chat_id, user_id)) or AccountRow()
            now = format_utc(datetime.fromtimestamp(start + index / 1000, UTC))
            rows = award_rows(head, index + 1, chat_id, user_id, f"raw:{index}", now)
            heads[(chat_id, user_id)] = rows.head
            batch.append(rows)
        batches.append(batch)
    return batches


def _tx_record(tx: tuple[object, ...]) -> tuple[object, ...]:
    """award_rows' transaction (SQLite INSERT_TX order) in the writer's COPY column order."""
    (tx_id, chat_id, user_id, seq, amount, balance, kind, key, actor, reason, breakdown,
     created, reverts, prev, digest, fingerprint) = tx  # fmt: skip
    return (tx_id, chat_id, user_id, seq, amount, balance, kind, key, fingerprint, actor,
            reason, breakdown, created, reverts, prev, digest)  # fmt: skip


def _account_columns(batch: list[AwardRows]) -> list[list[object]]:
    latest: dict[tuple[object, object], AwardRows] = {}
    for rows in batch:
        latest[(rows.tx[1], rows.tx[2])] = rows
    columns: list[list[object]] = [[] for _ in range(13)]
    for (chat_id, user_id), rows in sorted(latest.items()):
        head = rows.head
        values = (chat_id, user_id, head.balance, head.earned, head.seq, head.head,
                  rows.tx[11], head.streak_day, head.streak_length, head.streak_best,
                  head.achievements, head.activity_day, head.activity_today)  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


async def raw_limit(dsn: str, count: int, accounts: int) -> PgRaw:
    started = time.perf_counter()
    batches = _batches(count, accounts, time.time())
    prepared = [
        ([_tx_record(r.tx) for r in batch], _account_columns(batch), [r.outbox for r in batch])
        for batch in batches
    ]
    building = time.perf_counter() - started
    conn = await connect(dsn)
    try:
        started = time.perf_counter()
        for txs, account_columns, outbox in prepared:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "transactions", records=txs, columns=TX_COPY_COLUMNS
                )
                await conn.execute(UPSERT_ACCOUNTS, *account_columns)
                await conn.copy_records_to_table(
                    "outbox", records=outbox, columns=OUTBOX_COPY_COLUMNS
                )
        inserting = time.perf_counter() - started
    finally:
        await conn.close()
    return PgRaw(count / inserting, count / (inserting + building))


# -- our engine ---------------------------------------------------------------------------


async def in_flight(dsn: str, count: int, width: int, accounts: int) -> Flight:
    return await ledger.in_flight(ledger.ours, dsn, count, width, accounts)


@dataclass(frozen=True, slots=True)
class Split:
    """`count` awards with `width` in flight in all, over `processes` OS processes."""

    processes: int
    count: int
    width: int
    seconds: float
    child_seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def split(dsn: str, count: int, width: int, accounts: int) -> Split:
    """The processes open their engines and warm up, then start together on "go"."""
    share, each = count // PROCESSES, width // PROCESSES
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.postgres",
            "child",
            dsn,
            str(share),
            str(each),
            str(accounts),
            f"p{n}",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for n in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"a benchmark child did not start: {line!r}")
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        outputs = [await child.communicate() for child in children]
        seconds = time.perf_counter() - started
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    child_seconds = []
    for child, (out, _) in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"a benchmark child failed with exit code {child.returncode}")
        child_seconds.append(float(json.loads(out.decode().strip().splitlines()[-1])["seconds"]))
    return Split(PROCESSES, share * PROCESSES, each * PROCESSES, seconds, child_seconds)


async def _child(dsn: str, count: int, width: int, accounts: int, prefix: str) -> None:
    async with ledger.ours(dsn) as factory:
        await drive(factory(accounts, f"{prefix}warm"), ledger.warmup(count), width, timed=False)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        with frozen_inputs():
            flight = await drive(factory(accounts, prefix), count, width, timed=False)
    print(json.dumps({"seconds": flight.seconds}), flush=True)


# -- the section's results ----------------------------------------------------------------


@dataclass(slots=True)
class PgResults:
    server: str
    version: str = "unknown"
    raw: PgRaw | None = None
    single: Flight | None = None
    flights: dict[int, Flight] = field(default_factory=dict)
    split: Split | None = None
    # Webhook end to end by number of instances.
    webhook: dict[int, WebhookRun] = field(default_factory=dict)


async def server_version(server: str) -> str:
    conn = await connect(server)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "child":
        dsn, count, width, accounts, prefix = argv[1:]
        asyncio.run(_child(dsn, int(count), int(width), int(accounts), prefix))
        return 0
    print(
        "usage: python -m benchmarks.postgres child DSN COUNT WIDTH ACCOUNTS PREFIX",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
