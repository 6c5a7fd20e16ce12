"""Where the plugin's ledger lives and how it is written: set by whichever program embeds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    """The SQLite ledger file and its durability and patience settings.

    `retry_seconds`: how long a write that meets a lock or a full disk is retried before its
    update (or bus event) is handed back to be delivered again.
    """

    path: Path
    synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_seconds: float = 5.0
    write_timeout_seconds: float = 30.0
    retry_seconds: float = 30.0

    @classmethod
    def of(cls, database: str | Path | DatabaseOptions) -> DatabaseOptions:
        return database if isinstance(database, DatabaseOptions) else cls(Path(database))
