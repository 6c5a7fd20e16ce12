"""Opening a ledger by its location: the one place that picks the storage backend.

A plain path or `sqlite:///…` opens the embedded SQLite ledger (LedgerStore); a
`postgresql://…` URL opens the shared PostgreSQL ledger (PostgresStore), whose module (and
asyncpg) is imported only then, so a SQLite bot never loads the server's driver.
"""

from __future__ import annotations

from pathlib import Path

from plugins.gamification.domain.clock import Clock
from plugins.gamification.storage.options import DatabaseOptions, Location
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.sqlite.effects import Effects
from plugins.gamification.storage.sqlite.store import LedgerStore, Synchronous


async def open_storage(
    where: DatabaseOptions | Location | str | Path,
    *,
    clock: Clock,
    effects: Effects,
    max_batch: int = 1024,
    write_timeout: float | None = None,
    synchronous: Synchronous | None = None,
    busy_timeout: float | None = None,
) -> LedgerStorage:
    """Open (creating and migrating when needed) the ledger at `where`.

    Settings given here win over those of `where` (when it is a DatabaseOptions);
    `synchronous` and `busy_timeout` are SQLite's alone and ignored for PostgreSQL, which
    always commits with synchronous_commit = on. Raises StorageError in one sentence
    (TransientStorageError when the server is away) if the ledger cannot be used.
    """
    options = DatabaseOptions.of(where)
    timeout = options.write_timeout_seconds if write_timeout is None else write_timeout
    if options.backend == "postgresql":
        from plugins.gamification.storage.postgres.store import PostgresStore

        server = PostgresStore(
            options.dsn,
            clock=clock,
            write_timeout=timeout,
            max_batch=max_batch,
            effects=effects,
        )
        return await server.open()
    store = LedgerStore(
        options.path,
        clock=clock,
        synchronous=options.synchronous if synchronous is None else synchronous,
        busy_timeout=options.busy_timeout_seconds if busy_timeout is None else busy_timeout,
        write_timeout=timeout,
        max_batch=max_batch,
        effects=effects,
    )
    return await store.open()
