"""Where the plugin's ledger lives and how it is written: set by whichever program embeds it.

A ledger location is a SQLite file (a plain path or `sqlite:///path`) or a PostgreSQL
database (`postgresql://user@host:port/db`). `parse_location` turns what an operator typed
into a `Location`, or refuses it in one sentence that never shows a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Backend = Literal["sqlite", "postgresql"]
POSTGRES_SCHEMES = ("postgresql", "postgres")


class LocationError(ValueError):
    """A ledger location that names no usable backend; the message is one sentence."""


@dataclass(frozen=True, slots=True)
class Location:
    """One ledger: a SQLite file (`path`) or a PostgreSQL database (`dsn`)."""

    backend: Backend
    path: Path | None = None
    dsn: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """The location as it may be shown in a sentence or a log: never with a password."""
        if self.path is not None:
            return str(self.path)
        return redact(self.dsn or "")

    @property
    def sqlite_path(self) -> Path:
        if self.path is None:
            raise LocationError(f"The ledger at {self.describe()} is not a SQLite file.")
        return self.path

    @property
    def postgres_dsn(self) -> str:
        if self.dsn is None:
            raise LocationError(f"The ledger at {self.describe()} is not a PostgreSQL database.")
        return self.dsn


def redact(url: str) -> str:
    """A URL without its password (and without its query, which may carry one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_location(value: str | Path | Location) -> Location:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, a plain path, or `postgresql://…`."""
    if isinstance(value, Location):
        return value
    if isinstance(value, Path):
        return Location("sqlite", path=value)
    text = value.strip()
    if not text:
        raise LocationError("The ledger location is empty; give a file path or a URL.")
    if "://" not in text:
        return Location("sqlite", path=Path(text))
    scheme = text.split("://", 1)[0].lower()
    if scheme == "sqlite":
        rest = text.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise LocationError(
                f"The SQLite URL {redact(text)!r} names no file; write sqlite:///relative/path"
                " or sqlite:////absolute/path."
            )
        return Location("sqlite", path=Path(rest[1:].split("?", 1)[0]))
    if scheme in POSTGRES_SCHEMES:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - reading it validates it
        except ValueError:
            raise LocationError(
                f"The PostgreSQL URL {redact(text)!r} has an invalid host or port."
            ) from None
        if not parts.path.strip("/") and not parts.hostname:
            raise LocationError(
                f"The PostgreSQL URL {redact(text)!r} names no server and no database;"
                " write postgresql://user@host:port/database."
            )
        return Location("postgresql", dsn=text)
    raise LocationError(
        f"The ledger URL {redact(text)!r} has an unknown scheme {scheme!r};"
        " use sqlite:///path or postgresql://user@host/database."
    )


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    """The ledger's location and its durability and patience settings.

    `synchronous` and `busy_timeout_seconds` apply to SQLite (PostgreSQL always commits
    with `synchronous_commit = on`). `retry_seconds`: how long a write that meets a lock, a
    full disk or an unreachable server is retried before its update (or bus event) is handed
    back to be delivered again.
    """

    location: Location
    synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_seconds: float = 5.0
    write_timeout_seconds: float = 30.0
    retry_seconds: float = 30.0

    @property
    def backend(self) -> Backend:
        return self.location.backend

    @property
    def path(self) -> Path:
        """The SQLite file (LocationError on PostgreSQL)."""
        return self.location.sqlite_path

    @property
    def dsn(self) -> str:
        """The PostgreSQL DSN (LocationError on SQLite)."""
        return self.location.postgres_dsn

    def describe(self) -> str:
        return self.location.describe()

    @classmethod
    def of(cls, database: str | Path | Location | DatabaseOptions) -> DatabaseOptions:
        if isinstance(database, DatabaseOptions):
            return database
        return cls(parse_location(database))
