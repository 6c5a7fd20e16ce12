"""IntegrityReports: the latest integrity report of this process, for monitoring."""

from __future__ import annotations

from plugins.gamification.storage.integrity import IntegrityReport


class IntegrityReports:
    """Holds the newest report; the scheduled check and /integrity record theirs here."""

    def __init__(self) -> None:
        self._latest: IntegrityReport | None = None

    @property
    def latest(self) -> IntegrityReport | None:
        return self._latest

    def record(self, report: IntegrityReport) -> None:
        self._latest = report
