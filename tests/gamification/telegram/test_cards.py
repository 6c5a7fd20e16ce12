"""/points as a rank card, through the real Dispatcher and the recording Bot API session."""

from __future__ import annotations

import io

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import GetFile, GetUserProfilePhotos, SendPhoto
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup
from PIL import Image

from plugins.gamification.cards.card import HEIGHT, WIDTH
from plugins.gamification.telegram.cards import RankCards
from tests.gamification.conftest import MakeHarness
from tests.support.chat import ALICE, BOB, CHAT, CHAT_ID, FIXED, MOD, SENTENCES
from tests.support.telegram_harness import TelegramHarness

CARDS = {**FIXED, "cards": {"enabled": True}}
ALICE_TEXT = (
    "Alice: <b>10</b> points (rank #1), 10 earned in all.\n"
    "Level 0 (90 to level 1), streak 1 day (best 1)."
)


def portrait(colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 640), colour).save(out, "JPEG")
    return out.getvalue()


def cards_of(h: TelegramHarness) -> RankCards:
    cards = h.runtime.cards
    assert cards is not None
    return cards


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb(data: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    """The colour of one pixel of a card."""
    pixel = decoded(data).convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


@pytest.fixture
async def h(make_harness: MakeHarness) -> TelegramHarness:
    return await make_harness(gamification=CARDS)


async def test_points_sends_a_card_with_the_text_as_caption(h: TelegramHarness) -> None:
    await h.say(CHAT, ALICE, SENTENCES[0])
    update = await h.say(CHAT, ALICE, "/points")
    assert update.message is not None
    (photo,) = h.session.photos
    assert photo.caption == ALICE_TEXT
    assert int(photo.chat_id) == CHAT_ID
    assert photo.reply_parameters is not None
    assert photo.reply_parameters.message_id == update.message.message_id
    assert isinstance(photo.photo, BufferedInputFile)
    ((name, data),) = h.session.uploads
    assert name == "card.png"
    image = decoded(data)
    assert (image.format, image.size) == ("PNG", (WIDTH, HEIGHT))
    assert h.texts() == []  # the caption is the reply: no second message


async def test_points_as_a_reply_shows_the_other_persons_card(h: TelegramHarness) -> None:
    first = await h.say(CHAT, BOB, SENTENCES[1])
    assert first.message is not None
    h.clock.advance(61)
    await h.say(CHAT, BOB, SENTENCES[2])
    await h.say(CHAT, ALICE, "/points", reply_to=first.message.message_id)
    (photo,) = h.session.photos
    assert photo.caption is not None
    assert photo.caption.startswith("Bob: <b>20</b> points (rank #1)")


async def test_cards_off_gives_the_text_reply(make_harness: MakeHarness) -> None:
    h = await make_harness(gamification={**FIXED, "cards": {"enabled": False}})
    await h.say(CHAT, ALICE, SENTENCES[0])
    await h.say(CHAT, ALICE, "/points")
    assert h.runtime.cards is None
    assert h.session.photos == []
    assert h.texts() == [ALICE_TEXT]


async def test_the_profile_photo_is_drawn_when_it_can_be_fetched(h: TelegramHarness) -> None:
    h.session.profile_photos[ALICE["id"]] = portrait((10, 200, 30))
    await h.say(CHAT, ALICE, "/points")
    ((_, data),) = h.session.uploads
    # The avatar's centre is the photo's green, not a colour of initials.
    red, green, blue = rgb(data, (112, 120))
    assert green > 150
    assert red < 60
    assert blue < 80
    assert cards_of(h).cache.renders == 1


async def test_a_failed_photo_download_gives_initials(h: TelegramHarness) -> None:
    h.session.profile_photos[ALICE["id"]] = portrait()
    await h.say(CHAT, ALICE, SENTENCES[0])
    # Telegram names the photo, but its file cannot be downloaded (404).
    h.session.downloads_fail = True
    await h.say(CHAT, ALICE, "/points")
    (photo,) = h.session.photos
    assert photo.caption == ALICE_TEXT
    ((_, data),) = h.session.uploads
    assert decoded(data).size == (WIDTH, HEIGHT)
    # The avatar is Alice's colour with her initial, not the photo's green.
    red, green, blue = rgb(data, (60, 70))
    assert not (green > 150 and red < 60 and blue < 80)


async def test_a_photo_that_is_not_an_image_is_drawn_as_initials_once(
    h: TelegramHarness,
) -> None:
    h.session.profile_photos[ALICE["id"]] = b"not an image"
    await h.say(CHAT, ALICE, "/points")
    await h.say(CHAT, ALICE, "/points")
    assert len(h.session.photos) == 2
    # Kept under that photo: the same photo again is the same card, not a new drawing.
    assert cards_of(h).cache.renders == 1
    assert len(h.session.uploads) == 1


async def test_a_second_points_reuses_the_card_until_the_balance_changes(
    h: TelegramHarness,
) -> None:
    cards = cards_of(h)
    await h.say(CHAT, ALICE, SENTENCES[0])
    await h.say(CHAT, ALICE, "/points")
    await h.say(CHAT, ALICE, "/points")
    first, second = h.session.photos
    # Drawn once, uploaded once, then sent again by Telegram's id for it.
    assert cards.cache.renders == 1
    assert len(h.session.uploads) == 1
    assert isinstance(first.photo, BufferedInputFile)
    assert second.photo == "sent-photo-1"
    assert second.caption == first.caption
    await h.services.engine.award(CHAT_ID, ALICE["id"], 5, key="bonus:1")
    await h.say(CHAT, ALICE, "/points")
    third = h.session.photos[-1]
    assert cards.cache.renders == 2
    assert len(h.session.uploads) == 2
    assert isinstance(third.photo, BufferedInputFile)
    assert third.caption is not None
    assert "<b>15</b> points" in third.caption
    assert h.session.uploads[0][1] != h.session.uploads[1][1]


async def test_a_rejected_file_id_uploads_the_card_again(h: TelegramHarness) -> None:
    cards = cards_of(h)
    await h.say(CHAT, ALICE, "/points")
    for cached in cards.cache._cards.values():
        cached.file_id = "gone"
    original = h.session._answers[SendPhoto]

    def refuse_ids(method: SendPhoto) -> object:
        if method.photo == "gone":
            raise TelegramBadRequest(method, "Bad Request: wrong file identifier")
        return original(method)

    h.session._answers[SendPhoto] = refuse_ids
    await h.say(CHAT, ALICE, "/points")
    assert [type(p.photo) for p in h.session.photos] == [BufferedInputFile, str, BufferedInputFile]
    assert cards.cache.renders == 1


async def test_the_card_carries_the_leaderboard_button(make_harness: MakeHarness) -> None:
    web = {"listen": "127.0.0.1:0", "public_url": "https://points.example.org/board"}
    h = await make_harness(gamification=CARDS, web=web)
    await h.say(CHAT, ALICE, "/points")
    (photo,) = h.session.photos
    assert isinstance(photo.reply_markup, InlineKeyboardMarkup)
    [[button]] = photo.reply_markup.inline_keyboard
    assert button.url == f"https://t.me/points_bot?start=c{CHAT_ID}"


async def test_a_refused_photo_lookup_gives_initials(h: TelegramHarness) -> None:
    h.session.profile_photos[ALICE["id"]] = portrait()

    def refuse(method: GetUserProfilePhotos) -> object:
        raise TelegramBadRequest(method, "Bad Request: user not found")

    h.session._answers[GetUserProfilePhotos] = refuse
    await h.say(CHAT, ALICE, "/points")
    (photo,) = h.session.photos
    assert photo.caption is not None
    assert photo.caption.startswith("Alice: <b>0</b> points")
    assert not [call for call in h.session.calls if isinstance(call, GetFile)]
    ((_, data),) = h.session.uploads
    red, green, _ = rgb(data, (60, 70))
    assert (red, green) != (10, 200)


async def test_a_new_photo_draws_a_new_card(h: TelegramHarness) -> None:
    cards = cards_of(h)
    h.session.profile_photos[ALICE["id"]] = portrait((10, 200, 30))
    await h.say(CHAT, ALICE, "/points")
    h.session.profile_photos[ALICE["id"]] = portrait((200, 20, 20))
    await h.say(CHAT, ALICE, "/points")
    assert cards.cache.renders == 2
    red, green, _ = rgb(h.session.uploads[-1][1], (112, 120))
    assert red > 150
    assert green < 80


async def test_a_chat_that_refuses_photos_gets_the_text(h: TelegramHarness) -> None:
    def refuse(method: SendPhoto) -> object:
        raise TelegramBadRequest(method, "Bad Request: not enough rights to send photos")

    h.session._answers[SendPhoto] = refuse
    await h.say(CHAT, ALICE, SENTENCES[0])
    await h.say(CHAT, ALICE, "/points")
    assert len(h.session.photos) == 1
    assert h.texts() == [ALICE_TEXT]


async def test_the_card_speaks_the_chat_language(make_harness: MakeHarness) -> None:
    h = await make_harness(gamification=CARDS, admins={CHAT_ID: {MOD["id"]}})
    await h.say(CHAT, MOD, "/language ru")
    await h.say(CHAT, ALICE, SENTENCES[0])
    await h.services.engine.award(CHAT_ID, ALICE["id"], 1224, key="bonus:ru")
    await h.say(CHAT, ALICE, "/points")
    cards = cards_of(h)
    ((data, _),) = cards.cache._cards.items()
    assert (data.labels.points, data.labels.rank, data.labels.streak) == (
        "Очки",
        "Место",
        "Серия",
    )
    assert data.points == "1\u00a0234"
    assert data.streak == "1 день"
    assert data.progress_text == "391 до уровня 6"
    (photo,) = h.session.photos
    assert photo.caption is not None
    assert photo.caption.startswith("Alice: <b>1\u00a0234</b> балла")
    await h.say(CHAT, MOD, "/language es")
    await h.say(CHAT, ALICE, "/points")
    assert cards.cache.renders == 2  # the same standing, another language: another card
    spanish = next(d for d in cards.cache._cards if d.labels.points == "Puntos")
    assert spanish.points == "1.234"
    assert spanish.streak == "1 día"
