"""Fixtures that run the whole bot offline: a started TelegramHarness per test, closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.backends import LedgerBackend, SqliteBackend
from tests.support.telegram_harness import TelegramHarness

MakeHarness = Callable[..., Awaitable[TelegramHarness]]


@pytest.fixture
def ledger_backend(tmp_path: Path) -> LedgerBackend:
    """The plugin's own tests (arguments, bad input, services) run on SQLite alone: what
    they judge happens before storage, and tests/contract runs the ledger on every backend."""
    return SqliteBackend(tmp_path)


@pytest.fixture
async def make_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeHarness]:
    """`await make_harness(admins=..., gamification={...})`: started, closed at teardown.

    Every message the bot sent must be valid Telegram HTML; that is checked at teardown.
    """
    # load_config(None) reads ./config.toml when there is one; a developer's must not leak in.
    monkeypatch.chdir(tmp_path)
    started: list[TelegramHarness] = []

    async def make(database: Path | None = None, **kwargs: Any) -> TelegramHarness:
        path = database or tmp_path / f"bot{len(started)}.sqlite3"
        harness = await TelegramHarness(path, **kwargs).start()
        started.append(harness)
        return harness

    yield make
    for harness in reversed(started):
        await harness.close()
    for harness in started:
        harness.assert_sent_html_valid()


@pytest.fixture
async def harness(make_harness: MakeHarness) -> TelegramHarness:
    """The default bot: chat -100 has user 9 as its administrator."""
    return await make_harness(admins={-100: {9}})
