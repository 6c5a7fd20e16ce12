"""The host's scheduler: a job still running is never started a second time."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.config import SchedulerSettings
from bot.scheduler import build_scheduler


async def test_a_running_job_is_not_started_twice(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = build_scheduler(SchedulerSettings())
    release = asyncio.Event()
    started = 0

    async def slow_job() -> None:
        nonlocal started
        started += 1
        await release.wait()

    caplog.set_level(logging.WARNING, logger="apscheduler")
    scheduler.add_job(slow_job, "interval", seconds=0.05, id="slow")
    scheduler.start()
    try:
        deadline = time.monotonic() + 30  # a hang guard, not a measurement
        while "maximum number of running instances" not in caplog.text:
            assert time.monotonic() < deadline, "the scheduler never tried a second run"
            await asyncio.sleep(0.02)
        assert started == 1
    finally:
        release.set()
        scheduler.shutdown(wait=False)
