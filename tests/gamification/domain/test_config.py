"""The `[gamification]` section: every number bounded, no accidental off switch, one sentence."""

from __future__ import annotations

import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bot.config import AppConfig, ConfigError, load_config
from bot.registry import default_registry
from plugins.gamification.domain.config import GamificationConfig
from tests.gamification.conftest import MakeHarness
from tests.support.chat import ALICE, CHAT, FIXED, bob_says, thanks_rows

MODELS = default_registry().config_models()
ACTIVITY_OFF = "to turn activity scoring off, set gamification.activity.enabled = false"
THANKS_OFF = "to turn thanks off, set gamification.thanks.enabled = false"


def refusal(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, plugin_models=MODELS, environ={})
    message = str(caught.value)
    prefix = f"{path}: "
    assert message.startswith(prefix), message
    return message.removeprefix(prefix)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The overflows: accepted before, then every thanks failed.
        (
            "[gamification.thanks]\npair_cooldown_seconds = 1e11",
            "gamification.thanks.pair_cooldown_seconds: must be from 0 to 31,536,000 seconds"
            " (365 days), got 100000000000.0.",
        ),
        (
            "[gamification.thanks]\nmax_age_hours = 1e300",
            "gamification.thanks.max_age_hours: must be above 0 and at most 8,760 hours"
            " (365 days), got 1e+300.",
        ),
        (
            "[gamification.thanks]\nmax_age_hours = inf",
            "gamification.thanks.max_age_hours: must be above 0 and at most 8,760 hours"
            " (365 days), got inf.",
        ),
        (
            "[gamification.anti_abuse]\nrepeat_similarity = nan",
            "gamification.anti_abuse.repeat_similarity: must be above 0 and at most 1, got nan.",
        ),
        (
            "[gamification.anti_abuse]\ncooldown_seconds = 1e10",
            "gamification.anti_abuse.cooldown_seconds: must be from 0 to 86,400 seconds"
            " (one day), got 10000000000.0.",
        ),
        (
            "[gamification.ledger]\nmax_amount = 99999999999999999999",
            "gamification.ledger.max_amount: must be from 1 to 1,000,000,000,"
            " got 99999999999999999999.",
        ),
        (
            "[gamification.ledger]\nmax_batch = 0",
            "gamification.ledger.max_batch: must be from 1 to 100,000, got 0.",
        ),
        (
            "[gamification.admin]\nmax_grant = 0",
            "gamification.admin.max_grant: must be from 1 to 1,000,000,000 points, got 0.",
        ),
        (
            "[gamification.activity]\nignored_chats = [-99999999999999999999]",
            "gamification.activity.ignored_chats.0: must be from -9,223,372,036,854,775,808"
            " to 9,223,372,036,854,775,807 (a signed 64-bit id), got -99999999999999999999.",
        ),
        (
            "[gamification.weekly]\nenabled = true\nchats = [9223372036854775808]",
            "gamification.weekly.chats.0: must be from -9,223,372,036,854,775,808"
            " to 9,223,372,036,854,775,807 (a signed 64-bit id), got 9223372036854775808.",
        ),
        (
            "[gamification.multipliers]\nchats = { '-99999999999999999999' = '1.5' }",
            "gamification.multipliers.chats: the key '-99999999999999999999' must be a chat id"
            " (a signed 64-bit number).",
        ),
        (
            "[gamification.multipliers]\nstreak = { '0' = '1.5' }",
            "gamification.multipliers.streak: the key '0' must be a number of days"
            " from 1 to 36,500.",
        ),
        (
            "[gamification.multipliers]\nstreak = { '3' = '1000' }",
            "gamification.multipliers.streak.3: must be above 0 and at most 100, got '1000'.",
        ),
        (
            "[gamification.progress]\nlevel_curve = [5, 50, 1e20]",
            "gamification.progress.level_curve.2: must be from 0 to 1,000,000,000, got 1e+20.",
        ),
        (
            "[gamification.progress]\nannounce_delay_seconds = -1",
            "gamification.progress.announce_delay_seconds: must be from 0 to 600 seconds, got -1.",
        ),
        (
            "[gamification.events]\nrules = { 'game.won' = { points = 5, multiplier = '0' } }",
            "gamification.events.rules.game.won.multiplier: must be above 0 and at most 100,"
            " got '0'.",
        ),
        (
            "[gamification.events]\nrules = { 'game.won' = 'many' }",
            "gamification.events.rules.game.won: must be whole points or { points = N,"
            ' multiplier = "F" }.',
        ),
    ],
)
def test_a_number_out_of_range_is_one_sentence_with_key_and_range(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert refusal(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[gamification.anti_abuse]\ndaily_cap = 0",
            "gamification.anti_abuse.daily_cap: must be from 1 to 1,000,000,000 points"
            f" (0 would score nothing; {ACTIVITY_OFF}), got 0.",
        ),
        (
            "[gamification.activity]\npoints = {}",
            f"gamification.activity.points: lists no message kind, so nothing scores;"
            f" {ACTIVITY_OFF}.",
        ),
        (
            "[gamification.activity]\npoints = { text = 0 }",
            "gamification.activity.points.text: must be from 1 to 1,000,000 points (to score a"
            " kind nothing, leave it out of activity.points), got 0.",
        ),
        (
            "[gamification.activity]\npoints = { text = [0, 0] }",
            "gamification.activity.points.text: must be from 1 to 1,000,000 points (to score a"
            " kind nothing, leave it out of activity.points), got [0, 0].",
        ),
        (
            "[gamification.thanks]\ndaily_limit = 0",
            "gamification.thanks.daily_limit: must be from 1 to 1,000,000,000 thanks"
            f" (0 would refuse every thanks; {THANKS_OFF}), got 0.",
        ),
        (
            "[gamification.thanks]\npoints = 0",
            "gamification.thanks.points: must be from 1 to 1,000,000, got 0.",
        ),
        (
            "[gamification.thanks]\ntriggers = { en = [] }",
            f"gamification.thanks.triggers: lists no word, so no reply is a thanks; {THANKS_OFF}.",
        ),
        (
            "[gamification.thanks]\ntriggers = { en = ['thanks', ' '] }",
            "gamification.thanks.triggers.en: a trigger is a word or phrase, never blank.",
        ),
        (
            "[gamification.events]\nsubscribe = []",
            "gamification.events.subscribe: lists no event pattern, so no event arrives;"
            " to turn events off, set gamification.events.enabled = false.",
        ),
        (
            "[gamification.events]\nrules = { 'game.won' = 0 }",
            "gamification.events.rules.game.won.points: must be from 1 to 1,000,000, got 0.",
        ),
        (
            "[gamification.weekly]\nenabled = true",
            "gamification.weekly.chats: lists no chat, so the weekly post goes nowhere;"
            " list chat ids, or set gamification.weekly.enabled = false.",
        ),
    ],
)
def test_a_value_that_would_switch_a_feature_off_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert refusal(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "key", "amount"),
    [
        ("[gamification.admin]\nmax_grant = 20", "admin.max_grant", "20"),
        ("[gamification.activity]\npoints = { photo = 11 }", "activity.points.photo", "11"),
        ("[gamification.activity]\npoints = { text = [5, 25] }", "activity.points.text", "25"),
        ("[gamification.thanks]\npoints = 12", "thanks.points", "12"),
        ("[gamification.events]\nrules = { 'game.won' = 50 }", "events.rules.game.won", "50"),
        (
            "[gamification.progress]\nachievements = [{ id = 'a', title = 'A', reward = 11,"
            " condition = { type = 'earned', at_least = 1 } }]",
            "progress.achievements.0.reward",
            "11",
        ),
    ],
)
def test_every_configured_amount_fits_one_transaction(
    tmp_path: Path, text: str, key: str, amount: str
) -> None:
    # Every other amount is small enough; only the one under test is over the maximum.
    base = (
        "[gamification.ledger]\nmax_amount = 10\n"
        "[gamification.admin]\nmax_grant = 10\n"
        "[gamification.activity]\npoints = { text = 10 }\n"
        "[gamification.events]\nrules = { 'game.won' = 10 }\n"
        "[gamification.progress]\nachievements = []\n"
    )
    for table in ("admin", "activity", "events", "progress"):
        if f"[gamification.{table}]" in text:
            start = base.index(f"[gamification.{table}]")
            base = base[:start] + base[base.index("\n", base.index("\n", start) + 1) + 1 :]
    assert refusal(tmp_path, base + text) == (
        f"gamification.{key}: {amount} points is more than one transaction may hold"
        " (ledger.max_amount = 10); lower it or raise gamification.ledger.max_amount."
    )


def test_the_largest_allowed_values_load() -> None:
    section = GamificationConfig.model_validate(
        {
            "ledger": {"max_amount": 1_000_000_000},
            "admin": {"max_grant": 1_000_000_000, "admin_cache_seconds": 3600},
            "anti_abuse": {"daily_cap": 1_000_000_000, "cooldown_seconds": 86_400},
            "thanks": {"pair_cooldown_seconds": 31_536_000, "max_age_hours": 8760},
            "activity": {"ignored_chats": [2**63 - 1, -(2**63)]},
            "multipliers": {"chats": {str(-(2**63)): "100"}, "streak": {"36500": "100"}},
            "progress": {"level_curve": [1_000_000_000] * 3},
        }
    )
    assert section.thanks.pair_cooldown_seconds == 31_536_000


# -- every numeric key is bounded -------------------------------------------------------


def _numeric(annotation: Any) -> bool:
    """True for int, float, Decimal, optionally inside Optional / Annotated / tuple[...]."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _numeric(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, tuple):
        return any(_numeric(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
    return annotation in (int, float, Decimal)


def _numeric_keys(model: type[BaseModel], prefix: str) -> list[tuple[str, Any]]:
    keys: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _numeric_keys(annotation, f"{prefix}{name}.")
        elif _numeric(annotation):
            keys.append((f"{prefix}{name}", field.annotation))
    return keys


HOST_KEYS = _numeric_keys(AppConfig, "")
PLUGIN_KEYS = _numeric_keys(GamificationConfig, "gamification.")


@pytest.mark.parametrize(
    ("key", "annotation"), HOST_KEYS + PLUGIN_KEYS, ids=[k for k, _ in HOST_KEYS + PLUGIN_KEYS]
)
@pytest.mark.parametrize("huge", [10**30, 1e300, -(10**30)])
def test_no_numeric_key_accepts_a_huge_number(
    tmp_path: Path, key: str, annotation: Any, huge: float
) -> None:
    *tables, leaf = key.split(".")
    is_tuple = "tuple" in str(annotation)
    value = repr(huge).replace("e+", "e")
    if is_tuple:
        value = f"[1, 1, {value}]"
    message = refusal(tmp_path, f"[{'.'.join(tables)}]\n{leaf} = {value}\n")
    assert message.startswith(f"{key}"), message
    assert ": must be " in message
    assert "\n" not in message


def test_the_walk_finds_the_known_numeric_keys() -> None:
    found = {key for key, _ in HOST_KEYS + PLUGIN_KEYS}
    for key in (
        "bot.admin_ids",
        "bot.admin_chat_id",
        "storage.busy_timeout_seconds",
        "scheduler.misfire_grace_seconds",
        "gamification.thanks.pair_cooldown_seconds",
        "gamification.thanks.max_age_hours",
        "gamification.anti_abuse.daily_cap",
        "gamification.progress.level_curve",
        "gamification.weekly.chats",
    ):
        assert key in found


# -- the bounds are safe for the code that uses them -----------------------------------


async def test_thanks_works_at_the_largest_allowed_cooldown_and_age(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(
        gamification={
            **FIXED,
            "thanks": {"pair_cooldown_seconds": 31_536_000, "max_age_hours": 8760},
        }
    )
    target = await bob_says(h)
    await h.say(CHAT, ALICE, "thanks", reply_to=target)
    await h.say(CHAT, ALICE, "thanks", reply_to=target)
    assert len(thanks_rows(h)) == 1
    assert h.services.stats.refusals["thanks_cooldown"] == 1
