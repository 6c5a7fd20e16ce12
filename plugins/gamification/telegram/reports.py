"""Reports posted to chats, in the reader's language: the integrity check and /gstats.

The operator's tools print the integrity report in English (IntegrityReport.to_text); this is
the same report for a chat. A violation's own line is the checker's technical finding and
stays as the checker wrote it.
"""

from __future__ import annotations

from plugins.gamification.services.figures import QUANTILES, Figures
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.telegram.i18n import _, decimal, ngettext, num
from plugins.gamification.telegram.phrasing import cut, esc

LISTED = 10


def report_text(report: IntegrityReport, listed: int = LISTED) -> str:
    """The report's lines (plain text, not escaped)."""
    if report.ok:
        verdict = _("Ledger integrity: CLEAN")
    else:
        verdict = _("Ledger integrity: VIOLATIONS FOUND: {count}").format(
            count=num(report.violation_count)
        )
    accounts = ngettext(
        "Checked {count} account", "Checked {count} accounts", report.accounts
    ).format(count=num(report.accounts))
    transactions = ngettext(
        "and {count} transaction in {seconds} s (up to transaction #{high_water}).",
        "and {count} transactions in {seconds} s (up to transaction #{high_water}).",
        report.transactions,
    ).format(
        count=num(report.transactions),
        seconds=decimal(report.duration_s),
        high_water=report.high_water,
    )
    waiting = ngettext(
        "Outbox: {count} event waiting", "Outbox: {count} events waiting", report.outbox_pending
    ).format(count=num(report.outbox_pending))
    if report.outbox_oldest:
        waiting += _(", the oldest since {time}.").format(time=report.outbox_oldest)
    else:
        waiting += "."
    lines = [
        verdict,
        f"{accounts} {transactions}",
        _("Digest: {digest}").format(digest=report.digest),
        f"{report.storage_check}: {report.quick_check}",
        waiting,
    ]
    anchor = report.anchor
    if anchor is not None:
        lines.append(
            _(
                "Compared with the checkpoint of {time} (transaction #{high_water},"
                " digest {digest}…)."
            ).format(
                time=anchor.created_at, high_water=anchor.high_water, digest=anchor.digest[:16]
            )
        )
    for violation in report.violations[:listed]:
        lines.append(f"- {violation.describe()}")
    if report.violation_count > listed:
        lines.append(_("… and {count} more.").format(count=num(report.violation_count - listed)))
    return "\n".join(lines)


def report_message(report: IntegrityReport) -> str:
    """The report as posted to the admins: the verdict first, unmistakable on violations."""
    head = _("✅ Ledger check: clean.") if report.ok else _("🚨 LEDGER CHECK FAILED")
    body = esc(report_text(report))
    return cut(f"<b>{head}</b>\n<pre>{body}</pre>", marker="…</pre>")


def gstats_text(f: Figures) -> str:
    """/gstats: the service's figures across every chat."""
    refusals = ", ".join(f"{k} {num(v)}" for k, v in f.refusals.most_common()) or _("none")
    p50, p95, p99 = (decimal(f.latency_ms[q]) for q in QUANTILES)
    lines = [
        _("<b>Points service</b>"),
        _("Awards: {awards} ({points} points), repeats ignored: {duplicates}").format(
            awards=num(f.awards), points=num(f.points), duplicates=num(f.duplicates)
        ),
        _("Refused: {refusals}").format(refusals=refusals),
        _("Award latency: p50 {p50} ms, p95 {p95} ms, p99 {p99} ms").format(
            p50=p50, p95=p95, p99=p99
        ),
        _("Writer: queue {queue}, {batches} batches, largest {largest}").format(
            queue=num(f.queue_depth),
            batches=num(f.writer_batches),
            largest=num(f.writer_largest_batch),
        ),
    ]
    return "\n".join([*lines, *_anti_abuse_lines(f), *_bus_lines(f), *_integrity_lines(f)])


def _anti_abuse_lines(f: Figures) -> list[str]:
    if f.anti_abuse_backend == "memory":
        return []
    shared = f.anti_abuse_active == "redis"
    where = _("shared in Redis") if shared else _("in memory (Redis away)")
    return [
        _("Anti-abuse state: {where}, {fallbacks} fallbacks, {conflicts} conflicts").format(
            where=where,
            fallbacks=num(f.anti_abuse_fallbacks),
            conflicts=num(f.anti_abuse_conflicts),
        )
    ]


def _integrity_lines(f: Figures) -> list[str]:
    report = f.last_report
    if report is None:
        return []
    if report.ok:
        verdict = _("clean")
    else:
        verdict = _("{count} VIOLATIONS").format(count=num(report.violation_count))
    return [
        _("Last integrity check: {verdict}, {count} transactions").format(
            verdict=verdict, count=num(report.transactions)
        )
    ]


def _bus_lines(f: Figures) -> list[str]:
    relay = f.relay
    if relay is None:
        return []
    lines = [
        _(
            "Outbox: {delivered} delivered, {waiting} waiting, {failures} failed publishes,"
            " breaker {state}"
        ).format(
            delivered=num(relay.delivered),
            waiting=num(relay.lag),
            failures=num(relay.failures),
            state=relay.breaker_state,
        )
    ]
    if relay.last_error:
        lines.append(_("Last outbox error: {error}").format(error=esc(relay.last_error)))
    if relay.inbound:
        counts = ", ".join(f"{k} {num(v)}" for k, v in relay.inbound.most_common())
        lines.append(_("Bus events in: {counts}").format(counts=counts))
    return lines
