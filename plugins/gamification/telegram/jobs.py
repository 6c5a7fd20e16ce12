"""Scheduled jobs: plain async functions, runnable and testable without the scheduler.

Run by the scheduler, a job gets its trigger (`schedule`) and claims its slot in the ledger
first (see slots.py): of several instances sharing a ledger, only the first claimant runs
it, the others log one line and do nothing. The weekly post claims each chat's post on its
own, so an instance that dies half-way leaves only the chats it claimed unposted this
week, never the others. A claim that cannot be made is the job's failure: one error line
(and, for the check, the admins told), never a run that might be another instance's too.
Called without `schedule` (an operator's run on demand, a test), a job claims nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.models import Period
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.telegram.i18n import Speaker, _, num
from plugins.gamification.telegram.phrasing import esc, standing_line
from plugins.gamification.telegram.reports import report_message
from plugins.gamification.telegram.slots import Trigger, slot_of
from plugins.gamification.telegram.texts import name_getter

log = logging.getLogger(__name__)

Notify = Callable[[int, str], Awaitable[object]]

# The names runs are claimed under in the ledger (the weekly post's with the chat id).
INTEGRITY_RUN = "integrity"
WEEKLY_RUN = "weekly"


def claimant() -> str:
    """Names one claim attempt: the host and process (for an operator reading the claims),
    and a random part, so two claims are never taken for one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def claimed(services: Services, job: str, schedule: Trigger | None) -> str | None:
    """The slot this run claimed (empty: unscheduled, nothing to claim), or None when another
    instance claimed it first. Raises GamificationError when the claim cannot be made."""
    if schedule is None:
        return ""
    slot = slot_of(schedule, services.clock.now())
    # A transient fault is retried like any write; the same claimant, so a retry of a claim
    # that did commit still wins.
    if await services.retry(services.engine.claim_job_run, job, slot, claimant()):
        return slot
    log.info("scheduled run %r already run by another instance for slot %s", job, slot)
    return None


@asynccontextmanager
async def _speaking(speaker: Speaker | None, chat_id: int) -> AsyncIterator[None]:
    """Texts made inside are in the chat's language (English without a speaker)."""
    if speaker is None:
        yield
        return
    with speaker.speaking(await speaker.language_of_chat(chat_id)):
        yield


async def integrity_job(
    services: Services,
    notify: Notify,
    admin_chat_id: int | None,
    schedule: Trigger | None = None,
    speaker: Speaker | None = None,
) -> IntegrityReport | None:
    """Check the whole ledger, store the result as the next checkpoint, tell the admins.

    With `schedule`, only the instance that claims the slot runs it (None for the others).
    """
    try:
        if await claimed(services, INTEGRITY_RUN, schedule) is None:
            return None
        report = await services.engine.check(record=True)
    except GamificationError as exc:
        log.error("the integrity check could not run: %s", exc)
        if admin_chat_id is not None:
            async with _speaking(speaker, admin_chat_id):
                # The fault as the ledger worded it: for the admins, like a log line.
                text = _("🚨 The ledger check could not run: {error}").format(error=esc(str(exc)))
            await notify(admin_chat_id, text)
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
            async with _speaking(speaker, admin_chat_id):
                text = report_message(report)
            await notify(admin_chat_id, text)
        except Exception:
            # The report is stored; a failed post must not hide it from the logs.
            log.exception("could not post the integrity report to chat %s", admin_chat_id)
    return report


async def weekly_job(
    services: Services,
    notify: Notify,
    chats: Sequence[int],
    schedule: Trigger | None = None,
    speaker: Speaker | None = None,
) -> int:
    """Post this week's top 10 to each chat; returns how many posts went out.

    The board is computed from the ledger for the current week, so nothing is reset and a
    missed post can be made up at any time. With `schedule`, each chat's post is claimed
    first: of several instances, one posts to each chat.
    """
    posted = 0
    for chat_id in chats:
        try:
            if await claimed(services, f"{WEEKLY_RUN} {chat_id}", schedule) is None:
                continue
        except GamificationError as exc:
            log.error("the weekly leaderboard for chat %s could not be posted: %s", chat_id, exc)
            continue
        board = await services.engine.leaderboard(chat_id, Period.WEEK, 10)
        if not board.lines:
            continue
        name_of = name_getter(services)
        async with _speaking(speaker, chat_id):
            lines = [_("<b>🏆 Top of the week</b>")]
            for line in board.lines:
                lines.append(standing_line(line, await name_of(line.user_id), num))
        try:
            await notify(chat_id, "\n".join(lines))
            posted += 1
        except Exception:
            log.exception("could not post the weekly leaderboard to chat %s", chat_id)
    return posted
