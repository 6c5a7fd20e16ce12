"""Who is looking: a Mini App's signed launch data checked with the bot token, and whether
that person is a member (or an admin) of the chat, asked of Telegram and kept briefly."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import ChatMemberRestricted
from aiogram.utils.web_app import WebAppInitData, safe_parse_webapp_init_data
from pydantic import ValidationError

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR})
MEMBER_STATUSES = ADMIN_STATUSES | {ChatMemberStatus.MEMBER}
# Launch data dated this far ahead of our clock is still taken (clocks differ a little).
CLOCK_SKEW_SECONDS = 60.0
MEMBER_CACHE_SIZE = 10_000


class SignInError(Exception):
    """The launch data is missing, forged, expired or names nobody: answered 401."""


class TelegramUnavailableError(Exception):
    """Telegram could not be asked about a membership: answered 503."""


def verify_init_data(
    token: str, init_data: str, *, now: datetime, max_age: float
) -> WebAppInitData:
    """The launch data, once its signature (HMAC with the bot token, as Telegram signs it)
    and its age check out; SignInError otherwise."""
    try:
        data = safe_parse_webapp_init_data(token, init_data)
    except (ValueError, ValidationError, TypeError) as exc:
        raise SignInError("the launch data is not signed by this bot") from exc
    age = (now - data.auth_date).total_seconds()
    if age > max_age or age < -CLOCK_SKEW_SECONDS:
        raise SignInError("the launch data has expired")
    if data.user is None:
        raise SignInError("the launch data names no user")
    return data


@dataclass(frozen=True, slots=True)
class Membership:
    member: bool
    admin: bool


class Members:
    """getChatMember answers, trusted for `ttl` seconds (monotonic), at most 10,000 kept."""

    def __init__(self, bot: Bot, ttl: float, admin_ids: frozenset[int]) -> None:
        self._bot = bot
        self._ttl = ttl
        self._admin_ids = admin_ids
        self._cache: OrderedDict[tuple[int, int], tuple[float, Membership]] = OrderedDict()

    async def of(self, chat_id: int, user_id: int) -> Membership:
        key = (chat_id, user_id)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            member = await self._bot.get_chat_member(chat_id, user_id)
        except TelegramNetworkError as exc:
            raise TelegramUnavailableError(str(exc)) from exc
        except TelegramAPIError as exc:
            # "user not found", "chat not found", the bot removed from the chat: not a member.
            log.info("getChatMember(%s, %s) refused: %s", chat_id, user_id, exc)
            found = Membership(False, False)
        else:
            inside = member.status in MEMBER_STATUSES or (
                isinstance(member, ChatMemberRestricted) and member.is_member
            )
            found = Membership(inside, member.status in ADMIN_STATUSES)
        if user_id in self._admin_ids:  # the bot's own admins see every chat's admin page
            found = Membership(True, True)
        self._cache[key] = (now + self._ttl, found)
        self._cache.move_to_end(key)
        if len(self._cache) > MEMBER_CACHE_SIZE:
            self._cache.popitem(last=False)
        return found
