"""Typesetting for the rank cards: the bundled fonts, emoji from the bundled sheet,
right-to-left text, and fitting one line into a box (a smaller size, then an ellipsis).

Right-to-left: with Pillow's raqm layout (HarfBuzz and FriBiDi) each run of text is shaped
and ordered by raqm with the line's direction; without it, python-bidi puts each run in
display order (Arabic letters then stand unjoined, but in the right order). Emoji are cut
from a sheet drawn once from Noto Color Emoji (tools/make_card_emoji.py), so that no colour
bitmap font of 11 MB ships; they are ordered among the text runs by the line's direction.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from bidi import get_display
from PIL import Image, ImageDraw, ImageFont, features

from plugins.gamification.domain.text import FILLERS

FONTS = Path(__file__).resolve().parent / "fonts"
RAQM = features.check("raqm")
ELLIPSIS = "…"
# Marks stacked on one letter beyond this are dropped: "Zalgo" names stay on their line.
MAX_MARKS = 2
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_VS16, _ZWJ = "\ufe0f", "\u200d"


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle on the card, in pixels: left, top (inclusive), right, bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def contains(self, other: Box) -> bool:
        return (
            self.left <= other.left
            and self.top <= other.top
            and other.right <= self.right
            and other.bottom <= self.bottom
        )


class EmojiSheet:
    """The emoji a card can draw, each in a square cell of one sheet, read on first use."""

    def __init__(self, folder: Path = FONTS) -> None:
        meta = json.loads((folder / "emoji.json").read_text(encoding="utf-8"))
        self.cell: int = meta["cell"]
        self._columns: int = meta["columns"]
        self._index: dict[str, int] = meta["index"]
        self._png = folder / "emoji.png"
        self.longest = max(len(text) for text in self._index)
        self._cells: dict[tuple[str, int], Image.Image] = {}

    @cached_property
    def _sheet(self) -> Image.Image:
        with Image.open(self._png) as sheet:
            return sheet.convert("RGBA")

    def __contains__(self, text: str) -> bool:
        return text in self._index

    def match(self, text: str, start: int) -> str | None:
        """The longest emoji sequence of the sheet at `start`, if any."""
        for length in range(min(self.longest, len(text) - start), 0, -1):
            if text[start : start + length] in self._index:
                return text[start : start + length]
        return None

    def image(self, emoji: str, side: int) -> Image.Image:
        found = self._cells.get((emoji, side))
        if found is None:
            i, cell = self._index[emoji], self.cell
            x, y = (i % self._columns) * cell, (i // self._columns) * cell
            found = self._sheet.crop((x, y, x + cell, y + cell))
            if side != cell:
                found = found.resize((side, side), Image.Resampling.BILINEAR)
            if len(self._cells) > 512:
                self._cells.clear()
            self._cells[(emoji, side)] = found
        return found


@cache
def emoji_sheet() -> EmojiSheet:
    return EmojiSheet()


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    layout = ImageFont.Layout.RAQM if RAQM else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(FONTS / name), size, layout_engine=layout)


def tidy(text: str) -> str:
    """The text a card draws: NFC, without control and format characters (bidi overrides,
    invisible fillers), at most MAX_MARKS marks on a letter, no emoji joiners or selectors."""
    sheet = emoji_sheet()
    out: list[str] = []
    marks = 0
    for ch in unicodedata.normalize("NFC", text):
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs", "Co", "Zl", "Zp") or (category == "Cf" and ch != _ZWJ):
            continue
        if ch in FILLERS:
            continue
        if category.startswith("M") and ch != _VS16:
            marks += 1
            if marks > MAX_MARKS:
                continue
        else:
            marks = 0
        out.append(" " if category.startswith("Z") else ch)
    kept: list[str] = []
    for i, ch in enumerate(out):
        after_emoji = bool(kept) and kept[-1] in sheet
        if ch == _VS16 or (ord(ch) in _SKIN_TONES and after_emoji):
            continue
        if ch == _ZWJ and (after_emoji or (i + 1 < len(out) and out[i + 1] in sheet)):
            continue
        kept.append(ch)
    return " ".join("".join(kept).split())


def is_rtl(text: str) -> bool:
    """The line's direction: that of its first letter with a strong direction."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


@dataclass(frozen=True, slots=True)
class Run:
    """A piece of a line in display order: text in one font, or one emoji."""

    text: str
    emoji: bool
    x: int  # from the line's start
    width: int
    ink: tuple[int, int, int, int]  # relative to (x, baseline)


@dataclass(frozen=True, slots=True)
class Line:
    """One line set at one size, ready to draw: its runs in display order and its ink."""

    text: str  # what is drawn, in logical order
    size: int
    bold: bool
    rtl: bool
    runs: tuple[Run, ...]
    width: int
    ink: tuple[int, int, int, int]  # relative to (start, baseline)

    def ink_at(self, x: int, baseline: int) -> Box:
        left, top, right, bottom = self.ink
        return Box(x + left, baseline + top, x + right, baseline + bottom)


def _segments(text: str) -> list[tuple[str, bool]]:
    """The text cut into pieces of plain text and single emoji, in logical order."""
    sheet = emoji_sheet()
    pieces: list[tuple[str, bool]] = []
    plain: list[str] = []
    i = 0
    while i < len(text):
        keycap = i + 1 < len(text) and text[i + 1] == "\u20e3"
        emoji = sheet.match(text, i) if ord(text[i]) >= 0x2000 or keycap else None
        if emoji is None:
            plain.append(text[i])
            i += 1
            continue
        if plain:
            pieces.append(("".join(plain), False))
            plain = []
        pieces.append((emoji, True))
        i += len(emoji)
    if plain:
        pieces.append(("".join(plain), False))
    return pieces


def _display_order(pieces: list[tuple[str, bool]], rtl: bool) -> list[tuple[str, bool]]:
    """Pieces in display order. Each text piece is ordered inside by raqm or python-bidi;
    here the pieces are: those of the other direction keep their order, as a group."""
    direction = [
        None if emoji or not any(unicodedata.bidirectional(c) in ("L", "R", "AL") for c in s)
        else is_rtl(s)
        for s, emoji in pieces
    ]  # fmt: skip
    resolved = [rtl if d is None else d for d in direction]
    ordered = list(reversed(pieces)) if rtl else list(pieces)
    flags = list(reversed(resolved)) if rtl else resolved
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and flags[j] != rtl:
            j += 1
        if j > i:  # a group against the line's direction reads the other way round
            out.extend(reversed(ordered[i:j]))
            i = j
        else:
            out.append(ordered[i])
            i += 1
    return out


def _measure(
    face: ImageFont.FreeTypeFont, text: str, rtl: bool
) -> tuple[str, int, tuple[int, int, int, int]]:
    """The text as it is handed to Pillow, its advance and its ink (from the baseline)."""
    if RAQM:
        direction = "rtl" if rtl else "ltr"
        width = face.getlength(text, direction=direction)
        box = face.getbbox(text, anchor="ls", direction=direction)
    else:
        text = get_display(text, base_dir="R" if rtl else "L")
        width = face.getlength(text)
        box = face.getbbox(text, anchor="ls")
    left, top, right, bottom = (round(v) for v in box)
    return text, round(width), (left, top, right, bottom)


def set_line(text: str, size: int, bold: bool = False) -> Line:
    """`text` (already tidied) set at `size`, measured."""
    rtl = is_rtl(text)
    face = font(size, bold)
    descent = face.getmetrics()[1]
    side = round(size * 1.15)
    runs: list[Run] = []
    x = 0
    top, bottom, left, right = 0, 0, 0, 0
    for piece, emoji in _display_order(_segments(text), rtl):
        if emoji:
            width = side + max(1, size // 10)
            ink = (0, descent // 2 - side, side, descent // 2)
        else:
            piece, width, ink = _measure(face, piece, rtl)
        runs.append(Run(piece, emoji, x, width, ink))
        if ink[2] > ink[0]:
            left, right = min(left, x + ink[0]), max(right, x + ink[2])
            top, bottom = min(top, ink[1]), max(bottom, ink[3])
        x += width
    return Line(text, size, bold, rtl, tuple(runs), x, (left, top, max(right, left), bottom))


def fit_line(text: str, box: Box, sizes: tuple[int, ...], bold: bool = False) -> Line:
    """The largest of `sizes` at which `text` fits `box`; at the smallest, cut with an
    ellipsis until it does. Always returns a line that fits."""
    clean = tidy(text)
    for size in sizes:
        line = set_line(clean, size, bold)
        if _fits(line, box):
            return line
    size = sizes[-1]
    low, high = 0, len(clean)
    best = set_line(ELLIPSIS, size, bold)
    while low < high:  # the longest start of the text that fits with the ellipsis
        middle = (low + high + 1) // 2
        line = set_line(clean[:middle].rstrip() + ELLIPSIS, size, bold)
        if _fits(line, box):
            best, low = line, middle
        else:
            high = middle - 1
    if not _fits(best, box):  # marks that reach above any letter: drop them all
        bare = "".join(c for c in clean if not unicodedata.category(c).startswith("M"))
        if bare != clean:
            return fit_line(bare, box, sizes[-1:], bold)
    return best


def _fits(line: Line, box: Box) -> bool:
    left, top, right, bottom = line.ink
    return line.width <= box.width and right - left <= box.width and bottom - top <= box.height


def baseline_in(line: Line, box: Box) -> int:
    """The baseline that centres the line's ink in `box` vertically."""
    _, top, _, bottom = line.ink
    return box.top + (box.height - (bottom - top)) // 2 - top


def line_start(line: Line, box: Box, align: str) -> int:
    """Where the line starts so that its ink sits left, right or centred in `box`."""
    left, _, right, _ = line.ink
    if align == "center":
        return box.left + (box.width - (right - left)) // 2 - left
    if align == "right":
        return box.right - right
    return box.left - left


def draw_line(
    image: Image.Image, line: Line, x: int, baseline: int, fill: tuple[int, int, int]
) -> None:
    draw = ImageDraw.Draw(image)
    face = font(line.size, line.bold)
    sheet = emoji_sheet()
    for run in line.runs:
        if run.emoji:
            side = run.ink[2] - run.ink[0]
            emoji = sheet.image(run.text, side)
            image.alpha_composite(emoji, (x + run.x, baseline + run.ink[1]))
        elif RAQM:
            direction = "rtl" if line.rtl else "ltr"
            draw.text(
                (x + run.x, baseline), run.text, font=face, fill=fill, anchor="ls",
                direction=direction,
            )  # fmt: skip
        else:
            draw.text((x + run.x, baseline), run.text, font=face, fill=fill, anchor="ls")
