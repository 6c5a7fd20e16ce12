"""The webhook server: the real Dispatcher and gamification plugin behind a real HTTP port.

Every request goes over HTTP to the server's own aiohttp application; the plugin scores into
a real SQLite ledger; Telegram's side (replies) is the recording session.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import Router
from aiogram.types import Message, TelegramObject

from bot.app import App, build_app
from bot.config import load_config
from bot.registry import default_plugins, default_registry
from bot.testing import RecordingSession, UpdateFactory
from bot.webhook import SECRET_HEADER, WebhookServer
from tests.support.live_bot import wait_for

SECRET = "s3cret_webhook-token"
CHAT = UpdateFactory.group(-4242, "Webhook group")
ANN = UpdateFactory.user(71, "Ann")
TEXT = "Good morning everyone, the garden looks lovely after the rain today"


class StorageBusy(Exception):
    """What a plugin raises when its storage stayed unavailable: deliver the update again."""

    retry_update = True


@dataclass
class Probe:
    """A router after the plugin's: sees every message (the plugin lets them go on), may
    hold one until `release`, fail it, or ask for it again before any handler runs."""

    entered: list[int] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold: set[int] = field(default_factory=set)
    fail: set[int] = field(default_factory=set)
    # update ids whose next delivery asks to be delivered again (before the plugin scores).
    busy: set[int] = field(default_factory=set)

    def router(self) -> Router:
        router = Router(name="probe")

        @router.message()
        async def on_message(message: Message) -> None:
            self.entered.append(message.message_id)
            if message.message_id in self.hold:
                await self.release.wait()
            if message.message_id in self.fail:
                raise RuntimeError(f"probe failed on {message.message_id}")

        return router

    async def middleware(
        self, handler: Callable[..., Any], event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        update_id = getattr(event, "update_id", None)
        if update_id in self.busy:
            self.busy.discard(update_id)
            raise StorageBusy("the ledger is locked")
        return await handler(event, data)


@dataclass
class Served:
    app: App
    server: WebhookServer
    probe: Probe
    db: Path
    url: str
    client: aiohttp.ClientSession
    updates: UpdateFactory
    task: asyncio.Task[None]

    async def post(self, body: Any, *, secret: str | None = SECRET) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        data = body if isinstance(body, bytes) else None
        payload = None if isinstance(body, bytes) else body
        async with self.client.post(self.url, data=data, json=payload, headers=headers) as reply:
            if reply.status == 200:
                assert not await reply.read(), "the answer never carries a Bot API method"
            return reply.status

    def message(self, text: str = TEXT) -> dict[str, Any]:
        return self.updates.message(CHAT, ANN, text).model_dump(
            mode="json", exclude_none=True, by_alias=True
        )

    def scored(self) -> list[str]:
        conn = sqlite3.connect(self.db)
        try:
            rows = conn.execute("SELECT idem_key FROM transactions WHERE kind = 'activity'")
            return [row[0] for row in rows]
        finally:
            conn.close()


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "ledger.sqlite3"
    (tmp_path / "config.toml").write_text(f'[storage]\ndatabase = "{db}"\n')
    registry = default_registry()
    config = load_config(
        tmp_path / "config.toml",
        plugin_models=registry.config_models(),
        environ={},
        default_plugins=default_plugins(),
    )
    app = await build_app(config, registry, session=RecordingSession(strict=False))
    probe = Probe()
    app.dispatcher.include_router(probe.router())
    app.dispatcher.update.outer_middleware(probe.middleware)
    server = WebhookServer(app.dispatcher, app.bot, secret_token=SECRET, port=0)
    await server.bind()
    task = asyncio.create_task(server.run())
    host, port = server.address
    async with aiohttp.ClientSession() as client:
        yield Served(
            app, server, probe, db, f"http://{host}:{port}{server.path}", client,
            UpdateFactory(), task,
        )  # fmt: skip
        probe.release.set()
        server.stop()
        await asyncio.wait_for(task, 30)
    await app.close()


async def test_an_update_is_answered_200_only_after_its_handlers_finished(
    served: Served,
) -> None:
    update = served.message()
    message_id = update["message"]["message_id"]
    served.probe.hold.add(message_id)
    reply = asyncio.ensure_future(served.post(update))
    await wait_for(lambda: message_id in served.probe.entered, "the handler to start")
    # The plugin has scored it; the router after it is still busy: no answer yet.
    done, _ = await asyncio.wait({reply}, timeout=0.3)
    assert not done
    assert served.scored() == [f"msg:{CHAT['id']}:{message_id}"]
    served.probe.release.set()
    assert await reply == 200
    assert served.probe.entered == [message_id]
    assert served.server.handled == 1


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
async def test_a_wrong_or_missing_secret_is_401_and_nothing_is_handled(
    served: Served, secret: str | None
) -> None:
    assert await served.post(served.message(), secret=secret) == 401
    assert served.probe.entered == []
    assert served.scored() == []
    assert served.server.refused == 1


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'{"update": 1}', b'{"update_id": "x"}']
)
async def test_a_body_that_is_not_an_update_is_400(served: Served, body: bytes) -> None:
    assert await served.post(body) == 400
    assert served.probe.entered == []
    assert served.scored() == []


async def test_an_update_asking_for_redelivery_is_503_then_handled_when_it_comes_again(
    served: Served,
) -> None:
    update = served.message()
    served.probe.busy.add(update["update_id"])
    assert await served.post(update) == 503
    assert served.scored() == []
    assert served.probe.entered == []
    assert await served.post(update) == 200
    assert served.scored() == [f"msg:{CHAT['id']}:{update['message']['message_id']}"]
    assert served.server.redeliveries == 1


async def test_a_failing_handler_is_logged_and_answered_200(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    update = served.message()
    served.probe.fail.add(update["message"]["message_id"])
    assert await served.post(update) == 200
    assert "probe failed" in caplog.text
    # Scored before the failing router ran; Telegram will not send it again.
    assert len(served.scored()) == 1


async def test_a_duplicate_arriving_while_the_first_is_in_hand_is_handled_once(
    served: Served,
) -> None:
    update = served.message()
    message_id = update["message"]["message_id"]
    served.probe.hold.add(message_id)
    first = asyncio.ensure_future(served.post(update))
    await wait_for(lambda: message_id in served.probe.entered, "the handler to start")
    second = asyncio.ensure_future(served.post(update))
    await wait_for(lambda: served.server.duplicates == 1, "the duplicate to arrive")
    served.probe.release.set()
    assert await asyncio.gather(first, second) == [200, 200]
    assert served.probe.entered == [message_id]
    assert len(served.scored()) == 1


async def test_stop_refuses_new_requests_and_finishes_the_ones_in_hand(served: Served) -> None:
    update = served.message()
    message_id = update["message"]["message_id"]
    served.probe.hold.add(message_id)
    in_hand = asyncio.ensure_future(served.post(update))
    await wait_for(lambda: message_id in served.probe.entered, "the handler to start")
    served.server.stop()
    await asyncio.sleep(0.1)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as fresh:
            await fresh.post(served.url, json=served.message(), headers={SECRET_HEADER: SECRET})
    assert not served.task.done()
    served.probe.release.set()
    assert await in_hand == 200
    await asyncio.wait_for(served.task, 30)
    assert len(served.scored()) == 1


async def test_another_path_is_404(served: Served) -> None:
    url = served.url.replace(served.server.path, "/other")
    async with served.client.post(url, json=served.message()) as reply:
        assert reply.status == 404
    assert served.probe.entered == []


async def test_a_handler_still_running_past_the_drain_timeout_is_answered_503(
    served: Served,
) -> None:
    served.server.drain_timeout = 0.2
    update = served.message()
    served.probe.hold.add(update["message"]["message_id"])  # never released
    in_hand = asyncio.ensure_future(served.post(update))
    await wait_for(lambda: bool(served.probe.entered), "the handler to start")
    served.server.stop()
    assert await in_hand == 503
    await asyncio.wait_for(served.task, 30)


async def test_a_secret_header_that_is_not_ascii_is_401(served: Served) -> None:
    host, port = served.server.address
    body = json.dumps(served.message()).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {served.server.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n".encode()
        + SECRET_HEADER.encode()
        + b": \xff\xfe"
        + SECRET.encode()
        + b"\r\n\r\n"
        + body
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"401"
    assert served.probe.entered == []
