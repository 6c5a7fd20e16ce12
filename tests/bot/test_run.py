"""`python -m bot run` end to end against a local Bot API server, then a clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from tests.support.fake_bot_api import FakeBotAPI
from tests.support.live_bot import ALICE, CHAT, MOD, ROOT, TOKEN, message, wait_for


async def test_run_polls_a_local_server_answers_and_stops_cleanly(tmp_path: Path) -> None:
    api = FakeBotAPI(admins={CHAT["id"]: {MOD["id"]}})
    url = await api.start()
    db = tmp_path / "bot.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\napi_server = "{url}"\n[storage]\ndatabase = "{db}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await wait_for(lambda: api.sent("getUpdates"), "the first getUpdates")
        api.push("message", message(1, ALICE, "Hello everyone, glad to be in this group!"))
        api.push("message", message(2, ALICE, "/points"))
        api.push("message", message(3, MOD, "/award @alice 50 welcome gift"))
        await wait_for(lambda: len(api.sent()) >= 2, "two replies")
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await api.stop()
    log = output.decode()
    assert process.returncode == 0, log
    assert "plugins gamification" in log
    assert "Stopped cleanly." in log
    assert TOKEN not in log
    assert TOKEN.split(":")[1] not in log
    commands = api.sent("setMyCommands")
    # Without a language code, and once for each language with a catalog: both scopes each.
    assert sorted(c.get("language_code", "") for c in commands) == sorted(
        ["", "", "en", "en", "es", "es", "ru", "ru"]
    )
    assert any("award" in c["commands"] for c in commands)
    replies = [m["text"] for m in api.sent()]
    # /points: a rank card uploaded as multipart, the text reply as its caption.
    (card,) = api.sent("sendPhoto")
    assert str(card["caption"]).startswith("Alice: <b>"), card
    assert str(card["photo"]).startswith("attach://")  # the file in a part of its own
    assert any("+50" in reply for reply in replies), replies
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT kind, amount FROM transactions ORDER BY id").fetchall()
    conn.close()
    # Polling handles updates as concurrent tasks, so commit order may differ from chat order.
    # The default achievements reward the 50 points Alice passes with the admin's 50 (her
    # message to an otherwise empty chat is a monologue, a quarter of its worth).
    assert sorted(kind for kind, _ in rows) == ["achievement", "activity", "admin"], rows
    assert ("admin", 50) in rows


def test_run_with_an_unreachable_postgresql_ledger_is_one_sentence_and_exit_2(
    tmp_path: Path,
) -> None:
    from tests.reliability.pg_cluster import free_port
    from tests.support.cli import bot

    url = f"postgresql://bot:hunter2@127.0.0.1:{free_port()}/ledger"
    result = bot(
        "run", cwd=tmp_path, env={"BOT_TOKEN": "123456:" + "A" * 35, "BOT_DATABASE_URL": url}
    )

    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert "127.0.0.1" in errors[0]
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no folder made for a server's database


async def test_run_webhook_answers_once_handled_never_sets_the_webhook_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    import aiohttp

    from tests.reliability.pg_cluster import free_port
    from tests.support.cli import bot

    api = FakeBotAPI()
    url = await api.start()
    db = tmp_path / "bot.sqlite3"
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[bot]\napi_server = "{url}"\n[storage]\ndatabase = "{db}"\n'
        f'[webhook]\nlisten = "127.0.0.1:{port}"\npath = "/hook"\n'
    )
    secret = "webhook-secret_1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_TOKEN=TOKEN, BOT_WEBHOOK_SECRET=secret, PYTHONPATH=str(ROOT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--webhook", "--config", str(config),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    hook = f"http://127.0.0.1:{port}/hook"
    update = {"update_id": 1, "message": message(1, ALICE, "/points")}
    try:
        async with aiohttp.ClientSession() as client:

            async def post(body: dict[str, object], token: str) -> int:
                headers = {"X-Telegram-Bot-Api-Secret-Token": token}
                try:
                    async with client.post(hook, json=body, headers=headers) as reply:
                        return reply.status
                except aiohttp.ClientConnectionError:
                    return 0

            statuses: list[int] = []

            async def answered() -> bool:
                statuses.append(await post(update, secret))
                return statuses[-1] == 200

            deadline = asyncio.get_running_loop().time() + 60
            while not await answered():
                assert asyncio.get_running_loop().time() < deadline, statuses
                await asyncio.sleep(0.1)
            # The /points reply (a rank card) went out before the answer.
            assert len(api.sent("sendPhoto")) == 1
            assert await post({"update_id": 2, "message": message(2, ALICE, "/top")}, "no") == 401
            # A second instance on the same address: one sentence, exit 2.
            taken = await asyncio.to_thread(
                bot, "run", "--webhook", "--config", str(config), cwd=tmp_path,
                env={"BOT_TOKEN": TOKEN, "BOT_WEBHOOK_SECRET": secret},
            )  # fmt: skip
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await api.stop()
    log = output.decode()
    assert process.returncode == 0, log
    assert f"Webhook: listening on 127.0.0.1:{port}, updates at /hook" in log
    assert "Stopped cleanly." in log
    assert secret not in log
    assert TOKEN.split(":")[1] not in log
    assert len(api.sent("sendPhoto")) == 1
    methods = {name for name, _ in api.calls}
    assert "setWebhook" not in methods
    assert "deleteWebhook" not in methods
    assert "getUpdates" not in methods
    assert taken.returncode == 2, taken.stderr
    errors = [line for line in taken.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, taken.stderr
    assert f"Cannot listen for the webhook at [webhook] listen = '127.0.0.1:{port}'" in errors[0]
    assert "Traceback" not in taken.stderr


async def test_run_exits_3_with_one_sentence_when_a_webhook_is_set(tmp_path: Path) -> None:
    api = FakeBotAPI()
    url = await api.start()
    api.webhook = {"url": "https://bot.example.org/hook", "allowed_updates": None}
    api.push("message", message(1, ALICE, "Hello everyone, glad to be in this group!"))
    db = tmp_path / "bot.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\napi_server = "{url}"\n[storage]\ndatabase = "{db}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await api.stop()
    log = output.decode()
    assert process.returncode == 3, log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert "a webhook is set (409 Conflict): run `python -m bot webhook delete`" in errors[0]
    assert "Traceback" not in log
    assert len(api.sent("getUpdates")) == 1
    assert api.sent() == []
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT COUNT(*) FROM transactions").fetchone()
    conn.close()
    assert rows == (0,)
