"""Offline Telegram for the demo and tests: a recording Bot API session, an update factory.

The demo and the tests drive the real Dispatcher with it. Results go through aiogram's
own response parsing (`check_response`), so handlers receive the same objects as online.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import (
    DeleteMyCommands,
    DeleteWebhook,
    GetChatMember,
    GetFile,
    GetMe,
    GetUserProfilePhotos,
    SendMessage,
    SendPhoto,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile, Update
from aiohttp import ClientResponseError, RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

BOT_USER = {"id": 1000000000, "is_bot": True, "first_name": "Points", "username": "points_bot"}


class UnexpectedCallError(AssertionError):
    """A strict session was asked for a Bot API method nobody told it to expect."""


class RecordingSession(BaseSession):
    """Answers getMe, sendMessage, sendPhoto, getChatMember, getUserProfilePhotos, getFile,
    setMyCommands, deleteMyCommands and deleteWebhook offline, and serves file downloads
    from `files`.

    `admins` maps a chat id to the user ids that are its administrators; `members`, to the
    only other users in it (a chat left out of `members` has everyone as a member; anyone
    else in a listed chat has left). With `strict`, any other method raises
    UnexpectedCallError, so a test notices a call it did not plan.

    `profile_photos` maps a user id to the bytes of their profile photo (one, in two sizes);
    anyone else has none. A photo uploaded with sendPhoto is read as the real session would
    send it and kept in `uploads` (file name, bytes); a file path nobody put in `files` is
    answered with 404, as Telegram's file server does.
    """

    def __init__(
        self,
        *,
        admins: Mapping[int, set[int]] | None = None,
        members: Mapping[int, set[int]] | None = None,
        strict: bool = True,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.admins = {chat: set(users) for chat, users in (admins or {}).items()}
        self.members = {chat: set(users) for chat, users in (members or {}).items()}
        self.strict = strict
        self.calls: list[TelegramMethod[Any]] = []
        # retry_after values: each of the next sendMessage calls fails with one of them.
        self.flood: list[int] = []
        self._now = now
        self._ids = itertools.count(1_000_000)
        self.profile_photos: dict[int, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.uploads: list[tuple[str, bytes]] = []
        # True: every download is answered with 404, as for a file Telegram no longer has.
        self.downloads_fail = False
        self._answers: dict[type[TelegramMethod[Any]], Callable[[Any], Any]] = {
            GetMe: lambda _: BOT_USER,
            SendMessage: self._send_message,
            SendPhoto: self._send_photo,
            GetUserProfilePhotos: self._profile_photos,
            GetFile: self._file,
            GetChatMember: self._chat_member,
            SetMyCommands: lambda _: True,
            DeleteMyCommands: lambda _: True,
            DeleteWebhook: lambda _: True,
        }

    @property
    def sent(self) -> list[SendMessage]:
        return [call for call in self.calls if isinstance(call, SendMessage)]

    @property
    def photos(self) -> list[SendPhoto]:
        return [call for call in self.calls if isinstance(call, SendPhoto)]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [m.text for m in self.sent if chat_id is None or m.chat_id == chat_id]

    def clear(self) -> None:
        self.calls.clear()

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        self.calls.append(method)
        if self.flood and isinstance(method, SendMessage):
            raise TelegramRetryAfter(method, "Too Many Requests", self.flood.pop(0))
        if isinstance(method, SendPhoto) and isinstance(method.photo, InputFile):
            # What the real session puts in the multipart form: the file's bytes, read here.
            data = b"".join([chunk async for chunk in method.photo.read(bot)])
            self.uploads.append((method.photo.filename or "file", data))
        answer = self._answers.get(type(method))
        if answer is None:
            if self.strict:
                raise UnexpectedCallError(f"unexpected Bot API call {method.__api_method__}")
            result: Any = True
        else:
            result = answer(method)
        content = json.dumps({"ok": True, "result": result})
        return cast(TelegramType, self.check_response(bot, method, 200, content).result)

    def _send_message(self, method: SendMessage) -> dict[str, Any]:
        chat_id = int(method.chat_id)
        return {
            "message_id": next(self._ids),
            "date": int(self._now()),
            "chat": {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private"},
            "from": BOT_USER,
            "text": method.text,
        }

    def _send_photo(self, method: SendPhoto) -> dict[str, Any]:
        chat_id = int(method.chat_id)
        if isinstance(method.photo, str):  # sent again by its file_id
            file_id = method.photo
        else:
            file_id = f"sent-photo-{len(self.uploads)}"
        size = {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 280}
        return {
            "message_id": next(self._ids),
            "date": int(self._now()),
            "chat": {"id": chat_id, "type": "supergroup" if chat_id < 0 else "private"},
            "from": BOT_USER,
            "photo": [size],
            **({"caption": method.caption} if method.caption else {}),
        }

    def _profile_photos(self, method: GetUserProfilePhotos) -> dict[str, Any]:
        photo = self.profile_photos.get(method.user_id)
        if photo is None:
            return {"total_count": 0, "photos": []}
        unique = hashlib.sha256(photo).hexdigest()[:16]
        sizes = [
            {
                "file_id": f"avatar-{method.user_id}-{side}-{unique}",
                "file_unique_id": f"{unique}-{side}",
                "width": side,
                "height": side,
            }
            for side in (160, 640)
        ]
        for size in sizes:
            self.files.setdefault(f"photos/{size['file_id']}.jpg", photo)
        return {"total_count": 1, "photos": [sizes]}

    def _file(self, method: GetFile) -> dict[str, Any]:
        return {
            "file_id": method.file_id,
            "file_unique_id": method.file_id,
            "file_path": f"photos/{method.file_id}.jpg",
        }

    def _chat_member(self, method: GetChatMember) -> dict[str, Any]:
        user = {"id": method.user_id, "is_bot": False, "first_name": f"user {method.user_id}"}
        if method.user_id in self.admins.get(int(method.chat_id), set()):
            return {"status": "creator", "user": user, "is_anonymous": False}
        chat_members = self.members.get(int(method.chat_id))
        if chat_members is not None and method.user_id not in chat_members:
            return {"status": "left", "user": user}
        return {"status": "member", "user": user}

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        path = url.rsplit("/", 2)[-2:]
        data = None if self.downloads_fail else self.files.get("/".join(path))
        if data is None:
            if self.strict and not self.files and not self.downloads_fail:
                raise UnexpectedCallError(f"unexpected download of {url}")
            info = RequestInfo(URL(url), "GET", CIMultiDictProxy(CIMultiDict()), URL(url))
            raise ClientResponseError(info, (), status=404, message="Not Found")
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]

    async def close(self) -> None:
        return None


class UpdateFactory:
    """Builds real aiogram `Update` objects from a few facts, numbering updates and messages.

    Messages are remembered per chat, so a later one can reply to an earlier one by id.
    """

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}

    @staticmethod
    def group(chat_id: int, title: str) -> dict[str, Any]:
        return {"id": chat_id, "type": "supergroup", "title": title}

    @staticmethod
    def user(user_id: int, first_name: str, username: str | None = None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        return user

    @staticmethod
    def private(user: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    def message(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any] | None,
        text: str | None = None,
        *,
        reply_to: int | None = None,
        content: Mapping[str, Any] | None = None,
        edited: bool = False,
        message_id: int | None = None,
        **extra: Any,
    ) -> Update:
        """An Update with a message (or edited_message); `content` replaces the text."""
        chat_id = int(chat["id"])
        if message_id is None:
            message_id = next(self._message_ids.setdefault(chat_id, itertools.count(1)))
        body: dict[str, Any] = {"message_id": message_id, "date": int(self._now()), "chat": chat}
        if user is not None:
            body["from"] = dict(user)
        if content is not None:
            body.update(content)
        elif text is not None:
            body["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            body["reply_to_message"] = self._messages[(chat_id, reply_to)]
        body.update(extra)
        self._messages[(chat_id, message_id)] = {
            k: v for k, v in body.items() if k != "reply_to_message"
        }
        kind = "edited_message" if edited else "message"
        if edited:
            body["edit_date"] = int(self._now())
        return Update.model_validate({"update_id": next(self._update_ids), kind: body})
