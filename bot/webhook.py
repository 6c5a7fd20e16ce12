"""Webhook intake: an aiohttp server that answers Telegram only after an update was handled.

aiogram's ready-made handler answers Telegram first and handles the update in the
background, so an instance killed meanwhile loses the update for good. Here the answer
waits for the dispatcher: 200 once the handlers returned (a crash before that means no
answer, and Telegram delivers the update again; idempotency keys make that harmless),
503 when a handler asked for its update again (bot.errors.wants_redelivery), so Telegram
retries it later, perhaps at another instance. A handler that failed otherwise is logged
and answered 200, as the Poller does: the same update again would fail the same way.

Telegram sends one chat's updates one at a time per webhook and waits for each answer, so
answering only when done keeps per-chat order behind any per-request load balancer.

Requests without the configured `X-Telegram-Bot-Api-Secret-Token` are refused with 401
before anything is read; a body that is not an update is 400. A second delivery of an
update this process is still handling waits for the first and gets its answer instead of
running the handlers again beside it. The response never carries a Bot API method:
replies go through the Bot API, where their failures can be seen and retried.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
from collections.abc import Callable
from contextlib import suppress
from http import HTTPStatus
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.errors import wants_redelivery

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
OK, REDELIVER = HTTPStatus.OK, HTTPStatus.SERVICE_UNAVAILABLE


class WebhookServer:
    """Serves one bot's webhook for one dispatcher until `stop()` (or SIGINT/SIGTERM).

    `bind()` opens the listening socket (an OSError says why it cannot), `run()` emits the
    dispatcher's startup, serves until stopped, then stops accepting, lets every update in
    hand finish (for at most `drain_timeout` seconds) and emits the shutdown. With
    `handle_signals`, SIGINT and SIGTERM stop it from `bind()` on: a signal that arrives
    while the host still starts up (requests are already accepted and wait for the
    startup) is a clean stop too, not a kill.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        secret_token: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        path: str = "/telegram/webhook",
        drain_timeout: float = 30.0,
        handle_signals: bool = False,
    ) -> None:
        if not secret_token:
            raise ValueError("a webhook needs a secret token")
        self.dispatcher = dispatcher
        self.bot = bot
        self.host, self.port, self.path = host, port, path
        self.drain_timeout = drain_timeout
        self.handle_signals = handle_signals
        self._signals_set = False
        self._secret = secret_token.encode()
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False
        # Updates being handled, by update id: a second delivery waits for the first.
        self._in_flight: dict[int, asyncio.Future[HTTPStatus]] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._data: dict[str, Any] = {"bots": (bot,)}
        self.handled = 0
        self.redeliveries = 0
        self.duplicates = 0
        self.refused = 0

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens (the real port once bound, when 0 was asked for)."""
        return self.host, self.port

    def stop(self) -> None:
        self._stop.set()

    async def bind(self) -> None:
        """Open the listening socket; raises OSError (address in use, no permission)."""
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        self.port = int(runner.addresses[0][1])
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                with suppress(NotImplementedError):  # no signal handlers on Windows' loop
                    loop.add_signal_handler(signum, self.stop)
            self._signals_set = True

    async def run(self, **data: Any) -> None:
        """Serve until stopped; then drain what is in hand. `bind()` first."""
        if self._runner is None:
            await self.bind()
        self._data = {"dispatcher": self.dispatcher, "bots": (self.bot,), **data}
        hooks = {**self.dispatcher.workflow_data, **self._data}
        try:
            await self.dispatcher.emit_startup(bot=self.bot, **hooks)
            self._ready.set()
            log.info(
                "Webhook: listening on %s:%d, updates at %s (each answered once handled)",
                self.host, self.port, self.path,
            )  # fmt: skip
            await self._stop.wait()
            await self._drain()
        finally:
            await self.close()
            await self.dispatcher.emit_shutdown(bot=self.bot, **hooks)
            log.info("Webhook stopped")

    async def close(self) -> None:
        """Close the listening socket and every connection (idempotent)."""
        if self._signals_set:
            self._signals_set = False
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                with suppress(NotImplementedError):  # as when they were added
                    loop.remove_signal_handler(signum)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _drain(self) -> None:
        """Refuse new work, and let what is in hand finish; what cannot is redelivered."""
        self._stopping = True
        if self._site is not None:
            await self._site.stop()  # no new connections; open ones get 503 from now on
        pending = list(self._in_flight.values())
        if not pending:
            return
        log.info("Stopping: waiting for %d updates in hand", len(pending))
        _, late = await asyncio.wait(pending, timeout=self.drain_timeout)
        if late:
            log.warning(
                "%d updates still being handled after %.0f s are stopped; they are answered"
                " 503, so Telegram delivers them again", len(late), self.drain_timeout,
            )  # fmt: skip
            for handler in late:
                handler.cancel()
            await asyncio.wait(late)

    def _refusing(self) -> bool:
        """Stopping: new updates are left for Telegram to deliver again (a call, so that
        it is read afresh after every await)."""
        return self._stopping

    def _authorised(self, request: web.Request) -> bool:
        # aiohttp decodes header bytes as UTF-8 with surrogateescape: this gives them back.
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self._secret)

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            self.refused += 1
            return web.Response(status=HTTPStatus.UNAUTHORIZED, text="Unauthorized")
        if self._refusing():
            return web.Response(status=REDELIVER, text="Stopping")
        try:
            update = Update.model_validate(
                json.loads(await request.read()), context={"bot": self.bot}
            )
        except (ValueError, ValidationError):  # JSONDecodeError and UnicodeError included
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="Not an update")
        if not self._ready.is_set():
            try:  # the dispatcher's startup hooks are still running
                await asyncio.wait_for(self._ready.wait(), self.drain_timeout)
            except TimeoutError:
                return web.Response(status=REDELIVER, text="Starting")
        handler = self._in_flight.get(update.update_id)
        if handler is None and self._refusing():  # began stopping while the body was read
            return web.Response(status=REDELIVER, text="Stopping")
        if handler is None:
            handler = asyncio.ensure_future(self._feed(update))
            self._in_flight[update.update_id] = handler
            handler.add_done_callback(self._forget(update.update_id))
        else:
            self.duplicates += 1
            log.debug("update %s delivered again while in hand: waiting", update.update_id)
        try:
            # Shielded: a caller that hangs up must not cancel the handlers half-way.
            status = await asyncio.shield(handler)
        except asyncio.CancelledError:
            if not handler.cancelled():
                raise
            status = REDELIVER  # stopped past the drain timeout: Telegram retries it
        return web.Response(status=status)

    def _forget(self, update_id: int) -> Callable[[asyncio.Future[HTTPStatus]], None]:
        def forget(handler: asyncio.Future[HTTPStatus]) -> None:
            if self._in_flight.get(update_id) is handler:
                del self._in_flight[update_id]

        return forget

    async def _feed(self, update: Update) -> HTTPStatus:
        """Handle one update; the status to answer Telegram with."""
        try:
            result = await self.dispatcher.feed_update(self.bot, update, **self._data)
            if isinstance(result, TelegramMethod):
                # Never answered in the response, where a failure would go unseen.
                await self.dispatcher.silent_call_request(self.bot, result)
        except Exception as exc:
            if wants_redelivery(exc):
                self.redeliveries += 1
                log.debug("update %s is to be delivered again: %s", update.update_id, exc)
                return REDELIVER
            # The dispatcher's error handlers did not take it. It counts as handled: the
            # same update again would fail the same way, forever.
            log.exception("update %s failed", update.update_id)
        self.handled += 1
        return OK
