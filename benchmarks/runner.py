"""Runs every measurement in order, turns the results into the table; `main` is the CLI."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TextIO, TypeVar

from benchmarks import (
    app,
    cards,
    check,
    ledger,
    memory,
    outbox,
    pg_table,
    postgres,
    webhook,
    webhook_table,
)
from benchmarks.baselines import raw_limit
from benchmarks.report import machine, render
from benchmarks.scale import FULL, QUICK, TINY, Scale
from benchmarks.table import WIDTHS, Results, notes, rows
from plugins.gamification.storage.options import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_RAN, EXIT_CANNOT_RUN = 0, 2
SYNCHRONOUS = "FULL"


class Session:
    """Runs measurements one at a time, each in a fresh folder removed afterwards."""

    def __init__(self, folder: Path, progress: TextIO) -> None:
        self.folder = folder
        self.progress = progress
        self.results = Results()
        self._count = 0

    async def attempt(
        self, name: str, measure: Callable[[Path], Awaitable[T]], *, probe: bool = False
    ) -> T | None:
        """The measurement's result, or None (noted as a failure) if it raised.

        With `probe`, the journal mode the measured code left in its file is recorded for
        the table, so WAL is read back from a ledger the engine made, not assumed.
        """
        self._count += 1
        place = self.folder / f"{self._count:02d}"
        place.mkdir()
        started = time.perf_counter()
        print(f"bench: {name} ...", file=self.progress, flush=True)
        try:
            result = await measure(place / "ledger.sqlite3")
        except Exception as exc:
            log.exception("bench: %s failed", name)
            self.results.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        else:
            took = time.perf_counter() - started
            print(f"bench: {name} done in {took:.1f} s", file=self.progress, flush=True)
            return result
        finally:
            if probe and (place / "ledger.sqlite3").exists():
                self.results.journal_mode = _journal_mode(place / "ledger.sqlite3")
            shutil.rmtree(place, ignore_errors=True)


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).upper()
    except sqlite3.Error:
        return "unknown"
    finally:
        conn.close()


def _flight(
    opener: ledger.Opener, count: int, width: int, accounts: int
) -> Callable[[Path], Awaitable[ledger.Flight]]:
    return lambda path: ledger.in_flight(opener, path, count, width, accounts)


async def measure(scale: Scale, session: Session) -> Results:
    r = session.results
    n, accounts = scale.in_flight, scale.accounts
    r.raw = await session.attempt(
        "raw sqlite3 limit", lambda p: asyncio.to_thread(raw_limit, p, n, accounts)
    )
    r.naive_single = await session.attempt(
        "naive engine, sequential", _flight(ledger.naive, scale.naive_single, 1, accounts)
    )
    for width in WIDTHS:
        found = await session.attempt(
            f"naive engine, {width} in flight", _flight(ledger.naive, scale.naive, width, accounts)
        )
        if found is not None:
            r.naive[width] = found
    r.single = await session.attempt(
        "single award latency", _flight(ledger.ours, scale.single, 1, accounts), probe=True
    )
    for width in WIDTHS:
        found = await session.attempt(
            f"{width} awards in flight", _flight(ledger.ours, n, width, accounts)
        )
        if found is not None:
            r.flights[width] = found
    r.bursts = await session.attempt(
        "bursts of 50", lambda p: ledger.bursts(p, scale.bursts, accounts)
    )
    r.end_to_end = await session.attempt(
        "end-to-end dispatch", lambda p: app.end_to_end(p, scale.messages, scale.users)
    )
    r.webhook = await session.attempt("webhook end to end, SQLite", _webhook_sqlite(scale))
    r.inbound = await session.attempt(
        "event bus in", lambda p: app.inbound(p, scale.inbound, accounts)
    )
    r.outbound = await session.attempt(
        "event bus out", lambda p: outbox.outbound(p, scale.outbound, accounts)
    )
    r.integrity = await session.attempt(
        "integrity check",
        lambda p: asyncio.to_thread(
            check.integrity, p, scale.integrity_tx, scale.integrity_accounts
        ),
    )
    r.memory = await session.attempt(
        "memory (in a child process)",
        lambda p: memory.rss_growth_in_child(p, scale.memory_awards, scale.memory_accounts),
    )
    r.cards = await session.attempt(
        "rank card render", lambda _: asyncio.to_thread(cards.card_renders, scale.cards)
    )
    return r


async def measure_sqlite_beside(scale: Scale, session: Session) -> Results:
    """Only our engine's SQLite rows that the PostgreSQL section is read against."""
    r = session.results
    r.single = await session.attempt(
        "single award latency", _flight(ledger.ours, scale.single, 1, scale.accounts), probe=True
    )
    for width in (100, 1_000):
        found = await session.attempt(
            f"{width} awards in flight",
            _flight(ledger.ours, scale.in_flight, width, scale.accounts),
        )
        if found is not None:
            r.flights[width] = found
    r.webhook = await session.attempt("webhook end to end, SQLite", _webhook_sqlite(scale))
    return r


def _webhook_sqlite(scale: Scale) -> Callable[[Path], Awaitable[webhook.WebhookRun]]:
    def run(path: Path) -> Awaitable[webhook.WebhookRun]:
        storage = f"sqlite:///{path}"
        return webhook.run(path.parent, storage, 1, scale.webhook)

    return run


def _webhook_postgres(
    server: str, scale: Scale, instances: int
) -> Callable[[Path], Awaitable[webhook.WebhookRun]]:
    async def run(path: Path) -> webhook.WebhookRun:
        async with postgres.scratch(server) as dsn:
            return await webhook.run(path.parent, dsn, instances, scale.webhook)

    return run


def _on_scratch(
    server: str, measure: Callable[[str], Awaitable[T]]
) -> Callable[[Path], Awaitable[T]]:
    async def run(_: Path) -> T:
        async with postgres.scratch(server) as dsn:
            return await measure(dsn)

    return run


async def measure_postgres(scale: Scale, session: Session, server: str) -> postgres.PgResults:
    pg = postgres.PgResults(server=redact(server))
    pg.version = await postgres.server_version(server)
    n, accounts = scale.in_flight, scale.accounts
    pg.raw = await session.attempt(
        "PostgreSQL raw limit",
        _on_scratch(server, lambda dsn: postgres.raw_limit(dsn, n, accounts)),
    )
    pg.single = await session.attempt(
        "PostgreSQL single award latency",
        _on_scratch(server, lambda dsn: postgres.in_flight(dsn, scale.single, 1, accounts)),
    )
    for width in (100, 1_000):
        found = await session.attempt(
            f"PostgreSQL {width} awards in flight",
            _on_scratch(
                server, partial(postgres.in_flight, count=n, width=width, accounts=accounts)
            ),
        )
        if found is not None:
            pg.flights[width] = found
    pg.split = await session.attempt(
        "PostgreSQL 1,000 awards in flight over two processes",
        _on_scratch(server, lambda dsn: postgres.split(dsn, n, 1_000, accounts)),
    )
    for instances in (1, 2):
        run = await session.attempt(
            f"PostgreSQL webhook end to end, {instances} instance(s)",
            _webhook_postgres(server, scale, instances),
        )
        if run is not None:
            pg.webhook[instances] = run
    return pg


async def run_bench(
    scale: Scale,
    folder: Path,
    progress: TextIO = sys.stderr,
    *,
    storage: str | None = None,
) -> tuple[str, bool]:
    """Run the measurements in `folder`; the markdown report, and whether all of them ran.

    Without `storage`: everything on SQLite, plus the PostgreSQL section when a server
    answers at the default URL. With a PostgreSQL `storage` URL: that section alone, with
    SQLite's single-award and in-flight rows beside it.
    """
    started = time.perf_counter()
    load_before = _load()
    session = Session(folder, progress)
    server = storage or postgres.default_server()
    if storage is not None:
        results = await measure_sqlite_beside(scale, session)
        table, extra = [], []
    else:
        results = await measure(scale, session)
        table, extra = rows(results, scale), notes(results, scale)
    noted = 0 if storage is not None else len(results.failures)
    absent = await postgres.reachable(server)
    if absent and storage is not None:
        raise OSError(f"the PostgreSQL server at {redact(server)} cannot be reached: {absent}")
    if absent:
        extra.append(
            f"PostgreSQL: not measured; no server answered at {redact(server)}"
            f" ({absent}). Set {postgres.SERVER_ENV} or pass --storage URL."
        )
    else:
        pg = await measure_postgres(scale, session, server)
        table += pg_table.rows(pg, results.single, results.flights)
        table += webhook_table.postgres_rows(results.webhook, pg.webhook.get(1), pg.webhook.get(2))
        extra += pg_table.notes(pg, scale.accounts)
        extra += webhook_table.notes(
            [r for r in (results.webhook, *pg.webhook.values()) if r is not None]
        )
    # Figures move with whatever else runs on the machine; the reader should see how busy it was.
    load = f"Load average (1 min): {load_before} at the start, {_load()} at the end."
    text = render(
        table,
        machine=machine(folder, SYNCHRONOUS, results.journal_mode),
        scale=scale.describe(),
        notes=[*extra, *(f"FAILED: {f}" for f in results.failures[noted:]), load],
        runtime=time.perf_counter() - started,
    )
    return text, not results.failures


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller counts, under a minute; the table says what was scaled and leaves"
        " the targets stated for 1,000,000 transactions unjudged",
    )
    parser.add_argument("--out", metavar="FILE", help="also write the markdown table to FILE")
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="where the temporary ledgers go (default: the system temp dir); put it on the"
        " disk the bot's database lives on, since fsync cost is most of a commit",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="measure the PostgreSQL backend at URL (postgresql://user@host/db; each"
        " measurement makes and drops a scratch database there) beside SQLite's rows,"
        " instead of the whole bench; without it the whole bench runs and adds the"
        f" PostgreSQL section when a server answers at ${postgres.SERVER_ENV} or"
        f" {postgres.DEFAULT_SERVER}",
    )
    # The test suite's run: proves the harness works end to end; its figures mean nothing.
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


async def bench(args: argparse.Namespace) -> int:
    scale = TINY if args.tiny else QUICK if args.quick else FULL
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        print(f"bench: cannot write {out}: {out.parent} is not a folder.", file=sys.stderr)
        return EXIT_CANNOT_RUN
    storage = args.storage
    if storage is not None and not postgres.is_postgres(storage):
        print("bench: --storage takes a postgresql://user@host/db URL.", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        with tempfile.TemporaryDirectory(prefix="points-bench-", dir=args.dir) as folder:
            text, complete = await run_bench(scale, Path(folder), storage=storage)
    except OSError as exc:
        print(f"bench: could not run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(text)
    if out is not None:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"bench: could not write {out}: {exc.strerror}.", file=sys.stderr)
            return EXIT_CANNOT_RUN
    if not complete:
        print("bench: some measurements failed; see FAILED in the notes.", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_RAN


DESCRIPTION = (
    "Measure the points ledger on fresh SQLite files with synchronous=FULL: award"
    " latency (p50/p99), throughput with 10, 100 and 1,000 awards in flight, a burst"
    " of 50, end-to-end group messages through the real Dispatcher against a no-op"
    " Dispatcher, event bus in and out, the integrity check on 1,000,000"
    " transactions and memory over 1,000,000 awards, each beside a naive engine and"
    " the raw sqlite3 limit, then the same award rows on PostgreSQL when a server is"
    " reachable (or only those, with --storage URL); prints a markdown table with"
    " targets (reported, not enforced); --quick runs in under a minute; exit 0 when it"
    " ran, 2 if not."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(bench(args))
