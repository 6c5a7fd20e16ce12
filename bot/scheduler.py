"""APScheduler 3 wiring: one AsyncIOScheduler per host, configured from `[scheduler]`."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config import SchedulerSettings


def build_scheduler(settings: SchedulerSettings) -> AsyncIOScheduler:
    """A scheduler whose jobs run one instance at a time and coalesce missed runs."""
    return AsyncIOScheduler(
        timezone=settings.timezone,
        job_defaults={
            "coalesce": settings.coalesce,
            "max_instances": 1,
            "misfire_grace_time": settings.misfire_grace_seconds,
        },
    )
