"""The webhook rows: one instance on SQLite, one and two on PostgreSQL, with CPU per message."""

from __future__ import annotations

from benchmarks.report import DASH, Row, rate, times
from benchmarks.webhook import CHATS, WebhookRun

FAILED = "failed (see the notes)"
NOT_MEASURED = "not measured"
SQLITE = "Webhook end to end, SQLite, one instance"
PG_ONE = "Webhook end to end, PostgreSQL, one instance"
PG_TWO = "Webhook end to end, PostgreSQL, two instances"
# The rows the PostgreSQL section adds, in order.
PG_LABELS = (PG_ONE, PG_TWO)


def _ours(run: WebhookRun) -> str:
    each = ", ".join(f"{us:,.0f}" for us in run.cpu_us_per_message)
    return f"{rate(run.rate)} ({run.scored:,} of {run.messages:,} scored); CPU {each} µs/message"


def sqlite_row(run: WebhookRun | None) -> Row:
    if run is None:
        return Row(SQLITE, FAILED)
    return Row(SQLITE, _ours(run))


def postgres_rows(
    sqlite: WebhookRun | None, one: WebhookRun | None, two: WebhookRun | None
) -> list[Row]:
    table = []
    if one is None:
        table.append(Row(PG_ONE, FAILED))
    else:
        base = f"SQLite one instance {rate(sqlite.rate)}" if sqlite else f"SQLite {NOT_MEASURED}"
        ratio = f"{times(one.rate / sqlite.rate)} SQLite's" if sqlite else DASH
        table.append(Row(PG_ONE, _ours(one), base, ratio))
    if two is None:
        table.append(Row(PG_TWO, FAILED))
    elif one is None:
        table.append(Row(PG_TWO, _ours(two), f"one instance {FAILED}"))
    else:
        table.append(
            Row(
                PG_TWO,
                _ours(two),
                f"one instance {rate(one.rate)}",
                f"{times(two.rate / one.rate)} one instance",
            )
        )
    return table


def notes(runs: list[WebhookRun]) -> list[str]:
    if not runs:
        return []
    lines = [
        f"Webhook end to end: `python -m bot run --webhook` processes with the default"
        f" config, a local Bot API stand-in, and a client in the bench process playing"
        f" Telegram: {CHATS} chats at once, each chat's next update only after the previous"
        f" one was answered 2xx, requests round robin over the instances. Each timed"
        f" message is a member's second or third of the run (their first was an untimed"
        f" warm-up), all within the rate rules, so every one should score; CPU is each"
        f" instance's user + system time (every thread, from /proc) over the timed messages"
        f" it answered."
    ]
    for run in runs:
        client = run.client_cpu / run.messages * 1e6
        lines.append(
            f"Webhook {run.storage}, {run.instances} instance(s): {run.messages:,} messages in"
            f" {run.seconds:,.2f} s, {run.scored:,} scored, answered per instance"
            f" {', '.join(f'{n:,}' for n in run.answered)}, {run.retries:,} sent again;"
            f" the bot's CPU over all instances {run.total_cpu_us_per_message:,.0f} µs per"
            f" message, the client's {client:,.0f} µs."
        )
    return lines
