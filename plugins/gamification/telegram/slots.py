"""Which scheduled slot a job's run belongs to: the same answer in every instance.

APScheduler hands a job no fire time, so the job works it out from its own trigger: the
latest fire time at or before now. Each instance runs the job when its own clock reaches
the fire time (or later, within the misfire grace), so instances whose clocks differ by
seconds or minutes still name the same slot, as long as a run is not later than the next
fire time. The slot is that fire time as UTC text, which the ledger's claim keys on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from plugins.gamification.domain.clock import format_utc

# Windows looked back through, smallest first: the first holding a fire time is walked
# forward to the latest one, so a cron firing every minute costs a step or two and a
# yearly one a single step in the widest window.
LOOKBACKS = tuple(timedelta(days=days) for days in (1 / 1440, 1 / 24, 1, 8, 32, 367, 4 * 366 + 1))
# Cron triggers fire on whole seconds: the next fire time strictly after `fire`.
_AFTER = timedelta(microseconds=1)


class Trigger(Protocol):
    """What APScheduler 3's triggers offer (CronTrigger among them)."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None: ...


def last_fire_time(trigger: Trigger, now: datetime) -> datetime | None:
    """The trigger's latest fire time at or before `now` (aware); None if none in 4 years."""
    for lookback in LOOKBACKS:
        fire = trigger.get_next_fire_time(None, now - lookback)
        if fire is None or fire > now:
            continue
        while True:
            following = trigger.get_next_fire_time(None, fire + _AFTER)
            if following is None or following > now:
                return fire
            fire = following
    return None


def slot_of(trigger: Trigger, now: datetime) -> str:
    """The slot a run at `now` belongs to: its fire time as UTC text (now's, when the trigger
    names none, so a run is never dropped for want of a slot)."""
    fire = last_fire_time(trigger, now)
    return format_utc(fire if fire is not None else now)
