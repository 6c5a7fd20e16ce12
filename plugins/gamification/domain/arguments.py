"""Checks of the arguments of the public engine API: anything malformed is a RequestError.

They run on the caller's side, before anything is queued for the writer, so a bad argument
is never reported as a storage failure and never reaches SQLite (which raises
OverflowError for integers past 64 bits) or the hash chain (UnicodeEncodeError for lone
surrogates).
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plugins.gamification.domain.errors import RequestError
from plugins.gamification.domain.models import Multiplier, Period, TxKind

# SQLite's INTEGER: every id stored in the ledger must fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_MULTIPLIERS = 32
MAX_MULTIPLIER_NAME = 100
# What award and deduct may record; a revert is only ever made by revert(), which links it
# to its original (the integrity check reports a 'revert' row without one).
POSTING_KINDS = tuple(kind for kind in TxKind if kind is not TxKind.REVERT)


def _type_name(value: object) -> str:
    return type(value).__name__


def whole_id(name: str, value: object) -> int:
    """A chat, user or actor id: a whole number that fits SQLite's 64-bit INTEGER."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"The {name} must be a whole number, not {_type_name(value)}.")
    if not INT64_MIN <= value <= INT64_MAX:
        raise RequestError(f"The {name} must be a whole number from -2^63 to 2^63 - 1.")
    return value


def optional_id(name: str, value: object) -> int | None:
    return None if value is None else whole_id(name, value)


def transaction_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT64_MAX:
        raise RequestError("A transaction id is a positive whole number below 2^63.")
    return value


def text(what: str, value: object, *, most: int, least: int = 0) -> str:
    """A string of `least` to `most` characters that can be stored as UTF-8."""
    if not isinstance(value, str):
        raise RequestError(f"{what} must be text, not {_type_name(value)}.")
    if not least <= len(value) <= most:
        span = f"at most {most}" if least == 0 else f"{least} to {most}"
        raise RequestError(f"{what} is {span} characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Only a lone surrogate (from broken UTF-16 or surrogateescape) cannot be encoded.
        raise RequestError(f"{what} holds a lone surrogate, which is not valid text.") from None
    return value


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be True or False, not {_type_name(value)}.")
    return value


def posting_kind(value: object) -> TxKind:
    """A TxKind, or its text value; never 'revert' (see POSTING_KINDS)."""
    if isinstance(value, str):
        for kind in POSTING_KINDS:
            if value == kind.value:
                return kind
    names = ", ".join(kind.value for kind in POSTING_KINDS)
    raise RequestError(f"The kind must be one of {names}, not {reprlib.repr(value)}.")


def period(value: object) -> Period:
    if isinstance(value, str):
        for known in Period:
            if value == known.value:
                return known
    names = ", ".join(known.value for known in Period)
    raise RequestError(f"The period must be one of {names}, not {reprlib.repr(value)}.")


def limit(value: object, most: int) -> int:
    """A whole number, clamped to 1..most: asking for too many is not an error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"The limit must be a whole number, not {_type_name(value)}.")
    return max(1, min(value, most))


def moment(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise RequestError("The moment must be a datetime with a timezone.")
    return value


def multipliers(value: object) -> tuple[Multiplier, ...]:
    """Multiplier records with text names; their factors are checked by the rules."""
    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
        raise RequestError(
            f"The multipliers must be a list of Multiplier records, not {_type_name(value)}."
        )
    items = tuple(value)
    if len(items) > MAX_MULTIPLIERS:
        raise RequestError(f"An award takes at most {MAX_MULTIPLIERS} multipliers.")
    for item in items:
        if not isinstance(item, Multiplier):
            raise RequestError(
                f"Each multiplier must be a Multiplier record, not {_type_name(item)}."
            )
        text("A multiplier's name", item.name, least=1, most=MAX_MULTIPLIER_NAME)
    return items


def database_path(value: object) -> Path:
    """A file path SQLite can be given: text or os.PathLike, UTF-8, without NUL."""
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise RequestError(f"The database path must be a str or Path, not {_type_name(value)}.")
    path = Path(value)
    name = str(path)
    if "\x00" in name or name in ("", "."):
        raise RequestError("The database path must name a file, without NUL characters.")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(
            "The database path holds a lone surrogate, which is not valid text."
        ) from None
    return path


def number(name: str, value: object, *, above: float, most: float) -> float:
    """A real number in (above, most]; NaN fails the comparison like any value out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{name} must be a number, not {_type_name(value)}.")
    if not above < value <= most:
        raise RequestError(f"{name} must be above {above:g} and at most {most:g}.")
    return float(value)


def whole(name: str, value: object, *, least: int, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be a whole number, not {_type_name(value)}.")
    if not least <= value <= most:
        raise RequestError(f"{name} must be from {least:,} to {most:,}.")
    return value


def choice(name: str, value: object, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise RequestError(
            f"{name} must be one of {', '.join(options)}, not {reprlib.repr(value)}."
        )
    return value


def timezone(value: object) -> str:
    if not isinstance(value, str):
        raise RequestError(f"The timezone must be text, not {_type_name(value)}.")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RequestError(
            f"The timezone {reprlib.repr(value)} is unknown; use an IANA name like 'Asia/Tokyo'."
        ) from None
    return value
