"""Building blocks of the plugin's settings: strict sections, ranges named in one phrase, ids.

The plugin validates its own settings, so it can be configured by any program (not only the
bundled host). A host that reports errors can read `KeyedError.key` to name the exact key.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidatorFunctionWrapHandler, WrapValidator

# What the ledger's SQLite INTEGER columns hold: every chat and user id must fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class KeyedError(ValueError):
    """A check across keys that blames one of them: `key` is its dotted path in the section."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _number(value: float | Decimal) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def within(
    low: float, high: float, *, above: bool = False, unit: str = "", why: str = ""
) -> WrapValidator:
    """Refuse a number outside [low, high] (or (low, high] when `above`) in one phrase.

    The phrase gives the whole range, so the operator need not guess the other bound; NaN
    fails every comparison and is refused like any other number out of range. `why` is
    added in parentheses (say there what a refused value like 0 would have meant).
    """
    unit = f" {unit}" if unit else ""
    if above:
        allowed = f"above {_number(low)} and at most {_number(high)}{unit}"
    else:
        allowed = f"from {_number(low)} to {_number(high)}{unit}"
    phrase = f"must be {allowed}" + (f" ({why})" if why else "")

    def fits(value: float | Decimal) -> bool:
        return (low < value if above else low <= value) and value <= high

    def check(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        # A number is judged before conversion too: 1e30 for a whole number would
        # otherwise be refused as "exceeded maximum size", which names no range.
        number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        if number and not fits(value):  # type: ignore[arg-type]
            raise ValueError(phrase)
        result = handler(value)
        if not fits(result):
            raise ValueError(phrase)
        return result

    return WrapValidator(check)


# A Telegram chat or user id, as the ledger stores it.
ChatId = Annotated[int, within(INT64_MIN, INT64_MAX, why="a signed 64-bit id")]


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like 'Europe/Berlin')"
        ) from None
    return value


def check_crontab(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"not a crontab expression ({exc})") from None
    return value
