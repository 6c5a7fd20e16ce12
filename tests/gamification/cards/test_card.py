"""The rank card's layout and drawing: awkward names and numbers stay inside their areas."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image

from plugins.gamification.cards import CardData, CardLabels, layout, render_card
from plugins.gamification.cards import text as typesetting
from plugins.gamification.cards.avatar import initials
from plugins.gamification.cards.card import HEIGHT, WIDTH, CardLayout
from plugins.gamification.cards.text import Box, fit_line, is_rtl, set_line, tidy

BASE = CardData(
    user_id=42,
    name="Alice",
    points="1,234",
    rank="#2",
    level="3",
    progress=0.4,
    progress_text="72 / 180",
    streak="5 days",
    achievements=("First steps", "Chatterbox"),
)
AWKWARD = {
    "64 latin letters": "W" * 64,
    "64 characters with spaces": (
        "Maximilian Alexander Wolfgang von Hohenzollern-Sigmaringen III ok"
    ),
    "hebrew": "שלום עליכם ברוכים הבאים לקבוצה שלנו החביבה מאוד מאוד",
    "arabic": "مرحبا بالعالم يا أصدقاء المجموعة الرائعة جدا جدا",
    "mixed scripts": "Anna Ивановна שלום مرحبا Ελένη 🎉 Zoë",
    "emoji only": "🎉🔥💯🚀🌈🦄🍕🎸🏆🌟🎉🔥💯🚀🌈🦄🍕🎸🏆🌟🎉🔥💯🚀🌈🦄🍕🎸🏆🌟🎉🔥",
    "flags and keycaps": "🇺🇦🇩🇪🇯🇵 1️⃣2️⃣ 👩‍💻 👍🏽",
    "stacked marks": "Z̷̡̢̛̛a̷̧̛̛l̷̢̛g̸̢̛o̵̡̡̢" * 4,
    "bidi override": "\u202eevil\u202c name\u200b with\u3164 fillers",
    "cjk (no glyphs: boxes)": "山田太郎さんのアカウント" * 3,
    "empty": "",
}
HUGE = "9,007,199,254,740,992"


def inside(plan: CardLayout) -> None:
    card = Box(0, 0, WIDTH, HEIGHT)
    for placed in plan.texts:
        assert placed.area.contains(placed.ink), (placed.area_name, placed.area, placed.ink)
        assert card.contains(placed.area)
    assert plan.bar.contains(plan.bar_filled)


def png_of(data: CardData, photo: bytes | None = None) -> Image.Image:
    image = Image.open(io.BytesIO(render_card(data, photo).png))
    image.load()
    assert (image.format, image.size) == ("PNG", (WIDTH, HEIGHT))
    return image


@pytest.mark.parametrize("name", list(AWKWARD.values()), ids=list(AWKWARD))
def test_awkward_names_stay_inside_their_area(name: str) -> None:
    data = replace(BASE, name=name)
    plan = layout(data)
    inside(plan)
    png_of(data)


def test_zero_points_level_0_and_no_achievements() -> None:
    data = replace(
        BASE, points="0", rank="—", level="0", progress=0.0, progress_text="0 / 100",
        streak="0 days", achievements=(),
    )  # fmt: skip
    plan = layout(data)
    inside(plan)
    assert plan.bar_filled.width == 0
    assert plan.text("achievements").line.text == "No achievements yet"
    png_of(data)


def test_huge_numbers_shrink_and_are_never_cut() -> None:
    data = replace(
        BASE, points=HUGE, rank="#" + HUGE, level="10,000", progress=1.0,
        progress_text=f"{HUGE} / {HUGE}", streak="1,000,000 days",
    )  # fmt: skip
    plan = layout(data)
    inside(plan)
    for area in ("points", "rank", "progress"):
        assert "…" not in plan.text(area).line.text
    assert plan.text("points").line.size < plan.text("streak").line.size
    assert plan.bar_filled == plan.bar
    png_of(data)


def test_a_long_name_is_shortened_with_an_ellipsis_at_the_smallest_size() -> None:
    plan = layout(replace(BASE, name="W" * 64))
    name = plan.text("name").line
    assert name.text.endswith("…")
    assert len(name.text) < 64
    assert name.size == min(s for s in (34, 30, 26, 22))


def test_a_short_name_keeps_the_largest_size() -> None:
    assert layout(BASE).text("name").line.size == 34
    assert layout(BASE).text("name").line.text == "Alice"


def test_many_long_achievements_and_long_labels_fit() -> None:
    labels = CardLabels(
        points="Очки" * 12, rank="Место" * 10, streak="Серия дней подряд" * 4,
        level="Уровень {level}" * 3, achievements="Последние достижения",
    )  # fmt: skip
    data = replace(BASE, labels=labels, achievements=("Очень длинное достижение " * 4,) * 3)
    inside(layout(data))
    png_of(data)


def test_right_to_left_lines_run_right_to_left() -> None:
    assert is_rtl("שלום Bob")
    assert is_rtl("🎉 مرحبا")
    assert not is_rtl("Bob שלום")
    line = set_line("שלום 🎉 עולם", 30)
    # The first word (logical order) is drawn rightmost, the emoji between the words.
    assert [run.text for run in line.runs] == [" עולם", "🎉", "שלום "]
    assert line.rtl


def test_without_raqm_python_bidi_orders_the_letters(monkeypatch: pytest.MonkeyPatch) -> None:
    typesetting.font.cache_clear()
    monkeypatch.setattr(typesetting, "RAQM", False)
    try:
        line = set_line("שלום", 30)
        assert line.runs[0].text == "םולש"  # display order, for Pillow's basic layout
        inside(layout(replace(BASE, name=AWKWARD["mixed scripts"])))
    finally:
        typesetting.font.cache_clear()


def test_tidy_removes_controls_fillers_and_joiners() -> None:
    assert tidy("\u202eevil\u202c  name\u200b\u3164x") == "evil namex"
    assert tidy("👩\u200d💻") == "👩💻"
    assert tidy("👍🏽") == "👍"
    assert tidy("a\u0301\u0302\u0303\u0304") == "á\u0302\u0303"  # NFC, then at most 2 marks


def test_emoji_are_cut_from_the_sheet() -> None:
    line = set_line(tidy("🎉🇺🇦1️⃣"), 30)
    assert [(run.text, run.emoji) for run in line.runs] == [
        ("🎉", True),
        ("🇺🇦", True),
        ("1\u20e3", True),
    ]


def test_initials() -> None:
    assert initials("alice liddell") == "AL"
    assert initials("Борис") == "Б"
    assert initials("🎉 party") == "🎉"
    assert initials("🇺🇦 Olena") == "🇺🇦"
    assert initials("") == "?"


def test_a_line_that_cannot_fit_falls_back_to_an_ellipsis() -> None:
    line = fit_line("x" * 500, Box(0, 0, 40, 40), (20, 10))
    assert line.text.endswith("…")
    assert line.width <= 40


def test_photo_or_initials() -> None:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(out, "JPEG")
    assert render_card(BASE, out.getvalue()).avatar_drawn
    assert not render_card(BASE, b"not an image").avatar_drawn
    assert not render_card(BASE).avatar_drawn
