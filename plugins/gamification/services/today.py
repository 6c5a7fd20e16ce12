"""Today: the start of the current local day, as the ledger stores times."""

from __future__ import annotations

from plugins.gamification.domain.models import Period
from plugins.gamification.engine import PointsEngine


class Today:
    """Call it for today's start; worked out once a minute (a day starts on a whole minute
    in every timezone in use)."""

    def __init__(self, engine: PointsEngine) -> None:
        self._engine = engine
        self._minute: int | None = None
        self._start = ""

    def __call__(self) -> str:
        now = self._engine.clock.now()
        minute = int(now.timestamp() // 60)
        if minute != self._minute:
            start = self._engine.period_start(Period.DAY, now)
            assert start is not None
            self._minute, self._start = minute, start
        return self._start
