"""The chat pages' aiohttp routes: who may see what, and one short page for every refusal.

A chat's pages are open to anyone once its admins said `/web public on`; otherwise they
open in Telegram as a Mini App, whose signed launch data names the viewer, and show a chat
only to its members (its admin actions only to its admins). 401: sign-in missing, forged
or expired; 403: not a member (not an admin); 404: no such chat or member; 503: the ledger
or Telegram did not answer. Never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.utils.web_app import parse_webapp_init_data
from aiohttp import web
from pydantic import ValidationError

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.models import Period
from plugins.gamification.services.runtime import Services
from plugins.gamification.services.web_access import WebAccess, WebOptions, parse_chat_token
from plugins.gamification.services.web_pages import PageData
from plugins.gamification.web import pages
from plugins.gamification.web.auth import (
    Members,
    SignInError,
    TelegramUnavailableError,
    verify_init_data,
)
from plugins.gamification.web.texts import DEFAULT_LANGUAGE, language_of, languages

log = logging.getLogger(__name__)

INT64 = 2**63


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# Only our two inline scripts run; no other origin is ever reached. Framing stays allowed:
# Telegram's web client shows a Mini App in a frame.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';"
    " form-action 'none'; script-src "
    + " ".join(_script_hash(s) for s in (pages.THEME_SCRIPT, pages.APP_SCRIPT))
)


class PageError(Exception):
    def __init__(self, status: int, *, admin_only: bool = False) -> None:
        super().__init__(status)
        self.status = status
        self.admin_only = admin_only


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: int | None
    admin: bool
    language: str
    auth: str | None


def _whole(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise PageError(404) from None
    if not -INT64 <= number < INT64:
        raise PageError(404)
    return number


def _browser_language(request: web.Request) -> str | None:
    """The first language of the browser's Accept-Language ("ru-RU,ru;q=0.9" -> "ru-RU")."""
    first = request.headers.get("Accept-Language", "").split(",")[0]
    return first.split(";")[0].strip() or None


def _language_hint(request: web.Request) -> str | None:
    """The language of a refusal page: the one the launch data names, signed or not (it
    only picks the words of the refusal), else the browser's."""
    auth = request.query.get("auth")
    if not auth:
        return language_of(_browser_language(request))
    try:
        user = parse_webapp_init_data(auth).user
    except (ValueError, ValidationError, TypeError):
        return None
    return language_of(user.language_code if user else None)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ChatPages:
    """The routes, on the services the bot already runs (no second ledger connection)."""

    def __init__(
        self, services: Services, bot: Bot, options: WebOptions, *, language: str = "en"
    ) -> None:
        self._services = services
        # What the pages speak where neither the chat's admins (/language) nor the viewer's
        # Telegram (or browser) choose a language with a catalog: the bot's own.
        self._default = language_of(language) or DEFAULT_LANGUAGE
        self._bot = bot
        self._options = options
        self._data = PageData(services.engine, services.people, services.config)
        self._access = WebAccess(services.engine)
        self._members = Members(bot, options.member_cache_seconds, services.admin_ids)
        self.prefix = urlsplit(options.public_url).path.rstrip("/")

    def add_routes(self, app: web.Application) -> None:
        p = self.prefix
        app.router.add_get(f"{p}/app", self._guard(self._app))
        app.router.add_get(f"{p}/app/open", self._guard(self._open))
        app.router.add_get(f"{p}/c/{{chat}}", self._guard(self._board))
        app.router.add_get(f"{p}/c/{{chat}}/u/{{user}}", self._guard(self._profile))
        app.router.add_get(f"{p}/c/{{chat}}/admin", self._guard(self._audit))

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except PageError as exc:
                language = _language_hint(request) or self._default
                response = self._html(
                    pages.error_page(language, exc.status, admin_only=exc.admin_only),
                    status=exc.status,
                )
            except (GamificationError, TelegramUnavailableError) as exc:
                log.warning("page %s not served: %s", request.path, exc)
                response = self._html(pages.error_page(self._default, 503), status=503)
            response.headers["Content-Security-Policy"] = CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response

        return guarded

    @staticmethod
    def _html(body: str, *, status: int = 200, public: bool = False) -> web.Response:
        response = web.Response(text=body, status=status, content_type="text/html")
        # A signed-in page carries the viewer's sign-in in its links: never stored.
        response.headers["Cache-Control"] = "public, max-age=30" if public else "no-store"
        if public:
            # Its words follow the browser's language: a shared cache must keep one per language.
            response.headers["Vary"] = "Accept-Language"
        return response

    def _sign_in(self, auth: str) -> tuple[int, str | None, int | None]:
        """(user id, their Telegram language, chat named by the launch's start parameter)."""
        clock = self._services.clock
        try:
            data = verify_init_data(
                self._bot.token, auth, now=clock.now(), max_age=self._options.init_data_max_age
            )
        except SignInError as exc:
            log.info("refused a Mini App sign-in: %s", exc)
            raise PageError(401) from None
        assert data.user is not None
        chat = parse_chat_token(data.start_param) if data.start_param else None
        return data.user.id, data.user.language_code, chat

    async def _language(self, chat_id: int, code: str | None) -> str:
        """The chat's admins' choice, else the viewer's own language, else the bot's: the
        order the chat's replies follow."""
        chosen = await self._services.languages.of(chat_id)
        if chosen is not None and chosen in languages():
            return chosen
        return language_of(code) or self._default

    async def _viewer(self, request: web.Request, chat_id: int) -> Viewer:
        auth = request.query.get("auth")
        if auth:
            user_id, code, _ = self._sign_in(auth)
            if not await self._data.chat_known(chat_id):
                raise PageError(404)
            language = await self._language(chat_id, code)
            membership = await self._members.of(chat_id, user_id)
            if membership.member:
                return Viewer(user_id, membership.admin, language, auth)
            if await self._access.is_public(chat_id):  # anyone may look, signed in or not
                return Viewer(None, False, language, None)
            raise PageError(403)
        if not await self._data.chat_known(chat_id):
            raise PageError(404)
        if not await self._access.is_public(chat_id):
            raise PageError(401)
        language = await self._language(chat_id, _browser_language(request))
        return Viewer(None, False, language, None)

    async def _app(self, request: web.Request) -> web.StreamResponse:
        language = language_of(_browser_language(request)) or self._default
        return self._html(pages.app_page(language))

    async def _open(self, request: web.Request) -> web.StreamResponse:
        auth = request.query.get("auth", "")
        if not auth:
            raise PageError(401)
        _, _, chat_id = self._sign_in(auth)
        if chat_id is None:  # opened from a web_app button, whose URL names the chat
            chat_id = parse_chat_token(request.query.get("chat", ""))
        if chat_id is None:
            raise PageError(404)
        await self._viewer(request, chat_id)
        target = pages.link(f"{self.prefix}/c/{chat_id}", auth)
        raise web.HTTPSeeOther(location=target.replace("&amp;", "&"))

    async def _board(self, request: web.Request) -> web.StreamResponse:
        chat_id = _whole(request.match_info["chat"])
        try:
            period = Period(request.query.get("period", "week"))
        except ValueError:
            raise PageError(404) from None
        viewer = await self._viewer(request, chat_id)
        board = await self._data.board(chat_id, period)
        body = pages.board_page(
            viewer.language,
            board,
            prefix=self.prefix,
            auth=viewer.auth,
            viewer=viewer.user_id,
            admin=viewer.admin,
        )
        return self._html(body, public=viewer.auth is None)

    async def _profile(self, request: web.Request) -> web.StreamResponse:
        chat_id = _whole(request.match_info["chat"])
        user_id = _whole(request.match_info["user"])
        viewer = await self._viewer(request, chat_id)
        if user_id <= 0:
            raise PageError(404)
        profile = await self._data.profile(chat_id, user_id)
        if not profile.earned and not profile.balance and not any(p for _, p in profile.series):
            raise PageError(404)
        body = pages.profile_page(viewer.language, profile, prefix=self.prefix, auth=viewer.auth)
        return self._html(body, public=viewer.auth is None)

    async def _audit(self, request: web.Request) -> web.StreamResponse:
        chat_id = _whole(request.match_info["chat"])
        viewer = await self._viewer(request, chat_id)
        if not viewer.admin:
            raise PageError(403, admin_only=True)
        lines = await self._data.audit(chat_id)
        body = pages.audit_page(
            viewer.language, chat_id, lines, prefix=self.prefix, auth=viewer.auth
        )
        return self._html(body)
