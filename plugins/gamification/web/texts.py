"""Every word the chat pages show, in one place: English here, the other languages in the
plugin's gettext catalogs (plugins/gamification/locales, domain "gamification", kept by
tools/i18n.py like the chat's texts).

Placeholders are filled with `str.format`; values are escaped by the page code, never here.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from pathlib import Path

LOCALES = Path(__file__).resolve().parents[1] / "locales"
DOMAIN = "gamification"
DEFAULT_LANGUAGE = "en"


def N_(text: str) -> str:
    """Marks a text for the catalogs where it is written; translated when a page is made."""
    return text


EN: Mapping[str, str] = {
    "title_board": N_("Leaderboard"),
    "title_audit": N_("Admin actions"),
    "period_day": N_("Today"),
    "period_week": N_("This week"),
    "period_month": N_("This month"),
    "period_all": N_("All time"),
    "periods": N_("Period"),
    "rank": N_("Rank"),
    "member": N_("Member"),
    "points": N_("Points"),
    "nobody": N_("No points in this period yet."),
    "balance": N_("Balance"),
    "earned": N_("Earned in all"),
    "level": N_("Level"),
    "level_progress": N_("{left} points to level {next}"),
    "streak": N_("Streak"),
    "days": N_("{n} days (best {best})"),
    "no_rank": N_("no rank yet"),
    "achievements": N_("Achievements"),
    "no_achievements": N_("None unlocked yet."),
    "chart": N_("Points per day, last {days} days"),
    "chart_empty": N_("No points in the last {days} days"),
    "audit_when": N_("When"),
    "audit_who": N_("Admin"),
    "audit_what": N_("Action"),
    "audit_whom": N_("Member"),
    "audit_detail": N_("Detail"),
    "audit_none": N_("No admin actions yet."),
    "audit_link": N_("Admin actions"),
    "back": N_("Back to the leaderboard"),
    "skip": N_("Skip to the content"),
    "error_401": N_("Sign-in needed"),
    "error_401_text": N_(
        "This chat's pages open from the bot's button in the chat (they are not public),"
        " and the sign-in from Telegram was missing, forged or has expired. Open them again"
        " from the chat."
    ),
    "error_403": N_("Not for you"),
    "error_403_text": N_("Only members of this chat can see its pages."),
    "error_403_admin_text": N_("Only this chat's admins can see its admin actions."),
    "error_404": N_("Not found"),
    "error_404_text": N_("There is no such page: the chat or the member has no points here."),
    "error_503": N_("Try again shortly"),
    "error_503_text": N_("The points ledger or Telegram did not answer in time."),
    "app_title": N_("Points"),
    "app_opening": N_("Opening the leaderboard…"),
    "app_outside": N_("Open this page from the bot's button in a Telegram chat."),
}


@functools.cache
def languages() -> frozenset[str]:
    """The languages with a compiled catalog."""
    return frozenset(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))


@functools.cache
def _catalog(language: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, LOCALES, languages=[language], fallback=True)


def language_of(code: str | None) -> str | None:
    """An IETF tag such as "ru" or "es-MX" as a language with a catalog, or None."""
    base = (code or "").replace("_", "-").split("-")[0].lower()
    return base if base in languages() else None


def text(language: str, key: str, **values: object) -> str:
    template = _catalog(language).gettext(EN[key])
    return template.format(**values) if values else template
