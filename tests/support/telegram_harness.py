"""A real app (Dispatcher, plugin, SQLite ledger) driven offline with fake time and Bot API."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiogram.types import Update

from bot.app import App, build_app
from bot.config import AppConfig, WebSettings, load_config
from bot.registry import default_registry
from bot.testing import BOT_USER, RecordingSession, UpdateFactory
from plugins.gamification import FakeClock
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.services.runtime import Services
from plugins.gamification.telegram.runtime import Runtime

# A Wednesday: day, week and month windows all start on different days.
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ANONYMOUS_ADMIN = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
BOT = dict(BOT_USER)

# What Telegram accepts with parse_mode=HTML: these tags, and &-entities.
_TELEGRAM_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a"}
    | {"tg-emoji", "code", "pre", "blockquote"}
)
_TAG = re.compile(r"<(/?)([a-z-]+)(?:\s[^<>]*)?>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


def assert_telegram_html(text: str) -> None:
    """Fail unless Telegram would parse `text` with parse_mode=HTML and accept its length."""
    assert len(text) <= 4096, f"message of {len(text)} characters"
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            tag = _TAG.match(text, i)
            assert tag is not None, f"bare '<' at {i}: {text!r}"
            closing, name = tag.group(1), tag.group(2)
            assert name in _TELEGRAM_TAGS, f"unsupported tag <{name}> in {text!r}"
            if closing:
                assert stack, f"</{name}> closes nothing in {text!r}"
                assert stack.pop() == name, f"unbalanced </{name}> in {text!r}"
            else:
                stack.append(name)
            i = tag.end()
        elif ch == "&":
            entity = _ENTITY.match(text, i)
            assert entity is not None, f"bare '&' at {i}: {text!r}"
            i = entity.end()
        else:
            assert ch != ">", f"bare '>' at {i}: {text!r}"
            i += 1
    assert not stack, f"unclosed tags {stack} in {text!r}"


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def make_config(
    database: Path,
    *,
    gamification: Mapping[str, Any] | None = None,
    admin_ids: Iterable[int] = (),
    admin_log_chat_id: int | None = None,
    shipped: bool = False,
    web: Mapping[str, Any] | None = None,
) -> AppConfig:
    """Defaults (no file, no environment), on `database`, with the given overrides.

    Achievements and streak multipliers are off unless a test turns them on, so that
    exact balances in tests of other features are not moved by rewards; so is engagement
    weighting (monologue factor, engagement record, relative cap, engagement bonuses,
    reaction points, thanks givers' history and pair decay), which a lone test person in
    an empty chat would otherwise meet at once; and rank cards (/points answers in text).
    `shipped=True` keeps every default.
    """
    registry = default_registry()
    config = load_config(None, plugin_models=registry.config_models(), environ={})
    quiet = GamificationConfig().model_dump()
    if not shipped:
        quiet["progress"]["achievements"] = ()
        quiet["multipliers"]["streak"] = {}
        quiet["anti_abuse"].update(monologue_factor=1, engaged_share=0, relative_cap=0)
        quiet["engagement"]["enabled"] = False
        quiet["reactions"]["enabled"] = False
        quiet["cards"]["enabled"] = False
        quiet["thanks"].update(min_giver_messages=0, thanks_per_message=1000, pair_decay_days=0)
    section = GamificationConfig.model_validate(_merge(quiet, gamification or {}))
    return config.model_copy(
        update={
            "storage": config.storage.model_copy(update={"database": database}),
            "bot": config.bot.model_copy(
                update={"admin_ids": tuple(admin_ids), "admin_log_chat_id": admin_log_chat_id}
            ),
            "plugin_sections": {**config.plugin_sections, "gamification": section},
            "web": WebSettings.model_validate(web or {}),
        }
    )


class TelegramHarness:
    """Builds the app on a SQLite file and feeds it updates through the real Dispatcher.

    Use as `async with TelegramHarness(path) as h:`. `restart()` closes the app and builds
    it again on the same database, clock and update numbering, as a process restart would.
    """

    def __init__(
        self,
        database: Path,
        *,
        admins: Mapping[int, set[int]] | None = None,
        admin_ids: Iterable[int] = (),
        admin_log_chat_id: int | None = None,
        gamification: Mapping[str, Any] | None = None,
        clock: FakeClock | None = None,
        shipped: bool = False,
        web: Mapping[str, Any] | None = None,
        members: Mapping[int, set[int]] | None = None,
    ) -> None:
        self.database = database
        self.config = make_config(
            database,
            gamification=gamification,
            admin_ids=admin_ids,
            admin_log_chat_id=admin_log_chat_id,
            shipped=shipped,
            web=web,
        )
        self.admins = {chat: set(users) for chat, users in (admins or {}).items()}
        self.members = {chat: set(users) for chat, users in (members or {}).items()}
        self.clock = clock or FakeClock(START)
        self.factory = UpdateFactory(now=self._timestamp)
        self.session = self._new_session()
        self.past_sessions: list[RecordingSession] = []
        self._app: App | None = None

    def _timestamp(self) -> float:
        return self.clock.now().timestamp()

    def _new_session(self) -> RecordingSession:
        return RecordingSession(admins=self.admins, members=self.members, now=self._timestamp)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> TelegramHarness:
        assert self._app is None, "already started"
        self._app = await build_app(
            self.config, default_registry(), session=self.session, clock=self.clock
        )
        return self

    async def close(self) -> None:
        if self._app is not None:
            app, self._app = self._app, None
            await app.close()

    async def restart(self) -> None:
        """Close and build again on the same database; the new session records afresh."""
        await self.close()
        self.past_sessions.append(self.session)
        self.session = self._new_session()
        await self.start()

    async def __aenter__(self) -> TelegramHarness:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- access ---------------------------------------------------------------------------

    @property
    def app(self) -> App:
        assert self._app is not None, "the harness is not started"
        return self._app

    @property
    def services(self) -> Services:
        services = self.app.dispatcher.workflow_data["gamification"]
        assert isinstance(services, Services)
        return services

    @property
    def runtime(self) -> Runtime:
        runtime = self.app.dispatcher.workflow_data["gamification_runtime"]
        assert isinstance(runtime, Runtime)
        return runtime

    async def feed(self, *updates: Update) -> None:
        for update in updates:
            await self.app.dispatcher.feed_update(self.app.bot, update)

    async def say(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any] | None,
        text: str | None = None,
        **kwargs: Any,
    ) -> Update:
        """Build one message update, feed it, and return it (to feed again, or reply to)."""
        update = self.factory.message(chat, user, text, **kwargs)
        await self.feed(update)
        return update

    def texts(self, chat_id: int | None = None) -> list[str]:
        return self.session.texts(chat_id)

    def last_text(self, chat_id: int | None = None) -> str:
        texts = self.texts(chat_id)
        assert texts, "the bot sent nothing"
        return texts[-1]

    def assert_sent_html_valid(self) -> None:
        """Every message sent since the harness was made, across restarts."""
        for session in [*self.past_sessions, self.session]:
            for text in session.texts():
                assert_telegram_html(text)

    async def balance(self, chat_id: int, user_id: int) -> int:
        return (await self.services.engine.balance(chat_id, user_id)).balance

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the database on a connection of its own, as an operator would."""
        conn = sqlite3.connect(self.database)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def tx_count(self) -> int:
        return int(self.rows("SELECT COUNT(*) FROM transactions")[0][0])

    def transactions(self) -> list[tuple[Any, ...]]:
        """(id, chat, user, amount, kind, actor, reason, reverts_id) in commit order."""
        return self.rows(
            "SELECT id, chat_id, user_id, amount, kind, actor_id, reason, reverts_id"
            " FROM transactions ORDER BY id"
        )
