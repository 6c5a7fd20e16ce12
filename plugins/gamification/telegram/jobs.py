"""Scheduled jobs: plain async functions, runnable and testable without the scheduler."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Sequence

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.models import Period
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.telegram.phrasing import cut, standing_line

log = logging.getLogger(__name__)

Notify = Callable[[int, str], Awaitable[object]]


def report_message(report: IntegrityReport) -> str:
    """The report as posted to the admins: the verdict first, unmistakable on violations."""
    head = "✅ Ledger check: clean." if report.ok else "🚨 LEDGER CHECK FAILED"
    body = html.escape(report.to_text(listed=10), quote=False)
    return cut(f"<b>{head}</b>\n<pre>{body}</pre>", marker="…</pre>")


async def integrity_job(
    services: Services, notify: Notify, admin_chat_id: int | None
) -> IntegrityReport | None:
    """Check the whole ledger, store the result as the next checkpoint, tell the admins."""
    try:
        report = await services.engine.check(record=True)
    except GamificationError as exc:
        log.error("the integrity check could not run: %s", exc)
        if admin_chat_id is not None:
            await notify(
                admin_chat_id, f"🚨 The ledger check could not run: {html.escape(str(exc))}"
            )
        return None
    services.reports.record(report)
    if not report.ok:
        first = [v.describe() for v in report.violations[:5]]
        try:
            await services.moderation.publish_later(
                "integrity.failed",
                None,
                None,
                {"violations": report.violation_count, "first": first, "digest": report.digest},
            )
        except GamificationError as exc:
            log.error("could not queue integrity.failed: %s", exc)
    level = logging.INFO if report.ok else logging.ERROR
    log.log(
        level, "integrity check: %s violations, digest %s", report.violation_count, report.digest
    )
    if admin_chat_id is not None:
        try:
            await notify(admin_chat_id, report_message(report))
        except Exception:
            # The report is stored; a failed post must not hide it from the logs.
            log.exception("could not post the integrity report to chat %s", admin_chat_id)
    return report


async def weekly_job(services: Services, notify: Notify, chats: Sequence[int]) -> int:
    """Post this week's top 10 to each chat; returns how many posts went out.

    The board is computed from the ledger for the current week, so nothing is reset and a
    missed post can be made up at any time.
    """
    posted = 0
    for chat_id in chats:
        board = await services.engine.leaderboard(chat_id, Period.WEEK, 10)
        if not board.lines:
            continue
        lines = ["<b>🏆 Top of the week</b>"]
        for line in board.lines:
            lines.append(standing_line(line, await services.people.name_of(line.user_id)))
        try:
            await notify(chat_id, "\n".join(lines))
            posted += 1
        except Exception:
            log.exception("could not post the weekly leaderboard to chat %s", chat_id)
    return posted
