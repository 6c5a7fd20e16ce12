"""Operator tasks on any ledger location: each one dispatched to its backend's implementation.

A SQLite file goes to storage/sqlite (blocking calls, run on a thread); a PostgreSQL
database gets one connection of its own for the task and goes to storage/postgres. Every
failure reaches the caller as a GamificationError with one sentence and no password.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.storage.export import ExportFormat
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.options import Location
from plugins.gamification.storage.rebuild import BalanceDifference
from plugins.gamification.storage.transfer import (
    LedgerSide,
    TransferRefusedError,
    TransferResult,
    copy_ledger,
)

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


@asynccontextmanager
async def _postgres(location: Location) -> AsyncIterator[asyncpg.Connection]:
    from plugins.gamification.storage.postgres.connect import connect

    conn = await connect(location.postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _on(
    location: Location,
    on_sqlite: Callable[[Path], T],
    on_postgres: Callable[[asyncpg.Connection, str], Awaitable[T]],
) -> T:
    if location.backend == "sqlite":
        return await asyncio.to_thread(on_sqlite, location.sqlite_path)
    async with _postgres(location) as conn:
        return await on_postgres(conn, location.describe())


async def check(
    location: Location, *, record: bool, clock: Clock | None = None
) -> IntegrityReport:
    """The integrity check; CheckpointNotStoredError (holding the report) if only recording
    the checkpoint failed."""
    from plugins.gamification.storage.postgres import maintenance as pg
    from plugins.gamification.storage.sqlite.integrity import run_check

    clock = clock or SystemClock()
    return await _on(
        location,
        lambda path: run_check(path, record=record, clock=clock),
        lambda conn, where: pg.check(conn, where, record=record, clock=clock),
    )


async def backup(location: Location, dest: Path) -> IntegrityReport:
    """A consistent copy as a SQLite ledger file at `dest` (on both backends), checked."""
    from plugins.gamification.storage.postgres import maintenance as pg
    from plugins.gamification.storage.sqlite import maintenance as lite

    return await _on(
        location,
        lambda path: lite.backup(path, dest),
        lambda conn, where: pg.backup(conn, where, dest),
    )


async def export(location: Location, out: TextIO, fmt: ExportFormat, chat_id: int | None) -> int:
    from plugins.gamification.storage.postgres import maintenance as pg
    from plugins.gamification.storage.sqlite import maintenance as lite

    return await _on(
        location,
        lambda path: lite.export(path, out, fmt, chat_id),
        lambda conn, where: pg.export(conn, where, out, fmt, chat_id),
    )


async def rebuild_balances(
    location: Location, *, apply: bool, actor: str, clock: Clock | None = None
) -> list[BalanceDifference]:
    from plugins.gamification.storage.postgres import maintenance as pg
    from plugins.gamification.storage.sqlite import maintenance as lite

    clock = clock or SystemClock()
    return await _on(
        location,
        lambda path: lite.rebuild_balances(path, apply=apply, actor=actor, clock=clock),
        lambda conn, where: pg.rebuild_balances(
            conn, where, apply=apply, actor=actor, at=format_utc(clock.now())
        ),
    )


def same_ledger(a: Location, b: Location) -> bool:
    if a.backend != b.backend:
        return False
    if a.path is not None and b.path is not None:
        return a.path.resolve() == b.path.resolve()
    return a.dsn == b.dsn


async def migrate(source: Location, target: Location) -> TransferResult:
    """Copy the whole ledger at `source` into the empty (or new) ledger at `target`, verified.

    Raises TransferRefusedError (nothing written), TransferMismatchError (rolled back), or
    a StorageError for a ledger that cannot be opened.
    """
    from plugins.gamification.storage.postgres.connect import storage_error as pg_error
    from plugins.gamification.storage.sqlite.faults import storage_error as lite_error

    if same_ledger(source, target):
        raise TransferRefusedError(
            f"The source and the target are the same ledger ({source.describe()});"
            " name another target."
        )
    async with _side(source, target=False) as src, _side(target, target=True) as dst:
        try:
            return await copy_ledger(src, dst)
        except GamificationError:
            raise
        except sqlite3.Error as exc:
            raise lite_error(
                exc, (target if target.backend == "sqlite" else source).describe()
            ) from exc
        except Exception as exc:
            where = target if target.backend == "postgresql" else source
            raise pg_error(exc, where.describe()) from exc


@asynccontextmanager
async def _side(location: Location, *, target: bool) -> AsyncIterator[LedgerSide]:
    from plugins.gamification.storage.postgres.connect import storage_error as pg_error
    from plugins.gamification.storage.postgres.transfer import PostgresSide
    from plugins.gamification.storage.sqlite.transfer import SqliteSide

    if location.backend == "sqlite":
        path = location.sqlite_path
        side = SqliteSide.target(path) if target else SqliteSide.source(path)
        kept = False
        try:
            yield side
            kept = True
        finally:
            side.close(kept=kept)
        return
    where = location.describe()
    async with _postgres(location) as conn:
        try:
            pg_side = await (PostgresSide.target if target else PostgresSide.source)(conn, where)
        except GamificationError:
            raise
        except Exception as exc:
            raise pg_error(exc, where) from exc
        yield pg_side
