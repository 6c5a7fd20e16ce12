"""The host's pages server on `[web] listen`: an address that cannot be had is one sentence
and exit 2, with nothing left running (the pages themselves: tests/gamification/web)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import main
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.live_bot import TOKEN


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[FakeBotAPI]:
    for name in list(os.environ):
        if name.startswith("BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()


async def test_run_refuses_a_pages_address_in_use_with_exit_2(
    api: FakeBotAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "web.toml"
        config.write_text(
            f'[bot]\ntoken = "{TOKEN}"\napi_server = "{api.url}"\n'
            f'[storage]\ndatabase = "{tmp_path / "ledger.sqlite3"}"\n'
            f'[web]\nlisten = "127.0.0.1:{port}"\npublic_url = "https://points.example.org"\n'
        )
        code = await asyncio.to_thread(main, ["run", "--config", str(config)])
    assert code == 2
    [refusal] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert refusal.getMessage().startswith(
        f"Cannot serve the chat pages at [web] listen = '127.0.0.1:{port}': "
    )
    assert refusal.getMessage().endswith("; choose another address or stop what uses it.")
    assert refusal.exc_info is None
