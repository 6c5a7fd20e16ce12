"""`python -m bot webhook set|delete|info` against a local Bot API server, and `run --webhook`
refusing to start without a secret.

The commands run in-process (`bot.__main__.main` on a thread of its own, since the fake
server shares this test's event loop); one test runs the real subprocess for --help and the
refusals.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.__main__ import main
from bot.config import load_config
from bot.registry import default_plugins, default_registry
from bot.webhook_cli import EVERY_UPDATE_TYPE, used_update_types
from tests.reliability.pg_cluster import free_port
from tests.support.cli import bot
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.live_bot import TOKEN

SECRET = "hook_Secret-42"
PUBLIC = "https://bot.example.org/telegram/webhook"


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


def write_config(tmp_path: Path, api_server: str, webhook: str = "") -> Path:
    path = tmp_path / "hook.toml"
    path.write_text(
        f'[bot]\ntoken = "{TOKEN}"\napi_server = "{api_server}"\n'
        f'[storage]\ndatabase = "{tmp_path / "ledger.sqlite3"}"\n[webhook]\n{webhook}'
    )
    return path


async def command(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[str], list[str]]:
    """Exit code, stdout lines, stderr lines of `python -m bot ARGV`."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


async def test_set_gives_telegram_url_secret_update_types_and_max_connections(
    api: FakeBotAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path, api.url, f'url = "{PUBLIC}"\nsecret_token = "{SECRET}"\nmax_connections = 12\n'
    )
    code, out, err = await command(capsys, "webhook", "set", "--config", str(config))
    assert (code, err) == (0, [])
    [params] = api.sent("setWebhook")
    assert params["url"] == PUBLIC
    assert params["secret_token"] == SECRET
    assert params["max_connections"] == "12"
    assert "drop_pending_updates" not in params
    assert api.webhook["allowed_updates"] == ["message", "message_reaction"]
    assert out == [f"Webhook set: Telegram sends message, message_reaction updates to {PUBLIC}."]
    assert SECRET not in "\n".join(out + err)
    # Nothing else was asked of Telegram, and the ledger was never opened.
    assert [name for name, _ in api.calls] == ["setWebhook"]
    assert not (tmp_path / "ledger.sqlite3").exists()


async def test_the_update_types_set_are_those_polling_asks_for(tmp_path: Path) -> None:
    from bot.app import build_app
    from bot.testing import RecordingSession

    registry = default_registry()
    config = load_config(
        write_config(tmp_path, "http://127.0.0.1:1"),
        plugin_models=registry.config_models(),
        environ={},
        default_plugins=default_plugins(),
    )
    app = await build_app(config, registry, session=RecordingSession())
    try:
        polled = app.dispatcher.resolve_used_update_types()
    finally:
        await app.close()
    assert used_update_types(config, registry) == polled


async def test_set_with_drop_pending_updates_then_info_then_delete(
    api: FakeBotAPI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = str(write_config(tmp_path, api.url, f'url = "{PUBLIC}"\n'))
    api.push("message", {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}})
    monkeypatch.setenv("BOT_WEBHOOK_SECRET", SECRET)
    code, _, err = await command(
        capsys, "webhook", "set", "--drop-pending-updates", "--config", config
    )
    assert (code, err) == (0, [])
    assert api.sent("setWebhook")[0]["secret_token"] == SECRET
    assert api.sent("setWebhook")[0]["drop_pending_updates"] == "true"

    api.webhook_error = (1_790_000_000, "Wrong response from the webhook: 503 Service Unavailable")
    code, out, err = await command(capsys, "webhook", "info", "--config", config)
    assert (code, err) == (0, [])
    assert out == [
        f"url: {PUBLIC}",
        "pending updates: 0",
        "last error: 2026-09-21 14:13:20 UTC: Wrong response from the webhook: 503 Service"
        " Unavailable",
        "last synchronization error: never",
        "max connections: 40",
        "allowed updates: message, message_reaction",
        "ip address: unknown",
    ]

    code, out, err = await command(capsys, "webhook", "delete", "--config", config)
    assert (code, err) == (0, [])
    assert out == ["Webhook deleted (pending updates kept); the bot can poll again."]
    assert api.webhook == {"url": ""}
    code, out, _ = await command(capsys, "webhook", "info", "--config", config)
    assert out[0] == "url: (none: no webhook is set, the bot polls)"


@pytest.mark.parametrize(
    ("webhook", "expected"),
    [
        (f'secret_token = "{SECRET}"\n', "No webhook URL: set [webhook] url in"),
        (f'url = "{PUBLIC}"\n', "No secret token: set BOT_WEBHOOK_SECRET or [webhook]"),
    ],
)
async def test_set_without_url_or_secret_is_one_sentence_and_exit_2(
    api: FakeBotAPI,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    webhook: str,
    expected: str,
) -> None:
    config = write_config(tmp_path, api.url, webhook)
    code, out, err = await command(capsys, "webhook", "set", "--config", str(config))
    assert code == 2
    assert out == []
    assert len(err) == 1
    assert err[0].startswith(expected)
    assert api.calls == []


async def test_an_unreachable_bot_api_or_a_refusal_is_one_sentence_and_exit_1(
    api: FakeBotAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = f'url = "{PUBLIC}"\nsecret_token = "{SECRET}"\n'
    nowhere = f"http://127.0.0.1:{free_port()}"
    for action in ("set", "delete", "info"):
        config = write_config(tmp_path, nowhere, hook)
        code, out, err = await command(capsys, "webhook", action, "--config", str(config))
        assert code == 1
        assert out == []
        assert len(err) == 1
        assert err[0].startswith(f"Cannot reach the Bot API at {nowhere}:"), err
    api.errors["setWebhook"] = (400, "Bad Request: bad webhook: HTTPS url must be provided")
    config = write_config(tmp_path, api.url, hook)
    code, out, err = await command(capsys, "webhook", "set", "--config", str(config))
    assert code == 1
    assert err == [
        f"The Bot API at {api.url} refused setWebhook: Bad Request: bad webhook: HTTPS url"
        " must be provided."
    ]


@pytest.mark.parametrize(
    ("webhook", "key"),
    [
        ('secret_token = "has space"\n', "webhook.secret_token"),
        (f'secret_token = "{"x" * 257}"\n', "webhook.secret_token"),
        ('path = "telegram"\n', "webhook.path"),
        ('url = "ftp://example.org/hook"\n', "webhook.url"),
        ('listen = "localhost"\n', "webhook.listen"),
        ("max_connections = 101\n", "webhook.max_connections"),
    ],
)
async def test_a_bad_webhook_key_is_named_and_exit_2(
    api: FakeBotAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str], webhook: str, key: str
) -> None:
    config = write_config(tmp_path, api.url, webhook)
    code, _, err = await command(capsys, "webhook", "info", "--config", str(config))
    assert code == 2
    assert len(err) == 1
    assert f"{key}:" in err[0]
    assert "has space" not in err[0]
    assert "x" * 257 not in err[0]


def test_run_webhook_without_a_secret_refuses_and_help_says_how(tmp_path: Path) -> None:
    helped = bot("run", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    text = " ".join(helped.stdout.split())
    assert "--webhook" in text
    assert "python -m bot webhook set" in text
    assert "3 Telegram refused polling with 409 Conflict" in text
    refused = bot("run", "--webhook", cwd=tmp_path, env={"BOT_TOKEN": TOKEN})
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, refused.stderr
    assert "run --webhook needs a secret token" in errors[0]
    assert "Traceback" not in refused.stderr
    assert list(tmp_path.iterdir()) == []  # refused before the ledger was opened


class QuietSettings(BaseModel):
    pass


class QuietPlugin:
    """A plugin that does not say which updates it handles."""

    name = "quiet"
    config_model = QuietSettings

    async def setup(self, ctx: object) -> None:
        return None

    def commands(self) -> list[object]:
        return []


def test_a_plugin_that_does_not_declare_its_update_types_gets_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    registry = default_registry()
    registry.register(QuietPlugin())  # type: ignore[arg-type]
    config = load_config(
        None,
        plugin_models=registry.config_models(),
        environ={},
        default_plugins=["gamification", "quiet"],
    )
    types = used_update_types(config, registry)
    assert types == EVERY_UPDATE_TYPE
    assert {"message", "message_reaction", "callback_query", "chat_member"} <= set(types)
    assert "'quiet' does not say which updates it handles" in caplog.text
