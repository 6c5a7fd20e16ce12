"""The SQLite store behind an engine, for tests that read or poke the file's tables."""

from __future__ import annotations

from plugins.gamification import PointsEngine
from plugins.gamification.storage.sqlite.store import LedgerStore


def sqlite_store(engine: PointsEngine) -> LedgerStore:
    """The engine's store, which must be the SQLite one (its raw statements are its own)."""
    store = engine.store
    assert isinstance(store, LedgerStore)
    return store
