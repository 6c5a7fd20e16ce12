"""The plugin's texts in the reader's language: gettext catalogs through aiogram's I18n,
numbers and dates by Babel.

A text is chosen when it is sent, never before: `_()` and `ngettext()` read the locale a
caller set with `speaking()` (or the middleware, for commands). The language of a chat is,
in order: what its admins chose with /language, the sender's Telegram language, the bot's
`[bot] language`. Catalogs live in plugins/gamification/locales/<lang>/LC_MESSAGES/; the
domain's sentences are marked with `N_` where they are written (domain/errors.py) and
translated here when they reach a person.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiogram.types import Message, TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_decimal

from plugins.gamification.domain.errors import GamificationError, RequestError
from plugins.gamification.services.languages import ChatLanguages

LOCALES = Path(__file__).resolve().parents[1] / "locales"
DOMAIN = "gamification"
# The language of the texts as written in the code.
FALLBACK = "en"


class UnknownLanguageError(ValueError):
    """A language the plugin has no catalog for; the message is the sentence to show."""


def open_catalogs(default: str) -> I18n:
    """The compiled catalogs, with `default` for everyone whose language is not known."""
    i18n = I18n(path=LOCALES, default_locale=default, domain=DOMAIN)
    if default not in i18n.available_locales:
        raise UnknownLanguageError(
            f"The language {default!r} has no catalog; the languages are"
            f" {', '.join(sorted(i18n.available_locales))}."
        )
    return i18n


def language_of(code: str | None, available: Collection[str]) -> str | None:
    """A Telegram `language_code` ("ru", "ru-RU", "pt-br") as one of `available`, or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-", 1)[0].lower()
    return base if base in available else None


def native_name(language: str) -> str:
    """The language's name in itself: "English", "Русский", "Español"."""
    name = Locale.parse(language).get_display_name(language) or language
    return name[:1].upper() + name[1:]


# -- texts in the current locale --------------------------------------------------------


def _(message: str) -> str:
    """The message in the current locale (as written, outside any: a test, a tool)."""
    i18n = I18n.get_current(no_error=True)
    return message if i18n is None else i18n.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of the message for `n` in the current locale (1 балл, 2 балла, 5 баллов)."""
    i18n = I18n.get_current(no_error=True)
    if i18n is None:
        return singular if n == 1 else plural
    return i18n.gettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for the catalogs where it is written; `_` translates it when sent."""
    return message


def locale() -> str:
    i18n = I18n.get_current(no_error=True)
    return FALLBACK if i18n is None else i18n.current_locale


def num(value: int) -> str:
    """A whole number as the locale writes it: 1,234 (en), 1 234 (ru), 1.234 (es)."""
    return format_decimal(value, locale=locale())


def decimal(value: float) -> str:
    """A measure with two decimals: 1,234.50 (en), 1 234,50 (ru), 1234,50 (es)."""
    return format_decimal(value, "#,##0.00", locale=locale())


def moment(value: datetime) -> str:
    """A date and time: Nov 25, 2026 12:03 PM (en), 25 нояб. 2026 г. 12:03 (ru)."""
    where = locale()
    return (
        f"{format_date(value, 'medium', locale=where)} {format_time(value, 'short', locale=where)}"
    )


def localised(template: str, params: Mapping[str, object]) -> str:
    """A marked domain sentence in the current locale, its whole numbers written for it."""
    return _(template).format(
        **{k: _Number(v) if type(v) is int else v for k, v in params.items()}
    )


class _Number(int):
    """An int that formats `{n:,}` the locale's way (and `{n}` as the plain number)."""

    def __format__(self, spec: str) -> str:
        if spec == ",":
            return num(int(self))
        return int.__format__(int(self), spec)


def refusal(exc: GamificationError) -> str:
    """The sentence for a domain error, in the current locale."""
    if isinstance(exc, RequestError):
        return localised(exc.template, exc.params) if exc.params else _(exc.template)
    # The ledger's own faults (locked, full, closed, overloaded): what to do is the same.
    return _("The points ledger cannot do this right now; try again in a minute.")


@contextmanager
def speaking(i18n: I18n, language: str) -> Iterator[None]:
    """Texts made inside are in `language` (outside a handler: jobs, announcements)."""
    with i18n.context(), i18n.use_locale(language):
        yield


# -- choosing the language ----------------------------------------------------------------


async def chat_locale(
    i18n: I18n, languages: ChatLanguages, chat_id: int | None, user: User | None
) -> str:
    """The chat's chosen language, else the person's Telegram one, else the bot's."""
    available = i18n.locales
    if chat_id is not None:
        chosen = await languages.of(chat_id)
        if chosen is not None and chosen in available:
            return chosen
    own = language_of(user.language_code if user is not None else None, available)
    return own or i18n.default_locale


async def chat_language(languages: ChatLanguages, chat_id: int) -> str:
    """Inside a handler: the language to post to another chat in (its admins' choice, else
    the bot's)."""
    i18n = I18n.get_current(no_error=True)
    if i18n is None:
        return FALLBACK
    return await chat_locale(i18n, languages, chat_id, None)


@contextmanager
def in_chat_language(language: str) -> Iterator[None]:
    """Inside a handler: texts made inside are in `language`."""
    i18n = I18n.get_current(no_error=True)
    if i18n is None:
        yield
        return
    with i18n.use_locale(language):
        yield


@dataclass(frozen=True, slots=True)
class Speaker:
    """What posts outside a handler (jobs, announcements) phrase their texts with."""

    i18n: I18n
    languages: ChatLanguages

    async def language_of_chat(self, chat_id: int) -> str:
        return await chat_locale(self.i18n, self.languages, chat_id, None)

    def speaking(self, language: str) -> AbstractContextManager[None]:
        return speaking(self.i18n, language)


class ChatLocaleMiddleware(I18nMiddleware):
    """Sets the locale for a command's handler. Registered as an inner middleware on the
    command routers only, so an ordinary message (which no command handler takes) never
    pays for choosing a language."""

    def __init__(self, i18n: I18n, languages: ChatLanguages) -> None:
        super().__init__(i18n, i18n_key="i18n", middleware_key="i18n_middleware")
        self.languages = languages

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        if isinstance(event, Message):
            return await chat_locale(self.i18n, self.languages, event.chat.id, event.from_user)
        return self.i18n.default_locale
