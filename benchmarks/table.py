"""The results of a run, and the table's rows and notes made from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from benchmarks import app, webhook_table
from benchmarks.baselines import RawLimit
from benchmarks.cards import CardRenders
from benchmarks.check import IntegrityRun
from benchmarks.ledger import BURST, Flight
from benchmarks.memory import Memory
from benchmarks.outbox import Outbound
from benchmarks.report import (
    DASH,
    Row,
    Target,
    ms,
    percentile,
    plural,
    rate,
    share,
    times,
)
from benchmarks.scale import FULL_INTEGRITY_TX, FULL_MEMORY_AWARDS, Scale
from benchmarks.webhook import WebhookRun

FAILED = "failed (see the notes)"
WIDTHS = (10, 100, 1_000)

SINGLE_P50 = "single award latency p50"
SINGLE_P99 = "single award latency p99"
IN_FLIGHT = {width: f"{width:,} awards in flight" for width in WIDTHS}
BURST_LABEL = "burst of 50 concurrent awards, until all durable"
END_TO_END = "end-to-end group messages (Dispatcher, routers, anti-abuse, engine)"
END_TO_END_CPU = "end-to-end CPU per scored message (every thread)"
BUS_IN = "event bus in: events turned into awards"
BUS_OUT = "event bus out: events delivered by the relay"
INTEGRITY = "integrity check"
MEMORY = "memory: RSS growth"
CARDS = "rank card render (draw + PNG)"
# Every row the table always has, in order (integrity and memory labels get their counts).
LABELS = (SINGLE_P50, SINGLE_P99, *IN_FLIGHT.values(), BURST_LABEL, END_TO_END, END_TO_END_CPU,
          webhook_table.SQLITE, BUS_IN,
          BUS_OUT, INTEGRITY, MEMORY, CARDS)  # fmt: skip


@dataclass(slots=True)
class Results:
    """What each measurement returned; None where it failed (the failure is listed)."""

    raw: RawLimit | None = None
    naive_single: Flight | None = None
    naive: dict[int, Flight] = field(default_factory=dict)
    single: Flight | None = None
    flights: dict[int, Flight] = field(default_factory=dict)
    bursts: list[float] | None = None
    end_to_end: app.EndToEnd | None = None
    webhook: WebhookRun | None = None
    inbound: app.Inbound | None = None
    outbound: Outbound | None = None
    integrity: IntegrityRun | None = None
    memory: Memory | None = None
    cards: CardRenders | None = None
    journal_mode: str = "unknown"
    failures: list[str] = field(default_factory=list)


def _flight(f: Flight) -> str:
    return f"{rate(f.rate)}; p50 {ms(f.p50_ms)}, p99 {ms(f.p99_ms)}; avg {ms(f.average_ms)}/award"


def _compared(mine: float, naive: float | None) -> str:
    if naive is None:
        return DASH
    if mine <= naive:
        return f"{times(naive / mine)} faster than naive"
    return f"{times(mine / naive)} slower than naive"


def single_rows(ours: Flight | None, naive: Flight | None) -> list[Row]:
    p50_label, p99_label = SINGLE_P50, SINGLE_P99
    if ours is None:
        return [Row(p50_label, FAILED), Row(p99_label, FAILED)]
    rows = []
    for label, mine, theirs, target, published in (
        (p50_label, ours.p50_ms, naive.p50_ms if naive else None, 1.0, "0.58 ms (single op)"),
        (p99_label, ours.p99_ms, naive.p99_ms if naive else None, None, DASH),
    ):
        rows.append(
            Row(
                label,
                ms(mine),
                f"naive {ms(theirs)}" if theirs is not None else FAILED,
                _compared(mine, theirs),
                (Target(f"≤ {target:g} ms", mine <= target),) if target is not None else (),
                published,
            )
        )
    return rows


def flight_row(
    label: str, width: int, ours: Flight | None, naive: Flight | None, limit: RawLimit | None
) -> Row:
    raw = limit.rate if limit is not None else None
    if ours is None:
        return Row(label, FAILED)
    baselines = [f"naive {rate(naive.rate)}" if naive else f"naive {FAILED}"]
    baselines.append(f"raw {rate(raw)}" if raw else f"raw {FAILED}")
    ratios = []
    if naive:
        ratios.append(f"{times(ours.rate / naive.rate)} naive")
    if raw:
        ratios.append(f"{share(ours.rate / raw)} of raw")
    targets: tuple[Target, ...] = ()
    published = DASH
    if width == 100:
        met = naive is not None and ours.rate >= 10 * naive.rate
        targets = (Target("≥ 10x naive", met),)
        published = "0.18 ms concurrent op average"
    elif width == 1_000:
        targets = (
            Target("≥ 20,000/s", ours.rate >= 20_000),
            Target("≥ 60% of raw", raw is not None and ours.rate >= 0.6 * raw),
        )
        published = "8,053 ops/s"
    return Row(label, _flight(ours), "; ".join(baselines), "; ".join(ratios) or DASH,
               targets, published)  # fmt: skip


def burst_row(label: str, bursts: list[float] | None) -> Row:
    if not bursts:
        return Row(label, FAILED)
    p50, p99 = percentile(bursts, 50) * 1000, percentile(bursts, 99) * 1000
    ours = f"p50 {ms(p50)}, p99 {ms(p99)} over {len(bursts)} bursts of {BURST}"
    return Row(label, ours, targets=(Target("≤ 5 ms (p50)", p50 <= 5),),
               published="6.21 ms (50 concurrent)")  # fmt: skip


def end_to_end_row(label: str, run: app.EndToEnd | None) -> Row:
    if run is None:
        return Row(label, FAILED)
    ratio = run.rate / run.noop_rate
    ours = f"{rate(run.rate)} messages ({run.scored:,} of {run.messages:,} scored)"
    return Row(label, ours, f"no-op Dispatcher {rate(run.noop_rate)}",
               f"{share(ratio)} of no-op", (Target("≥ 35% of no-op", ratio >= 0.35),))  # fmt: skip


def end_to_end_cpu_row(label: str, run: app.EndToEnd | None) -> Row:
    """CPU of every thread per scored message against the no-op's per update: the unit
    that travels between machines (a slower machine scales both)."""
    if run is None:
        return Row(label, FAILED)
    if not run.scored:
        return Row(label, "no message scored")
    ours = run.cpu_seconds / run.scored
    ratio = ours / run.noop_cpu_per_message
    noop = f"no-op {run.noop_cpu_per_message * 1e6:,.0f} µs per update"
    return Row(label, f"{ours * 1e6:,.0f} µs", noop, f"{times(ratio)} the no-op",
               (Target("≤ 2.7x no-op", ratio <= 2.7),))  # fmt: skip


def outbound_row(label: str, run: Outbound | None) -> Row:
    if run is None:
        return Row(label, FAILED)
    return Row(label, f"{rate(run.rate)} events ({run.received:,} of {run.pending:,})")


def inbound_row(label: str, run: app.Inbound | None) -> Row:
    if run is None:
        return Row(label, FAILED)
    awarded = run.outcomes.get("awarded", 0)
    return Row(
        label,
        f"{rate(run.rate)} awards ({awarded:,} of {run.events:,} events awarded)",
        targets=(Target("≥ 10,000 awards/s", run.rate >= 10_000),),
        published="> 500 events/s",
    )


def integrity_row(label: str, run: IntegrityRun | None, scale: Scale) -> Row:
    if run is None:
        return Row(f"{label}, {scale.integrity_tx:,} transactions", FAILED)
    judged = run.transactions >= FULL_INTEGRITY_TX
    verdict = "clean" if run.clean else "NOT CLEAN"
    return Row(
        f"{label}, {run.transactions:,} transactions",
        f"{run.seconds:,.2f} s ({run.accounts:,} accounts, {verdict})",
        targets=(Target("≤ 15 s for 1,000,000", run.seconds <= 15 if judged else None),),
    )


def memory_row(label: str, run: Memory | None, scale: Scale) -> Row:
    name = f"{label} over {scale.memory_awards:,} awards on {scale.memory_accounts:,} accounts"
    if run is None:
        return Row(name, FAILED)
    growth = run.growth_mb
    if growth is None:
        return Row(name, "n/a (no /proc/self/status here)")
    judged = run.awards >= FULL_MEMORY_AWARDS
    return Row(
        name,
        f"{growth:+,.1f} MB",
        targets=(Target("≤ 50 MB for 1,000,000", growth <= 50 if judged else None),),
        published="< 50 MB",
    )


def cards_row(label: str, run: CardRenders | None) -> Row:
    if run is None:
        return Row(label, FAILED)
    p50, p99 = percentile(run.times, 50), percentile(run.times, 99)
    return Row(
        label,
        f"p50 {ms(p50)}, p99 {ms(p99)} over {len(run.times):,} {plural(len(run.times), 'card')}"
        f" (CPU p50 {ms(percentile(run.cpu, 50))}; 800x280, up to {run.png_bytes / 1024:,.0f} KB)",
        targets=(Target("< 30 ms (p50)", p50 < 30),),
    )


def rows(r: Results, scale: Scale) -> list[Row]:
    table = single_rows(r.single, r.naive_single)
    for width, label in IN_FLIGHT.items():
        table.append(flight_row(label, width, r.flights.get(width), r.naive.get(width), r.raw))
    table.append(burst_row(BURST_LABEL, r.bursts))
    table.append(end_to_end_row(END_TO_END, r.end_to_end))
    table.append(end_to_end_cpu_row(END_TO_END_CPU, r.end_to_end))
    table.append(webhook_table.sqlite_row(r.webhook))
    table.append(inbound_row(BUS_IN, r.inbound))
    table.append(outbound_row(BUS_OUT, r.outbound))
    table.append(integrity_row(INTEGRITY, r.integrity, scale))
    table.append(memory_row(MEMORY, r.memory, scale))
    table.append(cards_row(CARDS, r.cards))
    return table


def _raw(r: Results) -> str:
    if r.raw is None:
        return FAILED
    return f"{rate(r.raw.rate)}; the inserts and COMMITs alone ran at {rate(r.raw.inserts_only)}"


def notes(r: Results, scale: Scale) -> list[str]:
    """What the figures are made of, and the details behind each row."""
    lines = [
        'Ours: PointsEngine.open(path, synchronous="FULL") with its defaults (an outbox row'
        " per award, level events, no achievements); each award is 20 points for a text"
        " message, awaited until committed; each measurement on a fresh SQLite file, after a"
        " warm-up; every timed phase runs with what was alive at its start frozen out of"
        " the garbage collector (gc.freeze), as run_bot does after startup. Percentiles are"
        " nearest-rank.",
        f"Accounts: awards go round robin over {scale.accounts:,} accounts in 10 chats.",
        "Naive engine: one aiosqlite connection and an asyncio.Lock; per award BEGIN"
        " IMMEDIATE, read the account, insert the same hash-chained row, upsert the balance,"
        " COMMIT.",
        f"Raw limit: plain sqlite3 on one thread building the same rows (transaction with its"
        f" real hashes, account, outbox) for {scale.in_flight:,} awards over the same"
        f" accounts and inserting them with executemany in batches of 1,000, one COMMIT each:"
        f" {_raw(r)}.",
    ]
    if r.naive:
        naive = ", ".join(f"{w:,} in flight {rate(f.rate)}" for w, f in sorted(r.naive.items()))
        lines.append(f"Naive engine throughput: {naive}.")
    if r.end_to_end is not None:
        e = r.end_to_end
        refused = ", ".join(f"{k} {v:,}" for k, v in sorted(e.refused.items())) or "none"
        lines.append(
            f"End-to-end: the default config and plugin registry on build_app with a"
            f" recording session; {e.users:,} people in 10 chats write one text each per"
            f" round, a fake clock moves {app.STEP:.0f} s between rounds and a day every"
            f" {app.ROUNDS_A_DAY} rounds; from a day's second round on, half of each chat"
            f" answers (replies to) another member's message of the round before, so"
            f" everyone keeps the engagement record full points need and each answer pays"
            f" an engagement bonus; 100 updates in flight (as polling hands them out);"
            f" refused: {refused}. The first round, in which every"
            f" person is new (remembered, today's total and streak read), ran at"
            f" {rate(e.first_sight_rate)} and is not in the figure."
        )
        cores = os.cpu_count() or 1
        lines.append(
            f"End-to-end CPU, every thread of the process: {e.cpu_per_message * 1e6:,.0f} µs"
            f" per message for ours, {e.noop_cpu_per_message * 1e6:,.0f} µs for the no-op."
            f" Even spread perfectly over this machine's {cores} {plural(cores, 'core')},"
            f" that much work per message could reach at most {share(e.ceiling(cores))} of"
            f" the no-op rate."
        )
    if r.inbound is not None:
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(r.inbound.outcomes.items()))
        lines.append(
            f"Event bus in: game.won events on the plugin's own InProcessBus, at most 1,000"
            f" published and not yet awarded; outcomes: {outcomes}; dropped by the bus:"
            f" {r.inbound.dropped:,}."
        )
    if r.outbound is not None:
        o = r.outbound
        lines.append(
            f"Event bus out: {o.pending:,} outbox rows pre-filled by awards; run_once()"
            f" published {o.delivered:,}, the counting subscriber got {o.received:,},"
            f" the bus dropped {o.dropped:,}."
        )
    if r.integrity is not None:
        lines.append(
            f"Integrity: run_check(record=True, quick_check=True), as the daily job runs it,"
            f" on a ledger bulk-written in {r.integrity.build_seconds:,.1f} s."
        )
    m = r.memory
    if m is not None and m.before is not None and m.after is not None:
        lines.append(
            f"Memory: VmRSS {m.before / 2**20:,.1f} MB before and {m.after / 2**20:,.1f} MB"
            f" after {m.awards:,} awards (1,000 in flight, {rate(m.awards / m.seconds)})."
        )
    lines += [f"FAILED: {failure}" for failure in r.failures]
    return lines
