"""The card's round avatar: the person's profile photo, or their initials on their colour."""

from __future__ import annotations

import io
import unicodedata
from functools import cache

from PIL import Image, ImageDraw, UnidentifiedImageError

from plugins.gamification.cards.text import (
    Box,
    baseline_in,
    draw_line,
    emoji_sheet,
    fit_line,
    line_start,
)

AVATAR_SIDE = 160
_SUPERSAMPLE = 4


@cache
def _circle() -> Image.Image:
    """An antialiased round mask, drawn large once and scaled down."""
    big = AVATAR_SIDE * _SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, big - 1, big - 1), fill=255)
    return mask.resize((AVATAR_SIDE, AVATAR_SIDE), Image.Resampling.LANCZOS)


def initials(name: str) -> str:
    """Up to two initials: the first letter (with its marks) of the first two words; an
    emoji-only name keeps its first emoji (cut from the sheet when drawn)."""
    emoji = emoji_sheet().match(name, 0) if name else None
    if emoji is not None:
        return emoji
    words = name.split()
    out = []
    for word in words[:2]:
        first = word[0]
        rest = "".join(c for c in word[1:3] if unicodedata.category(c).startswith("M"))
        out.append((first + rest).upper() if first.isalpha() else first + rest)
        if not first.isalpha():
            break
    return "".join(out) or "?"


def _photo(photo: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(photo)) as image:
            image.draft("RGB", (AVATAR_SIDE, AVATAR_SIDE))  # JPEG: decode at a smaller scale
            square = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    side = min(square.size)
    left, top = (square.width - side) // 2, (square.height - side) // 2
    square = square.crop((left, top, left + side, top + side))
    return square.resize((AVATAR_SIDE, AVATAR_SIDE), Image.Resampling.BILINEAR)


def avatar_image(
    name: str, user_id: int, colour: tuple[int, int, int], photo: bytes | None
) -> tuple[Image.Image, bool]:
    """The round avatar (RGBA) and whether it is the photo (False: initials)."""
    picture = _photo(photo) if photo else None
    if picture is None:
        picture = Image.new("RGBA", (AVATAR_SIDE, AVATAR_SIDE), colour)
        box = Box(24, 24, AVATAR_SIDE - 24, AVATAR_SIDE - 24)
        line = fit_line(initials(name), box, (64, 56, 48, 40), bold=True)
        draw_line(
            picture, line, line_start(line, box, "center"), baseline_in(line, box),
            (255, 255, 255),
        )  # fmt: skip
        drawn = False
    else:
        picture = picture.convert("RGBA")
        drawn = True
    out = Image.new("RGBA", (AVATAR_SIDE, AVATAR_SIDE), (0, 0, 0, 0))
    out.paste(picture, (0, 0), _circle())
    return out, drawn
