"""The `[gamification]` config section: ledger limits, scoring rules, anti-abuse, thanks, admin."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bot.config import Section, check_crontab, check_timezone

MESSAGE_KINDS = (
    "text", "photo", "video", "animation", "sticker", "voice", "video_note", "audio",
    "document", "poll", "location", "contact", "dice", "other",
)  # fmt: skip

Points = Annotated[int, Field(ge=0, le=1_000_000)]
Factor = Annotated[Decimal, Field(gt=0, le=100, max_digits=12)]


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
    cooldown_burst: int = Field(default=3, ge=1, le=100)
    min_length: int = Field(default=3, ge=0, le=4096)
    answer_seconds: float = Field(default=120, ge=0, le=86_400)
    short_answer_factor: float = Field(default=0.5, gt=0, le=1)
    repeat_window_seconds: float = Field(default=64_800, ge=0, le=7 * 86_400)
    repeat_similarity: float = Field(default=0.5, gt=0, le=1)
    repeat_memory: int = Field(default=30, ge=1, le=50)
    copy_similarity: float = Field(default=0.7, gt=0, le=1)
    copy_min_length: int = Field(default=40, ge=1, le=4096)
    copy_window_seconds: float = Field(default=3600, ge=0, le=7 * 86_400)
    repeat_min_length: int = Field(default=6, ge=0, le=4096)
    copy_memory: int = Field(default=200, ge=1, le=10_000)
    presence_seconds: float = Field(default=1800, ge=0, le=86_400)
    monologue_factor: float = Field(default=0.25, gt=0, le=1)
    engaged_share: float = Field(default=0.25, ge=0, le=1)
    engagement_prior: int = Field(default=2, ge=1, le=10_000)
    engaged_per_responder: int = Field(default=2, ge=1, le=1000)
    engagement_days: int = Field(default=7, ge=1, le=90)
    min_engagement_factor: float = Field(default=0.1, ge=0, le=1)
    daily_cap: int = Field(default=1_000, ge=0)
    relative_cap: float = Field(default=2.5, ge=0, le=1000)
    relative_cap_floor: int = Field(default=200, ge=0)
    relative_cap_days: int = Field(default=7, ge=1, le=90)
    burst_messages: int = Field(default=8, ge=2, le=1000)
    burst_seconds: float = Field(default=10, gt=0, le=3600)
    auto_freeze: bool = False
    tracked_users: int = Field(default=20_000, ge=100, le=10_000_000)
    tracked_chats: int = Field(default=1_000, ge=10, le=1_000_000)


class EngagementSection(Section):
    """Replies and reactions from other members with history of their own."""

    enabled: bool = True
    window_seconds: float = Field(default=6 * 3600, gt=0, le=7 * 86_400)
    bonus: Factor = Decimal("0.5")
    min_history_messages: int = Field(default=2, ge=0, le=100_000)
    history_days: int = Field(default=7, ge=1, le=90)
    pair_daily_limit: int = Field(default=2, ge=0, le=10_000)
    daily_limit: int = Field(default=20, ge=0, le=100_000)
    tracked_messages: int = Field(default=50_000, ge=100, le=10_000_000)


class ReactionsSection(Section):
    """Points a member's reaction gives the author of the message."""

    enabled: bool = True
    points: int = Field(default=1, ge=1, le=1_000_000)
    pair_daily_limit: int = Field(default=1, ge=0, le=10_000)
    daily_limit: int = Field(default=10, ge=0, le=100_000)
    settle_seconds: float = Field(default=60, ge=0, le=86_400)


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
    min_giver_messages: int = Field(default=2, ge=0, le=100_000)
    giver_days: int = Field(default=7, ge=1, le=90)
    thanks_per_message: float = Field(default=0.5, ge=0, le=1000)
    pair_decay: Factor = Decimal("0.5")
    pair_decay_days: int = Field(default=7, ge=0, le=90)


class AdminSection(Section):
    max_grant: int = Field(default=10_000, ge=1)
    admin_cache_seconds: float = Field(default=60, ge=0, le=3600)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"
_EVENT_TYPE = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$"


class TimeWindow(Section):
    """A multiplier active on some weekdays between two local clock times."""

    name: str = Field(min_length=1, max_length=32)
    factor: Factor
    days: tuple[Weekday, ...] = WEEKDAYS
    start: str = Field(default="00:00", pattern=_CLOCK_TIME)
    end: str = Field(default="24:00", pattern=_CLOCK_TIME)

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.start >= self.end:
            raise ValueError(f"window {self.name!r}: start must be before end")
        return self


class MultipliersSection(Section):
    windows: tuple[TimeWindow, ...] = ()
    # Chat id (as a string key, TOML tables need one) -> factor for everything earned there.
    chats: dict[str, Factor] = Field(default_factory=dict)
    # Streak length in days (string key) -> factor for activity while the streak lasts.
    streak: dict[str, Factor] = Field(
        default_factory=lambda: {"3": Decimal("1.05"), "7": Decimal("1.1"), "30": Decimal("1.25")}
    )

    @field_validator("chats", "streak")
    @classmethod
    def _integer_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for key in value:
            if not key.lstrip("-").isdecimal():
                raise ValueError(f"the key {key!r} must be a whole number")
        return value


class Condition(Section):
    """What unlocks an achievement: a counter reaching `at_least`."""

    type: Literal["earned", "activity", "event", "streak", "thanks_received"]
    at_least: int = Field(ge=1, le=1_000_000_000)
    kind: str | None = None
    event: str | None = Field(default=None, pattern=_EVENT_TYPE)

    @model_validator(mode="after")
    def _needs(self) -> Condition:
        if self.type == "event" and self.event is None:
            raise ValueError("an 'event' condition names its event type in `event`")
        if self.type != "event" and self.event is not None:
            raise ValueError("`event` belongs to conditions of type 'event' only")
        if self.kind is not None and (self.type != "activity" or self.kind not in MESSAGE_KINDS):
            raise ValueError("`kind` is a message kind, for conditions of type 'activity' only")
        return self


class Achievement(Section):
    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    title: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=200)
    condition: Condition
    reward: int = Field(default=0, ge=0, le=1_000_000)
    hidden: bool = False


def _default_achievements() -> tuple[Achievement, ...]:
    def make(id: str, title: str, text: str, reward: int, **condition: object) -> Achievement:
        return Achievement.model_validate(
            {"id": id, "title": title, "description": text, "reward": reward,
             "condition": condition}
        )  # fmt: skip

    return (
        make("first_steps", "First steps", "Earn your first 50 points.", 10,
             type="earned", at_least=50),
        make("chatterbox", "Chatterbox", "Write 100 scored messages.", 50,
             type="activity", kind="text", at_least=100),
        make("helpful", "Helpful", "Be thanked 5 times.", 25, type="thanks_received", at_least=5),
        make("regular", "Regular", "Be active 3 days in a row.", 20, type="streak", at_least=3),
        make("centurion", "Centurion", "Earn 1,000 points.", 100, type="earned", at_least=1000),
    )  # fmt: skip


class ProgressSection(Section):
    achievements: tuple[Achievement, ...] = Field(default_factory=_default_achievements)
    # Points from level L to L + 1 are a*L^2 + b*L + c; MEE6's curve is 5, 50, 100.
    level_curve: tuple[int, int, int] = (5, 50, 100)
    # A streak survives one day without activity when true.
    streak_grace_day: bool = True
    announce_achievements: bool = True
    announce_levels: bool = True
    # Announcements to one chat within this many seconds are sent as one message.
    announce_delay_seconds: float = Field(default=3.0, ge=0, le=600)

    @field_validator("achievements")
    @classmethod
    def _unique(cls, value: tuple[Achievement, ...]) -> tuple[Achievement, ...]:
        ids = [a.id for a in value]
        if len(ids) != len(set(ids)):
            raise ValueError("achievement ids must be unique")
        return value

    @field_validator("level_curve")
    @classmethod
    def _growing(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        a, b, c = value
        if a < 0 or b < 0 or c < 1:
            raise ValueError("a and b must be >= 0 and c >= 1, so every level costs points")
        return value


class EventRule(Section):
    points: int = Field(ge=1, le=1_000_000)
    multiplier: Factor = Decimal(1)


def _default_event_rules() -> dict[str, EventRule | int]:
    return {"narrative.chapter_completed": 50, "game.won": 20, "user.registered": 10}


class EventsSection(Section):
    enabled: bool = True
    # Patterns of bus events the plugin listens to.
    subscribe: tuple[str, ...] = ("game.*", "narrative.*", "user.*", "admin.*")
    # Event type -> points, or { points = N, multiplier = "1.5" }.
    rules: dict[str, EventRule | int] = Field(default_factory=_default_event_rules)

    @field_validator("rules")
    @classmethod
    def _types(cls, value: dict[str, EventRule | int]) -> dict[str, EventRule | int]:
        for name, rule in value.items():
            if not re.match(_EVENT_TYPE, name) or name.startswith("admin."):
                raise ValueError(f"{name!r} is not an event type that can earn points")
            if isinstance(rule, int) and not 1 <= rule <= 1_000_000:
                raise ValueError(f"points for {name!r} must be 1 to 1,000,000")
        return value

    def rule(self, event_type: str) -> EventRule | None:
        rule = self.rules.get(event_type)
        return EventRule(points=rule) if isinstance(rule, int) else rule


class WeeklySection(Section):
    """A weekly leaderboard post: a view over the ledger, nothing is ever reset."""

    enabled: bool = False
    chats: tuple[int, ...] = ()
    # Crontab in the [scheduler] timezone; by default Sunday 18:00.
    cron: str = "0 18 * * sun"

    _cron = field_validator("cron")(check_crontab)


class GamificationConfig(Section):
    ledger: LedgerSection = LedgerSection()
    activity: ActivitySection = ActivitySection()
    anti_abuse: AntiAbuseSection = AntiAbuseSection()
    engagement: EngagementSection = EngagementSection()
    reactions: ReactionsSection = ReactionsSection()
    thanks: ThanksSection = ThanksSection()
    admin: AdminSection = AdminSection()
    progress: ProgressSection = ProgressSection()
    multipliers: MultipliersSection = MultipliersSection()
    events: EventsSection = EventsSection()
    weekly: WeeklySection = WeeklySection()

    @model_validator(mode="after")
    def _grant_within_ledger(self) -> GamificationConfig:
        if self.admin.max_grant > self.ledger.max_amount:
            raise ValueError("admin.max_grant cannot exceed ledger.max_amount")
        return self
