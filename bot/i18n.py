"""The host's own texts (its last-resort error reply) in the reader's language, and the
languages `[bot] language` may name: those the host has a catalog for (bot/locales)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiogram.utils.i18n import I18n

LOCALES = Path(__file__).resolve().parent / "locales"
DOMAIN = "bot"


def N_(message: str) -> str:
    """Marks a text for the catalogs (tools/i18n.py); translated when sent."""
    return message


def languages() -> tuple[str, ...]:
    """The languages with a catalog, read from the folder (nothing is loaded)."""
    return tuple(sorted(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")))


@cache
def catalogs() -> I18n:
    """The host's compiled catalogs, loaded on first use."""
    return I18n(path=LOCALES, default_locale="en", domain=DOMAIN)


def translate(message: str, language_code: str | None, default: str) -> str:
    """`message` in the person's Telegram language when there is a catalog, else `default`."""
    i18n = catalogs()
    base = (language_code or "").replace("_", "-").split("-", 1)[0].lower()
    language = base if base in i18n.locales else default
    return i18n.gettext(message, locale=language)
