"""Every word the chat pages and their buttons show, in one place, per language.

Placeholders are filled with `str.format`; values are escaped by the page code, never here.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LANGUAGE = "en"

EN: Mapping[str, str] = {
    "button": "🏆 Open the leaderboard",
    "title_board": "Leaderboard",
    "title_profile": "{name}",
    "title_audit": "Admin actions",
    "period_day": "Today",
    "period_week": "This week",
    "period_month": "This month",
    "period_all": "All time",
    "periods": "Period",
    "rank": "Rank",
    "member": "Member",
    "points": "Points",
    "nobody": "No points in this period yet.",
    "balance": "Balance",
    "earned": "Earned in all",
    "level": "Level",
    "level_progress": "{left} points to level {next}",
    "streak": "Streak",
    "days": "{n} days (best {best})",
    "no_rank": "no rank yet",
    "achievements": "Achievements",
    "no_achievements": "None unlocked yet.",
    "chart": "Points per day, last {days} days",
    "chart_empty": "No points in the last {days} days",
    "audit_when": "When",
    "audit_who": "Admin",
    "audit_what": "Action",
    "audit_whom": "Member",
    "audit_detail": "Detail",
    "audit_none": "No admin actions yet.",
    "audit_link": "Admin actions",
    "back": "Back to the leaderboard",
    "skip": "Skip to the content",
    "error_401": "Sign-in needed",
    "error_401_text": (
        "This chat's pages open from the bot's button in the chat (they are not public),"
        " and the sign-in from Telegram was missing, forged or has expired. Open them again"
        " from the chat."
    ),
    "error_403": "Not for you",
    "error_403_text": "Only members of this chat can see its pages.",
    "error_403_admin_text": "Only this chat's admins can see its admin actions.",
    "error_404": "Not found",
    "error_404_text": "There is no such page: the chat or the member has no points here.",
    "error_503": "Try again shortly",
    "error_503_text": "The points ledger or Telegram did not answer in time.",
    "app_title": "Points",
    "app_opening": "Opening the leaderboard…",
    "app_outside": "Open this page from the bot's button in a Telegram chat.",
}

TEXTS: Mapping[str, Mapping[str, str]] = {"en": EN}


def language_of(code: str | None) -> str:
    """The page language for an IETF tag such as "ru" or "es-MX"; English otherwise."""
    base = (code or "").split("-")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


def text(language: str, key: str, **values: object) -> str:
    table = TEXTS.get(language, EN)
    template = table.get(key) or EN[key]
    return template.format(**values) if values else template
