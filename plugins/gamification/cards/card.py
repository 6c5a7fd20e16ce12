"""The rank card: what it shows (CardData), where each thing goes (the layout, as data that
tests can check), and the drawing into a PNG."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from plugins.gamification.cards.avatar import AVATAR_SIDE, avatar_image
from plugins.gamification.cards.text import (
    Box,
    Line,
    baseline_in,
    draw_line,
    fit_line,
    line_start,
)

WIDTH, HEIGHT = 800, 280
BACKGROUND = (28, 32, 44)
PANEL = (38, 43, 58)
TEXT = (238, 240, 245)
MUTED = (150, 158, 178)
TRACK = (58, 64, 84)


@dataclass(frozen=True, slots=True)
class CardLabels:
    """Every word the card shows besides the person's own data, in the reader's language."""

    points: str = "Points"
    rank: str = "Rank"
    streak: str = "Streak"
    level: str = "Level {level}"
    # Under the bar, right: what is left to the next level.
    to_next: str = "{points} to level {level}"
    achievements: str = "Latest"
    no_achievements: str = "No achievements yet"


@dataclass(frozen=True, slots=True)
class CardData:
    """What one card shows, already written for its reader (numbers formatted). Two cards
    with equal data are the same picture, so this is also the cache's key."""

    user_id: int
    name: str
    points: str
    rank: str
    level: str
    # Progress from this level to the next, 0..1, and what is left in words.
    progress: float
    progress_text: str
    streak: str
    achievements: tuple[str, ...]
    labels: CardLabels = field(default_factory=CardLabels)
    # What identifies the profile photo drawn (Telegram's file_unique_id); None: initials.
    avatar_id: str | None = None


# The areas, by name: each text is fitted inside its own, and the tests check it stays there.
AVATAR = Box(32, 40, 32 + AVATAR_SIDE, 40 + AVATAR_SIDE)
NAME = Box(208, 28, 776, 76)
STAT_TOP, STAT_LABEL, STAT_BOTTOM = 88, 112, 152
LEVEL = Box(208, 164, 480, 190)
PROGRESS = Box(480, 164, 776, 190)
BAR = Box(208, 196, 776, 212)
ACHIEVEMENTS = Box(32, 232, 776, 262)
_STAT_COLUMNS = ((208, 388), (400, 580), (592, 776))

NAME_SIZES = (34, 30, 26, 22)
VALUE_SIZES = (30, 26, 22, 18, 15, 12)
LABEL_SIZES = (15, 13, 11)
SMALL_SIZES = (17, 15, 13, 11)


@dataclass(frozen=True, slots=True)
class Placed:
    """One text on the card: its area, the box its ink covers, and the line drawn."""

    area_name: str
    area: Box
    ink: Box
    line: Line
    align: str = "left"


@dataclass(frozen=True, slots=True)
class CardLayout:
    width: int
    height: int
    avatar: Box
    bar: Box
    bar_filled: Box
    texts: tuple[Placed, ...]

    def text(self, area_name: str) -> Placed:
        return next(p for p in self.texts if p.area_name == area_name)


def _place(name: str, area: Box, text: str, sizes: tuple[int, ...], *, bold: bool = False,
           align: str = "left") -> Placed:  # fmt: skip
    line = fit_line(text, area, sizes, bold)
    x, baseline = line_start(line, area, align), baseline_in(line, area)
    return Placed(name, area, line.ink_at(x, baseline), line, align)


def layout(data: CardData) -> CardLayout:
    """Where everything on the card goes, each text fitted into its area."""
    labels = data.labels
    texts = [_place("name", NAME, data.name, NAME_SIZES, bold=True)]
    stats = (
        ("points", labels.points, data.points),
        ("rank", labels.rank, data.rank),
        ("streak", labels.streak, data.streak),
    )
    for (left, right), (key, label, value) in zip(_STAT_COLUMNS, stats, strict=True):
        texts.append(
            _place(f"{key}_label", Box(left, STAT_TOP, right, STAT_LABEL), label, LABEL_SIZES)
        )
        texts.append(
            _place(key, Box(left, STAT_LABEL, right, STAT_BOTTOM), value, VALUE_SIZES, bold=True)
        )
    level = labels.level.format(level=data.level)
    texts.append(_place("level", LEVEL, level, SMALL_SIZES, bold=True))
    texts.append(_place("progress", PROGRESS, data.progress_text, SMALL_SIZES, align="right"))
    if data.achievements:
        latest = f"{labels.achievements}: " + " · ".join(data.achievements)
    else:
        latest = labels.no_achievements
    texts.append(_place("achievements", ACHIEVEMENTS, latest, SMALL_SIZES))
    share = min(max(data.progress, 0.0), 1.0)
    filled = Box(BAR.left, BAR.top, BAR.left + round(BAR.width * share), BAR.bottom)
    return CardLayout(WIDTH, HEIGHT, AVATAR, BAR, filled, tuple(texts))


@dataclass(frozen=True, slots=True)
class RenderedCard:
    png: bytes
    layout: CardLayout
    # False when the photo given could not be read and initials were drawn instead.
    avatar_drawn: bool


def accent(user_id: int) -> tuple[int, int, int]:
    """The person's colour: the same for the same id, one of a few that read well."""
    palette = (
        (229, 115, 115), (255, 167, 38), (156, 204, 101), (38, 198, 218),
        (92, 107, 192), (171, 71, 188), (236, 64, 122), (77, 182, 172),
    )  # fmt: skip
    return palette[user_id % len(palette)]


def render_card(data: CardData, photo: bytes | None = None) -> RenderedCard:
    """The card as a PNG. CPU work (a few milliseconds): run it off the event loop."""
    plan = layout(data)
    image = Image.new("RGBA", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    colour = accent(data.user_id)
    draw.rounded_rectangle((12, 12, WIDTH - 12, HEIGHT - 12), 20, fill=PANEL)
    draw.rectangle((12, 32, 16, HEIGHT - 32), fill=colour)
    avatar, drawn = avatar_image(data.name, data.user_id, colour, photo)
    image.alpha_composite(avatar, (plan.avatar.left, plan.avatar.top))
    bar, filled = plan.bar, plan.bar_filled
    radius = bar.height // 2
    draw.rounded_rectangle((bar.left, bar.top, bar.right - 1, bar.bottom - 1), radius, fill=TRACK)
    if filled.width >= bar.height:
        draw.rounded_rectangle(
            (filled.left, filled.top, filled.right - 1, filled.bottom - 1), radius, fill=colour
        )
    for placed in plan.texts:
        muted = placed.area_name.endswith("_label") or placed.area_name in (
            "progress", "achievements",
        )  # fmt: skip
        x = placed.ink.left - placed.line.ink[0]
        baseline = placed.ink.top - placed.line.ink[1]
        draw_line(image, placed.line, x, baseline, MUTED if muted else TEXT)
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG", compress_level=1)
    return RenderedCard(out.getvalue(), plan, drawn)
