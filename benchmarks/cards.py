"""Rank card rendering: how long one card takes to draw and encode, on one thread."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

from PIL import Image

from plugins.gamification.cards import CardData, render_card

NAMES = (
    "Alice Liddell", "Борис Пастернак", "שלום עליכם", "مرحبا بالعالم", "🎉🔥💯",
    "Maximilian Alexander Wolfgang von Hohenzollern-Sigmaringen III ok", "Zoë 🇺🇦 Ивановна",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CardRenders:
    # Milliseconds per card, in the order drawn: wall clock, and this thread's CPU time
    # (the same unless other processes share the cores).
    times: list[float]
    cpu: list[float]
    png_bytes: int


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 160), (90, 140, 200)).save(out, "JPEG")
    return out.getvalue()


def card_renders(count: int) -> CardRenders:
    """`count` different cards (names of several scripts, every other one with a photo)
    after a warm-up that loads the fonts and the emoji sheet."""
    photo = _photo()

    def card(i: int) -> CardData:
        return CardData(
            user_id=i, name=NAMES[i % len(NAMES)], points=f"{i * 37:,}", rank=f"#{i % 50 + 1}",
            level=str(i % 30), progress=(i % 100) / 100, progress_text=f"{i % 100} / 100",
            streak=f"{i % 9} days", achievements=("First steps", "Chatterbox", "Thanked"),
        )  # fmt: skip

    for i in range(len(NAMES) * 2):
        render_card(card(i), photo if i % 2 else None)
    times: list[float] = []
    cpu: list[float] = []
    size = 0
    for i in range(count):
        start, start_cpu = time.perf_counter(), time.thread_time()
        drawn = render_card(card(i), photo if i % 2 else None)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
        size = max(size, len(drawn.png))
    return CardRenders(times, cpu, size)
