"""Which multipliers apply to an award: time windows, the chat, the person's streak."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from plugins.gamification.domain.config import WEEKDAYS, MultipliersSection
from plugins.gamification.domain.models import Multiplier

ONE = Decimal(1)


class MultiplierRules:
    """Multipliers stack by product; each one is named so the breakdown can say why."""

    def __init__(self, config: MultipliersSection, timezone: str) -> None:
        self.config = config
        self._zone = ZoneInfo(timezone)
        self._chats = {int(chat): factor for chat, factor in config.chats.items()}
        self._streak = sorted((int(days), factor) for days, factor in config.streak.items())
        self._minute: int | None = None
        self._windows: tuple[Multiplier, ...] = ()

    def windows(self, moment: datetime) -> list[Multiplier]:
        """The time windows `moment` falls in, in the configured timezone.

        Using the moment of the message or event, not of processing, keeps a redelivered
        update's amount identical to the first delivery's.
        """
        if not self.config.windows:
            return []
        # Windows are whole minutes, and so is every timezone offset in use: the answer
        # holds for the whole UTC minute, and messages come many to a minute.
        minute = int(moment.timestamp() // 60)
        if minute != self._minute:
            local = moment.astimezone(self._zone)
            day, clock = WEEKDAYS[local.weekday()], local.strftime("%H:%M")
            self._minute, self._windows = (
                minute,
                tuple(
                    Multiplier(window.name, window.factor)
                    for window in self.config.windows
                    if day in window.days
                    and window.start <= clock < window.end
                    and window.factor != ONE
                ),
            )
        return list(self._windows)

    def chat(self, chat_id: int) -> list[Multiplier]:
        factor = self._chats.get(chat_id)
        return [Multiplier("chat", factor)] if factor is not None and factor != ONE else []

    def streak(self, days: int) -> list[Multiplier]:
        """The factor of the longest streak threshold reached, if any."""
        factor = None
        for threshold, value in self._streak:
            if days >= threshold:
                factor = value
        if factor is None or factor == ONE:
            return []
        return [Multiplier(f"streak {days}d", factor)]

    def for_activity(self, chat_id: int, moment: datetime, streak_days: int) -> list[Multiplier]:
        return [*self.windows(moment), *self.chat(chat_id), *self.streak(streak_days)]

    def for_event(self, chat_id: int, moment: datetime) -> list[Multiplier]:
        return [*self.windows(moment), *self.chat(chat_id)]
