"""A tiny local Bot API server on 127.0.0.1 for end-to-end runs of `python -m bot run`."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

from aiohttp import web

BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Points", "username": "points_bot"}


POLLER_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance"
    " is running"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to"
    " delete the webhook first"
)


class FakeBotAPI:
    """Serves getUpdates from a queue the test fills; records and answers everything else.

    As Telegram: while a webhook is set (setWebhook with a url), getUpdates is refused with
    409 Conflict; `conflict = True` refuses it the same way as when another process polls.
    `errors` makes a method fail: {"setWebhook": (400, "Bad Request: bad webhook: ...")}.
    """

    def __init__(self, admins: dict[int, set[int]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.admins = admins or {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(10_000)
        self._new_update = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        # getUpdates answers this many requests with a server error first.
        self.failures = 0
        # How many times each update id was handed out by getUpdates.
        self.served: Counter[int] = Counter()
        # Another process polls with the same token: getUpdates gets 409 Conflict.
        self.conflict = False
        # The webhook as setWebhook left it (empty url: none is set).
        self.webhook: dict[str, Any] = {"url": ""}
        # What getWebhookInfo reports as the last failed delivery: (unix time, message).
        self.webhook_error: tuple[int, str] | None = None
        self.errors: dict[str, tuple[int, str]] = {}

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def push(self, kind: str, body: dict[str, Any]) -> None:
        self._updates.append({"update_id": next(self._update_ids), kind: body})
        self._new_update.set()

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def confirmed(self) -> int:
        """The highest offset any getUpdates sent: every update below it was confirmed."""
        offsets = [int(p.get("offset") or 0) for p in self.sent("getUpdates")]
        return max(offsets, default=0)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = dict(await request.post())
        self.calls.append((method, params))
        if method in self.errors:
            code, description = self.errors[method]
            error = {"ok": False, "error_code": code, "description": description}
            return web.json_response(error, status=code)
        if method == "getUpdates":
            if self._conflicting():
                return self._conflict_response()
            if self.failures > 0:
                self.failures -= 1
                error = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
                return web.json_response(error, status=500)
            updates = await self._get_updates(params)
            if self._conflicting():  # as Telegram, a long poll in progress is cut off too
                return self._conflict_response()
            self.served.update(u["update_id"] for u in updates)
            return web.json_response({"ok": True, "result": updates})
        return web.json_response({"ok": True, "result": self._answer(method, params)})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        # As Telegram: an offset confirms every update below it, for good, and a request
        # without one gets what is not confirmed yet.
        offset = max(int(params.get("offset", 0) or 0), self.confirmed())
        pending = [u for u in self._updates if u["update_id"] >= offset]
        if not pending:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), 0.5)
            except TimeoutError:
                return []
            pending = [u for u in self._updates if u["update_id"] >= offset]
        limit = int(params.get("limit", 100) or 100)
        return pending[:limit]

    def _conflicting(self) -> bool:
        return self.conflict or bool(self.webhook["url"])

    def _conflict_response(self) -> web.Response:
        description = WEBHOOK_CONFLICT if self.webhook["url"] else POLLER_CONFLICT
        error = {"ok": False, "error_code": 409, "description": description}
        return web.json_response(error, status=409)

    def _answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "sendMessage":
            chat_id = int(params["chat_id"])
            return {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
        if method == "sendPhoto":  # a multipart upload: the photo is a file field
            chat_id = int(params["chat_id"])
            upload = str(params.get("photo", ""))
            file_id = f"photo-{len(self.calls)}" if upload.startswith("attach://") else upload
            size = {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 280}
            return {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private"},
                "from": BOT_USER,
                "photo": [size],
                "caption": params.get("caption", ""),
            }
        if method == "getUserProfilePhotos":
            return {"total_count": 0, "photos": []}
        if method in ("setWebhook", "deleteWebhook", "getWebhookInfo"):
            return self._webhook(method, params)
        if method == "getChatMember":
            user_id = int(params["user_id"])
            user = {"id": user_id, "is_bot": False, "first_name": "someone"}
            if user_id in self.admins.get(int(params["chat_id"]), set()):
                return {"status": "creator", "user": user, "is_anonymous": False}
            return {"status": "member", "user": user}
        return True

    def _webhook(self, method: str, params: dict[str, Any]) -> Any:
        if params.get("drop_pending_updates") in ("true", "True", "1"):
            self._updates.clear()
        if method == "setWebhook":
            allowed = params.get("allowed_updates")
            self.webhook = {
                "url": params["url"],
                "secret_token": params.get("secret_token"),
                "allowed_updates": json.loads(allowed) if allowed else None,
                "max_connections": int(params.get("max_connections") or 40),
            }
            return True
        if method == "deleteWebhook":
            self.webhook = {"url": ""}
            return True
        info: dict[str, Any] = {
            "url": self.webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": sum(
                1 for u in self._updates if u["update_id"] >= self.confirmed()
            ),
        }
        if self.webhook["url"]:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["allowed_updates"] is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        if self.webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_error
        return info
