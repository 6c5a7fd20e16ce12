"""Telegram's text limit and the lines every reply, job and announcement phrase alike.

Plain strings only (no aiogram), so the jobs and the handlers share one definition.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from plugins.gamification.domain.models import Standing

# Telegram refuses a longer message.
MAX_MESSAGE = 4096
# Room kept for the marker that says a text was cut.
_MARKER_ROOM = 20


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def cut(text: str, limit: int = MAX_MESSAGE, *, marker: str = "… (cut)") -> str:
    """Cut at a line boundary so no HTML tag is split, and end with `marker` (which closes
    any tag still open, e.g. "…</pre>")."""
    if len(text) <= limit:
        return text
    kept = text[: limit - _MARKER_ROOM].rsplit("\n", 1)[0]
    return f"{kept}\n{marker}"


def standing_line(standing: Standing, name: str, number: Callable[[int], str] = str) -> str:
    """One leaderboard line: rank, the escaped name (never a mention), points (written by
    `number`, e.g. for the reader's language)."""
    return f"{standing.rank}. {esc(name)}: {number(standing.points)}"
