"""The `[gamification]` config section: ledger limits, scoring rules, anti-abuse, thanks, admin."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from bot.config import Section, check_timezone

MESSAGE_KINDS = (
    "text", "photo", "video", "animation", "sticker", "voice", "video_note", "audio",
    "document", "poll", "location", "contact", "dice", "other",
)  # fmt: skip

Points = Annotated[int, Field(ge=0, le=1_000_000)]


class LedgerSection(Section):
    max_amount: int = Field(default=1_000_000, ge=1, le=1_000_000_000)
    allow_negative: bool = False
    timezone: str = "UTC"
    max_batch: int = Field(default=1024, ge=1, le=100_000)

    _tz = field_validator("timezone")(check_timezone)


def _default_points() -> dict[str, int | tuple[int, int]]:
    # MEE6-like: a text message earns 15-25, media a fixed amount; unlisted kinds earn nothing.
    return {
        "text": (15, 25),
        "photo": 10,
        "video": 10,
        "animation": 5,
        "sticker": 2,
        "voice": 10,
        "video_note": 10,
        "audio": 5,
        "document": 5,
        "poll": 10,
    }


class ActivitySection(Section):
    enabled: bool = True
    # A number, or [low, high]: a range drawn deterministically from the message's key.
    points: dict[str, Points | tuple[Points, Points]] = Field(default_factory=_default_points)
    score_forwarded: bool = False
    ignored_chats: tuple[int, ...] = ()

    @field_validator("points")
    @classmethod
    def _kinds(cls, value: dict[str, int | tuple[int, int]]) -> dict[str, int | tuple[int, int]]:
        for kind, spec in value.items():
            if kind not in MESSAGE_KINDS:
                known = ", ".join(MESSAGE_KINDS)
                raise ValueError(f"unknown message kind {kind!r}; known: {known}")
            if isinstance(spec, tuple) and spec[0] > spec[1]:
                raise ValueError(f"the range for {kind!r} must be [low, high] with low <= high")
        return value


class AntiAbuseSection(Section):
    cooldown_seconds: float = Field(default=60, ge=0, le=86_400)
    min_length: int = Field(default=3, ge=0, le=4096)
    repeat_window_seconds: float = Field(default=900, ge=0, le=7 * 86_400)
    repeat_similarity: float = Field(default=0.85, gt=0, le=1)
    repeat_memory: int = Field(default=5, ge=1, le=50)
    daily_cap: int = Field(default=1_000, ge=0)
    burst_messages: int = Field(default=8, ge=2, le=1000)
    burst_seconds: float = Field(default=10, gt=0, le=3600)
    auto_freeze: bool = False
    tracked_users: int = Field(default=50_000, ge=100, le=10_000_000)


class ThanksSection(Section):
    enabled: bool = True
    points: int = Field(default=5, ge=1, le=1_000_000)
    triggers: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "en": ("+", "+1", "thanks", "thank you", "thx", "ty"),
            "ru": ("спасибо", "спс", "благодарю"),
            "de": ("danke",),
            "es": ("gracias",),
        }
    )
    pair_cooldown_seconds: float = Field(default=3600, ge=0)
    daily_limit: int = Field(default=10, ge=0)
    max_age_hours: float = Field(default=48, gt=0)


class AdminSection(Section):
    max_grant: int = Field(default=10_000, ge=1)
    admin_cache_seconds: float = Field(default=60, ge=0, le=3600)


class GamificationConfig(Section):
    ledger: LedgerSection = LedgerSection()
    activity: ActivitySection = ActivitySection()
    anti_abuse: AntiAbuseSection = AntiAbuseSection()
    thanks: ThanksSection = ThanksSection()
    admin: AdminSection = AdminSection()

    @model_validator(mode="after")
    def _grant_within_ledger(self) -> GamificationConfig:
        if self.admin.max_grant > self.ledger.max_amount:
            raise ValueError("admin.max_grant cannot exceed ledger.max_amount")
        return self
