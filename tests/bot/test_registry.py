"""The composition root: shipped plugins, plugins installed by entry point, moved settings."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from aiogram import Router
from aiogram.methods import SetMyCommands
from aiogram.types import BotCommandScopeChat, BotCommandScopeChatAdministrators
from pydantic import BaseModel

from bot import registry
from bot.app import build_app
from bot.config import load_config
from bot.plugins import CliCommand, PluginContext
from bot.testing import RecordingSession, UpdateFactory
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.options import Location

ECHO_MODULE = '''
"""A third-party plugin another distribution ships (the test's fake distribution)."""
from aiogram import F, Router
from aiogram.types import BotCommand, Message
from pydantic import BaseModel, ConfigDict


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    prefix: str = "echo"


class EchoPlugin:
    name = "echo"
    config_model = EchoSettings

    async def setup(self, ctx):
        router = Router(name="echo")
        prefix = ctx.section.prefix
        # Commands without translations: they belong in every language's menu.
        ctx.user_commands.append(BotCommand(command="echo", description="say it back"))

        @router.message(F.text)
        async def echo(message: Message) -> None:
            await message.answer(f"{prefix}: {message.text}")

        return router

    def commands(self):
        return []
'''


@pytest.fixture
def echo_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on sys.path whose dist-info declares the echo plugin's entry point."""
    (tmp_path / "echo_plugin.py").write_text(ECHO_MODULE, encoding="utf-8")
    info = tmp_path / "echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\necho = echo_plugin:EchoPlugin\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "echo_plugin", raising=False)


def test_the_registry_ships_gamification_and_it_is_on_by_default() -> None:
    reg = registry.default_registry()
    assert reg.all()[0].name == "gamification"
    assert registry.default_plugins() == ["gamification"]
    config = load_config(None, plugin_models=reg.config_models(), environ={})
    assert config.plugins.enabled == ("gamification",)


@pytest.mark.usefixtures("echo_installed")
async def test_an_entry_point_plugin_is_found_enabled_by_config_and_runs(tmp_path: Path) -> None:
    reg = registry.default_registry()
    assert {p.name for p in reg.all()} == {"gamification", "echo"}
    # Installed is not enabled: the defaults are the shipped plugins only.
    defaults = load_config(
        None,
        plugin_models=reg.config_models(),
        environ={},
        default_plugins=registry.default_plugins(),
    )
    assert defaults.plugins.enabled == ("gamification",)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{tmp_path / "l.sqlite3"}"\n'
        '[plugins]\nenabled = ["gamification", "echo"]\n[echo]\nprefix = "heard"\n',
        encoding="utf-8",
    )
    config = load_config(path, plugin_models=reg.config_models(), environ={})
    session = RecordingSession()
    app = await build_app(config, reg, session=session)
    try:
        assert app.plugins == ["gamification", "echo"]
        chat = UpdateFactory.group(-5, "g")
        user = UpdateFactory.user(7, "Ann")
        update = UpdateFactory().message(chat, user, "Good morning to everyone here")
        await app.dispatcher.feed_update(app.bot, update)
        # Scored by ours, then answered by theirs: the plugin let the message go on.
        assert session.texts(-5) == ["heard: Good morning to everyone here"]
        services = app.dispatcher.workflow_data["gamification"]
        assert isinstance(services, Services)
        assert (await services.engine.balance(-5, 7)).balance > 0
    finally:
        await app.close()


@pytest.mark.usefixtures("echo_installed")
async def test_every_plugins_commands_are_in_every_languages_menu(tmp_path: Path) -> None:
    """The gamification plugin has menus in en, es and ru; the echo plugin has one command
    and no translations. Each language's menu, and a chat's own after /language, has both."""
    reg = registry.default_registry()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[bot]\nadmin_ids = [7]\n[storage]\ndatabase = "{tmp_path / "l.sqlite3"}"\n'
        '[plugins]\nenabled = ["gamification", "echo"]\n',
        encoding="utf-8",
    )
    config = load_config(path, plugin_models=reg.config_models(), environ={})
    session = RecordingSession()
    app = await build_app(config, reg, session=session)
    try:
        await app.register_menus()
        menus = [c for c in session.calls if isinstance(c, SetMyCommands)]
        assert {c.language_code for c in menus} == {None, "en", "es", "ru"}
        for call in menus:
            commands = [c.command for c in call.commands]
            assert "points" in commands
            assert "echo" in commands, call.language_code
        session.calls.clear()
        chat = UpdateFactory.group(-5, "g")
        admin = UpdateFactory.user(7, "Ann")
        await app.dispatcher.feed_update(
            app.bot, UpdateFactory().message(chat, admin, "/language ru")
        )
        chat_menus = [c for c in session.calls if isinstance(c, SetMyCommands)]
        assert [c.scope for c in chat_menus] == [
            BotCommandScopeChat(chat_id=-5),
            BotCommandScopeChatAdministrators(chat_id=-5),
        ]
        for call in chat_menus:
            assert "echo" in [c.command for c in call.commands]
            assert call.commands[0].description == app.menu("ru")[0][0].description
    finally:
        await app.close()


def test_a_broken_entry_point_is_one_line_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = EntryPoint("broken", "no_such_module_anywhere:Plugin", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken])
    caplog.set_level(logging.WARNING)
    reg = registry.default_registry()
    assert [p.name for p in reg.all()] == ["gamification"]
    assert "'broken'" in caplog.text
    assert "left out" in caplog.text


def test_an_entry_point_may_not_take_a_shipped_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Impostor:
        name = "gamification"
        config_model = BaseModel

        async def setup(self, ctx: PluginContext) -> Router | None:
            raise AssertionError("never set up")

        def commands(self) -> list[CliCommand]:
            return []

    point = EntryPoint("gamification", "x:y", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(EntryPoint, "load", lambda self: Impostor)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    caplog.set_level(logging.WARNING)
    reg = registry.default_registry()
    assert not isinstance(reg.get("gamification"), Impostor)
    assert "already registered" in caplog.text


async def test_the_old_integrity_cron_key_still_works_with_a_warning_naming_the_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{tmp_path / "l.sqlite3"}"\n'
        '[scheduler]\nintegrity_cron = "45 5 * * *"\n',
        encoding="utf-8",
    )
    reg = registry.default_registry()
    config = load_config(path, plugin_models=reg.config_models(), environ={})
    caplog.set_level(logging.WARNING)
    app = await build_app(config, reg, session=RecordingSession())
    try:
        job = app.scheduler.get_job("gamification.integrity")
        assert "hour='5'" in str(job.trigger)
        assert "minute='45'" in str(job.trigger)
    finally:
        await app.close()
    warnings = [r.getMessage() for r in caplog.records if "integrity_cron" in r.getMessage()]
    assert len(warnings) == 1
    assert "[gamification.integrity] cron" in warnings[0]

    # The new key, when also set, wins.
    path.write_text(
        path.read_text(encoding="utf-8") + '[gamification.integrity]\ncron = "10 1 * * *"\n',
        encoding="utf-8",
    )
    config = load_config(path, plugin_models=reg.config_models(), environ={})
    app = await build_app(config, reg, session=RecordingSession())
    try:
        job = app.scheduler.get_job("gamification.integrity")
        assert "hour='1'" in str(job.trigger)
        assert "minute='10'" in str(job.trigger)
    finally:
        await app.close()


def test_the_ledger_location_comes_from_url_or_database(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[storage]\nurl = "postgresql://bot@db.example/points"\n', encoding="utf-8")
    config = load_config(
        path, plugin_models=registry.default_registry().config_models(), environ={}
    )
    assert registry._database(config).location == Location(
        "postgresql", dsn="postgresql://bot@db.example/points"
    )
    path.write_text('[storage]\ndatabase = "x.sqlite3"\n', encoding="utf-8")
    config = load_config(
        path, plugin_models=registry.default_registry().config_models(), environ={}
    )
    assert registry._database(config).location == Location("sqlite", path=Path("x.sqlite3"))
