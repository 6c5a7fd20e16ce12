"""StorageHealth: whether the ledger can be written right now, logged once per outage.

A lock held by another process or a full disk fails every batch until it passes: the
operator needs one warning when it starts and one line when it ends (how long, how much
waited), not a line per message or per batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from plugins.gamification.domain.errors import TransientStorageError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StorageHealth:
    """Counters and the current outage; the store and the retries update it, metrics read it."""

    path: Path | str
    # Monotonic start of the current outage, None while writes go through.
    since: float | None = None
    cause: str = ""
    outages: int = 0
    # Every wait of an operation for a retry, and every operation handed back to its
    # sender (an update left unconfirmed, an event parked) after the retries ran out.
    retries: int = 0
    handed_back: int = 0
    # Of the current outage: operations that had to wait, and those handed back.
    _delayed: set[int] = field(default_factory=set)
    _returned: int = 0

    @property
    def unavailable(self) -> bool:
        return self.since is not None

    def failed(self, error: TransientStorageError) -> None:
        """A write (or read) failed with a fault that may pass; warns only when it starts."""
        if self.since is not None:
            return
        self.since = time.monotonic()
        self.cause = str(error)
        self.outages += 1
        log.warning(
            "The ledger cannot be written now: %s Scoring waits and retries; updates and"
            " events are not confirmed until their points are committed.",
            error,
        )

    def delayed(self, operation: int) -> None:
        """Operation `operation` (any id unique while it runs) had to wait for a retry."""
        self.retries += 1
        self._delayed.add(operation)

    def gave_up(self) -> None:
        self.handed_back += 1
        self._returned += 1

    def recovered(self) -> None:
        """A write committed: the outage, if any, is over."""
        if self.since is None:
            return
        log.info(
            "The ledger %s is writable again after %.1f s; %d operations were delayed,"
            " %d of them handed back to be delivered again.",
            self.path,
            time.monotonic() - self.since,
            len(self._delayed),
            self._returned,
        )
        self.since = None
        self.cause = ""
        self._delayed.clear()
        self._returned = 0


@dataclass(slots=True)
class WriterStats:
    """Counters the writer keeps for monitoring; read them, never write them."""

    batches: int = 0
    operations: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
