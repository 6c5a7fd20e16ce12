"""/points as a rank card: the person's profile photo fetched through the bot, the card
drawn off the event loop, cached until what it shows changes, sent with the text reply as
its caption. Every word on the card is in `card_labels`."""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message, PhotoSize
from aiohttp import ClientError

from plugins.gamification.cards import CardCache, CardData, CardLabels, render_card
from plugins.gamification.cards.avatar import AVATAR_SIDE
from plugins.gamification.domain.config import CardsSection
from plugins.gamification.engine import Progress
from plugins.gamification.telegram.i18n import _, ngettext, num

log = logging.getLogger(__name__)

# A profile photo larger than this is not read (Telegram's are 50-200 KB at 640 px).
MAX_PHOTO_BYTES = 2 * 1024 * 1024
# Cards waiting to be drawn at once; more wait their turn, so the thread is never flooded.
PENDING_RENDERS = 8
# Profile photos kept by their unique id, so a card drawn again does not download again.
PHOTO_CACHE = 64
_FETCH_ERRORS = (
    TelegramAPIError, ClientDecodeError, ClientError, OSError, TimeoutError, ValueError,
)  # fmt: skip


def card_labels() -> CardLabels:
    """The card's own words, in the reader's language (the locale of the handler)."""
    return CardLabels(
        points=_("Points"),
        rank=_("Rank"),
        streak=_("Streak"),
        level=_("Level {level}"),
        to_next=_("{points} to level {level}"),
        achievements=_("Latest"),
        no_achievements=_("No achievements yet"),
    )


def streak_text(days: int) -> str:
    return ngettext("{count} day", "{count} days", days).format(count=num(days))


def card_data(
    user_id: int,
    name: str,
    balance: int,
    rank: int | None,
    progress: Progress,
    achievements: tuple[str, ...],
) -> CardData:
    """What the card of one person shows, every number written for the reader."""
    span = progress.next_level_at - progress.level_at
    done = progress.earned - progress.level_at
    labels = card_labels()
    to_next = labels.to_next.format(
        points=num(progress.next_level_at - progress.earned), level=num(progress.level + 1)
    )
    return CardData(
        user_id=user_id,
        name=name,
        points=num(balance),
        rank=f"#{num(rank)}" if rank is not None else "—",
        level=num(progress.level),
        progress=done / span if span > 0 else 0.0,
        progress_text=to_next,
        streak=streak_text(progress.streak),
        achievements=achievements,
        labels=labels,
    )


class RankCards:
    """Draws, caches and sends cards; one per plugin, closed with it."""

    def __init__(self, section: CardsSection) -> None:
        self.avatar_seconds = section.avatar_seconds
        self.cache = CardCache(section.cache_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rank-cards")
        self._pending = asyncio.Semaphore(PENDING_RENDERS)
        self._photos: OrderedDict[str, bytes] = OrderedDict()

    async def reply(
        self,
        message: Message,
        data: CardData,
        caption: str,
        markup: InlineKeyboardMarkup | None,
    ) -> None:
        """Answer `message` with the card of `data`, `caption` under it."""
        bot = message.bot
        assert bot is not None  # a handler's message always carries its bot
        loop = asyncio.get_running_loop()
        # One limit for the whole fetch (the photo's id, then its file), as configured.
        deadline = loop.time() + self.avatar_seconds
        size = await self._profile_photo(bot, data.user_id, deadline)
        data = replace(data, avatar_id=size.file_unique_id if size else None)
        card = self.cache.get(data)
        if card is None:
            photo = await self._download(bot, size, deadline) if size else None
            if photo is None and data.avatar_id is not None:
                # Not fetched this time: the card with initials, and another try next time.
                data = replace(data, avatar_id=None)
                card = self.cache.get(data)
            if card is None:
                async with self._pending:
                    drawn = await loop.run_in_executor(self._executor, render_card, data, photo)
                # Kept under the photo it was drawn for, even when that photo could not be
                # read (initials again for the same photo: nothing to draw twice).
                card = self.cache.put(data, drawn.png)
        if card.file_id is not None:
            try:
                await message.reply_photo(card.file_id, caption=caption, reply_markup=markup)
                return
            except TelegramBadRequest:  # the id is no longer good: upload the card again
                card.file_id = None
        upload = BufferedInputFile(card.png, filename="card.png")
        try:
            sent = await message.reply_photo(upload, caption=caption, reply_markup=markup)
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            # A chat that allows no photos (or the bot none) still gets the answer.
            log.info("rank card refused in chat %s: %s", message.chat.id, exc)
            await message.reply(caption, reply_markup=markup)
            return
        if sent.photo:
            card.file_id = sent.photo[-1].file_id

    async def _profile_photo(self, bot: Bot, user_id: int, deadline: float) -> PhotoSize | None:
        """The smallest size of the newest profile photo that fills the avatar, or None."""
        try:
            async with asyncio.timeout_at(deadline):
                found = await bot.get_user_profile_photos(user_id, limit=1)
        except _FETCH_ERRORS as exc:
            log.info("no profile photo for the card of user %s: %s", user_id, exc)
            return None
        if not found.photos or not found.photos[0]:
            return None
        sizes = sorted(found.photos[0], key=lambda size: size.width)
        return next((s for s in sizes if s.width >= AVATAR_SIDE), sizes[-1])

    async def _download(self, bot: Bot, size: PhotoSize, deadline: float) -> bytes | None:
        cached = self._photos.get(size.file_unique_id)
        if cached is not None:
            self._photos.move_to_end(size.file_unique_id)
            return cached
        if size.file_size is not None and size.file_size > MAX_PHOTO_BYTES:
            return None
        try:
            async with asyncio.timeout_at(deadline):
                file = await bot.get_file(size.file_id)
                if file.file_path is None:
                    return None
                data = await _read(bot, file.file_path)
        except _FETCH_ERRORS as exc:
            log.info("profile photo %s not downloaded: %s", size.file_unique_id, exc)
            return None
        if data is not None:
            self._photos[size.file_unique_id] = data
            while len(self._photos) > PHOTO_CACHE:
                self._photos.popitem(last=False)
        return data

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _read(bot: Bot, file_path: str) -> bytes | None:
    """The file's bytes through the bot's own session: the Bot API server it talks to
    (`[bot] api_server`), from its disk when that server runs in local mode."""
    api = bot.session.api
    out = io.BytesIO()
    if api.is_local and Path(file_path).is_absolute():
        await bot.download_file(file_path, out)
    else:
        url = api.file_url(bot.token, file_path)
        # The caller's deadline bounds the whole download.
        async for chunk in bot.session.stream_content(url):
            out.write(chunk)
            if out.tell() > MAX_PHOTO_BYTES:
                return None
    data = out.getvalue()
    return data if len(data) <= MAX_PHOTO_BYTES else None
