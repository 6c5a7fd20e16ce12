"""The PostgreSQL section's rows and notes, with the SQLite figures of the same run beside."""

from __future__ import annotations

from benchmarks.ledger import Flight
from benchmarks.postgres import RAW_BATCH, PgResults
from benchmarks.report import DASH, Row, Target, ms, rate, share, times

FAILED = "failed (see the notes)"
PREFIX = "PostgreSQL:"
SINGLE = (f"{PREFIX} single award latency p50", f"{PREFIX} single award latency p99")
IN_FLIGHT = {width: f"{PREFIX} {width:,} awards in flight, one process" for width in (100, 1_000)}
SPLIT = f"{PREFIX} 1,000 awards in flight over two processes"
# Every row of the section, in order.
LABELS = (*SINGLE, *IN_FLIGHT.values(), SPLIT)


def _sqlite(flight: Flight | None) -> str:
    return f"SQLite {rate(flight.rate)}" if flight is not None else "SQLite not measured"


def _flight(f: Flight) -> str:
    return f"{rate(f.rate)}; p50 {ms(f.p50_ms)}, p99 {ms(f.p99_ms)}"


def single_rows(pg: PgResults, sqlite: Flight | None) -> list[Row]:
    labels = SINGLE
    if pg.single is None:
        return [Row(label, FAILED) for label in labels]
    pairs = (
        (labels[0], pg.single.p50_ms, sqlite.p50_ms if sqlite else None),
        (labels[1], pg.single.p99_ms, sqlite.p99_ms if sqlite else None),
    )
    return [
        Row(
            label,
            ms(mine),
            f"SQLite {ms(theirs)}" if theirs is not None else "SQLite not measured",
            f"{times(mine / theirs)} SQLite's" if theirs else DASH,
        )
        for label, mine, theirs in pairs
    ]


def flight_rows(pg: PgResults, sqlite: dict[int, Flight]) -> list[Row]:
    table = []
    raw = pg.raw.rate if pg.raw is not None else None
    for width, label in IN_FLIGHT.items():
        ours = pg.flights.get(width)
        if ours is None:
            table.append(Row(label, FAILED))
            continue
        baselines = [_sqlite(sqlite.get(width))]
        ratios = []
        targets: tuple[Target, ...]
        if width == 100:
            targets = (Target("≥ 8,000/s", ours.rate >= 8_000),)
        else:
            baselines.insert(0, f"raw {rate(raw)}" if raw else f"raw {FAILED}")
            if raw:
                ratios.append(f"{share(ours.rate / raw)} of raw")
            targets = (
                Target("≥ 10,000/s", ours.rate >= 10_000),
                Target("≥ 60% of raw", raw is not None and ours.rate >= 0.6 * raw),
            )
        table.append(
            Row(label, _flight(ours), "; ".join(baselines), "; ".join(ratios) or DASH, targets)
        )
    return table


def split_row(pg: PgResults) -> Row:
    label = SPLIT
    run, one = pg.split, pg.flights.get(1_000)
    if run is None:
        return Row(label, FAILED)
    if one is None:
        return Row(label, rate(run.rate), f"one process {FAILED}")
    ratio = run.rate / one.rate
    return Row(
        label,
        rate(run.rate),
        f"one process {rate(one.rate)}",
        f"{times(ratio)} one process",
        (Target("≥ 1.0x one process", ratio >= 1.0),),
    )


def rows(pg: PgResults, sqlite_single: Flight | None, sqlite: dict[int, Flight]) -> list[Row]:
    return [*single_rows(pg, sqlite_single), *flight_rows(pg, sqlite), split_row(pg)]


def notes(pg: PgResults, accounts: int) -> list[str]:
    lines = [
        f"PostgreSQL {pg.version} at {pg.server}, on this machine (the server shares its"
        " cores with the bench); every PostgreSQL measurement on a scratch database of its"
        " own, dropped afterwards; `synchronous_commit = on`, so an award is answered only"
        " when its COMMIT is on the server's disk.",
        f"PostgreSQL ours: PointsEngine.open(dsn) with its defaults (one writer connection,"
        f" group commit, a pool of 4 readers), awards round robin over {accounts:,} accounts.",
    ]
    if pg.raw is not None:
        lines.append(
            f"PostgreSQL raw limit: {rate(pg.raw.rate)}: the rows our writer would write"
            f" (transaction with its hashes, account, outbox event), built before the clock"
            f" starts, inserted by one asyncpg connection in batches of {RAW_BATCH:,} (COPY"
            f" and one unnest upsert), one COMMIT each; with the building of the rows (the"
            f" hashing) counted too: {rate(pg.raw.with_building)}."
        )
    if pg.split is not None:
        each = ", ".join(f"{s:,.2f} s" for s in pg.split.child_seconds)
        lines.append(
            f"PostgreSQL two processes: {pg.split.count:,} awards, {pg.split.width // 2:,}"
            f" in flight in each process, started together after warming up (each took"
            f" {each}); on two shared cores the processes and the server compete for CPU."
        )
    return lines
