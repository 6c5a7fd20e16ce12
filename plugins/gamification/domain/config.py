"""The `[gamification]` config section: ledger limits, scoring rules, anti-abuse, thanks, admin."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from plugins.gamification.domain.validation import (
    INT64_MAX,
    INT64_MIN,
    ChatId,
    KeyedError,
    Section,
    check_crontab,
    check_timezone,
    within,
)

MESSAGE_KINDS = (
    "text", "photo", "video", "animation", "sticker", "voice", "video_note", "audio",
    "document", "poll", "location", "contact", "dice", "other",
)  # fmt: skip

MAX_POINTS = 1_000_000
# 0 points is refused where leaving the entry out (or `enabled = false`) says it plainly.
Points = Annotated[int, within(1, MAX_POINTS)]
Seconds = Annotated[float, within(0, 86_400, unit="seconds (one day)")]
Factor = Annotated[Decimal, Field(max_digits=12), within(0, 100, above=True)]
ACTIVITY_OFF = "to turn activity scoring off, set gamification.activity.enabled = false"
THANKS_OFF = "to turn thanks off, set gamification.thanks.enabled = false"


class LedgerSection(Section):
    max_amount: Annotated[int, within(1, 1_000_000_000)] = 1_000_000
    allow_negative: bool = False
    timezone: str = "UTC"
    max_batch: Annotated[int, within(1, 100_000)] = 1024

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
    ignored_chats: tuple[ChatId, ...] = ()

    @field_validator("points", mode="before")
    @classmethod
    def _whole(cls, value: object) -> object:
        # Checked before the union of a number and a range reports one error per member.
        if not isinstance(value, dict):
            return value
        for kind, spec in value.items():
            if kind not in MESSAGE_KINDS:
                known = ", ".join(MESSAGE_KINDS)
                raise ValueError(f"unknown message kind {kind!r}; known: {known}")
            numbers = spec if isinstance(spec, list | tuple) else [spec]
            if len(numbers) not in (1, 2) or (len(numbers) == 1 and spec is not numbers[0]):
                raise KeyedError(kind, "must be a number of points or a [low, high] range")
            for number in numbers:
                if isinstance(number, bool) or not isinstance(number, int):
                    raise KeyedError(kind, f"must be whole numbers of points, got {spec!r}")
                if not 1 <= number <= MAX_POINTS:
                    raise KeyedError(
                        kind,
                        f"must be from 1 to {MAX_POINTS:,} points (to score a kind nothing,"
                        f" leave it out of activity.points), got {spec!r}",
                    )
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                raise KeyedError(
                    kind, f"the range must be [low, high] with low <= high, got {spec!r}"
                )
        return value

    @model_validator(mode="after")
    def _something_scores(self) -> ActivitySection:
        if self.enabled and not self.points:
            raise KeyedError("points", f"lists no message kind, so nothing scores; {ACTIVITY_OFF}")
        return self


class AntiAbuseSection(Section):
    cooldown_seconds: Seconds = 60
    cooldown_burst: Annotated[int, within(1, 100, unit="messages")] = 3
    min_length: Annotated[int, within(0, 4096, unit="characters")] = 3
    answer_seconds: Seconds = 120
    short_answer_factor: Annotated[float, within(0, 1, above=True)] = 0.5
    repeat_window_seconds: Annotated[float, within(0, 7 * 86_400, unit="seconds (7 days)")] = (
        64_800
    )
    repeat_similarity: Annotated[float, within(0, 1, above=True)] = 0.5
    repeat_memory: Annotated[int, within(1, 50, unit="texts")] = 30
    copy_similarity: Annotated[float, within(0, 1, above=True)] = 0.7
    copy_min_length: Annotated[int, within(1, 4096, unit="characters")] = 40
    copy_window_seconds: Annotated[float, within(0, 7 * 86_400, unit="seconds (7 days)")] = 3600
    repeat_min_length: Annotated[int, within(0, 4096, unit="characters")] = 6
    copy_memory: Annotated[int, within(1, 10_000, unit="texts")] = 200
    presence_seconds: Seconds = 1800
    monologue_factor: Annotated[float, within(0, 1, above=True)] = 0.25
    engaged_share: Annotated[float, within(0, 1)] = 0.25
    engagement_prior: Annotated[int, within(1, 10_000, unit="messages")] = 2
    engaged_per_responder: Annotated[int, within(1, 1000, unit="messages")] = 2
    engagement_days: Annotated[int, within(1, 90, unit="days")] = 7
    min_engagement_factor: Annotated[float, within(0, 1)] = 0.1
    daily_cap: Annotated[
        int, within(1, 1_000_000_000, unit="points", why=f"0 would score nothing; {ACTIVITY_OFF}")
    ] = 1_000
    relative_cap: Annotated[float, within(0, 1000)] = 2.5
    relative_cap_floor: Annotated[int, within(0, 1_000_000_000, unit="points")] = 200
    relative_cap_days: Annotated[int, within(1, 90, unit="days")] = 7
    burst_messages: Annotated[int, within(2, 1000, unit="messages")] = 8
    burst_seconds: Annotated[float, within(0, 3600, above=True, unit="seconds")] = 10
    auto_freeze: bool = False
    tracked_users: Annotated[int, within(100, 10_000_000)] = 20_000
    tracked_chats: Annotated[int, within(10, 1_000_000)] = 1_000
    # Where the state above lives: this process's memory, or a Redis server that several
    # bot instances share (the same verdicts as one instance; memory while it is away).
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    key_prefix: str = "gamification:"
    redis_timeout_seconds: Annotated[float, within(0, 60, above=True, unit="seconds")] = 0.5
    redis_retry_seconds: Annotated[float, within(0, 3600, above=True, unit="seconds")] = 5.0

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        wrong = (
            "must be a Redis URL like 'redis://127.0.0.1:6379/0' (rediss:// for TLS,"
            " unix:///path/to/redis.sock for a socket)"
        )
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        except ValueError:
            raise ValueError(wrong) from None
        if "\x00" in value or any(c.isspace() for c in value):
            raise ValueError(wrong)
        if parts.scheme in ("redis", "rediss"):
            database = parts.path.strip("/")
            if not parts.hostname or not (database == "" or database.isdecimal()):
                raise ValueError(wrong)
        elif parts.scheme != "unix" or not parts.path:
            raise ValueError(wrong)
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or len(value) > 100 or not value.isprintable() or " " in value:
            raise ValueError(
                "must be 1 to 100 printable characters without spaces, like 'gamification:'"
                " (each bot sharing a Redis server needs its own)"
            )
        return value


class EngagementSection(Section):
    """Replies and reactions from other members with history of their own."""

    enabled: bool = True
    window_seconds: Annotated[
        float, within(0, 7 * 86_400, above=True, unit="seconds (7 days)")
    ] = 6 * 3600
    bonus: Factor = Decimal("0.5")
    min_history_messages: Annotated[int, within(0, 100_000, unit="messages")] = 2
    history_days: Annotated[int, within(1, 90, unit="days")] = 7
    pair_daily_limit: Annotated[int, within(0, 10_000)] = 2
    daily_limit: Annotated[int, within(0, 100_000)] = 20
    tracked_messages: Annotated[int, within(100, 10_000_000, unit="messages")] = 50_000


class ReactionsSection(Section):
    """Points a member's reaction gives the author of the message."""

    enabled: bool = True
    points: Annotated[int, within(1, 1_000_000, unit="points")] = 1
    pair_daily_limit: Annotated[int, within(0, 10_000)] = 1
    daily_limit: Annotated[int, within(0, 100_000)] = 10
    settle_seconds: Seconds = 60


class ThanksSection(Section):
    enabled: bool = True
    points: Points = 5
    triggers: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "en": ("+", "+1", "thanks", "thank you", "thx", "ty"),
            "ru": ("спасибо", "спс", "благодарю"),
            "de": ("danke",),
            "es": ("gracias",),
        }
    )
    pair_cooldown_seconds: Annotated[float, within(0, 365 * 86_400, unit="seconds (365 days)")] = (
        3600
    )
    daily_limit: Annotated[
        int,
        within(1, 1_000_000_000, unit="thanks", why=f"0 would refuse every thanks; {THANKS_OFF}"),
    ] = 10
    max_age_hours: Annotated[float, within(0, 365 * 24, above=True, unit="hours (365 days)")] = 48
    min_giver_messages: Annotated[int, within(0, 100_000, unit="messages")] = 2
    giver_days: Annotated[int, within(1, 90, unit="days")] = 7
    thanks_per_message: Annotated[float, within(0, 1000)] = 0.5
    pair_decay: Factor = Decimal("0.5")
    pair_decay_days: Annotated[int, within(0, 90, unit="days")] = 7

    @field_validator("triggers")
    @classmethod
    def _words(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for language, words in value.items():
            if any(not word.strip() for word in words):
                raise KeyedError(language, "a trigger is a word or phrase, never blank")
        return value

    @model_validator(mode="after")
    def _some_trigger(self) -> ThanksSection:
        if self.enabled and not any(self.triggers.values()):
            raise KeyedError("triggers", f"lists no word, so no reply is a thanks; {THANKS_OFF}")
        return self


class AdminSection(Section):
    max_grant: Annotated[int, within(1, 1_000_000_000, unit="points")] = 10_000
    admin_cache_seconds: Annotated[float, within(0, 3600, unit="seconds")] = 60


MAX_STREAK_DAYS = 36_500
# One coefficient of the level curve; larger ones would put level 1 out of anyone's reach.
Curve = Annotated[int, within(0, 1_000_000_000)]
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

    @field_validator("chats")
    @classmethod
    def _chat_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for key in value:
            if not re.fullmatch(r"-?[0-9]{1,19}", key) or not INT64_MIN <= int(key) <= INT64_MAX:
                raise ValueError(f"the key {key!r} must be a chat id (a signed 64-bit number)")
        return value

    @field_validator("streak")
    @classmethod
    def _day_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for key in value:
            if not re.fullmatch(r"[0-9]{1,5}", key) or not 1 <= int(key) <= MAX_STREAK_DAYS:
                raise ValueError(
                    f"the key {key!r} must be a number of days from 1 to {MAX_STREAK_DAYS:,}"
                )
        return value


class Condition(Section):
    """What unlocks an achievement: a counter reaching `at_least`."""

    type: Literal["earned", "activity", "event", "streak", "thanks_received"]
    at_least: Annotated[int, within(1, 1_000_000_000)]
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
    # 0: an achievement without points, which is a choice, not a slip.
    reward: Annotated[int, within(0, MAX_POINTS, unit="points")] = 0
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
    level_curve: tuple[Curve, Curve, Curve] = (5, 50, 100)
    # A streak survives one day without activity when true.
    streak_grace_day: bool = True
    announce_achievements: bool = True
    announce_levels: bool = True
    # Announcements to one chat within this many seconds are sent as one message.
    announce_delay_seconds: Annotated[float, within(0, 600, unit="seconds")] = 3.0

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
    points: Points
    multiplier: Factor = Decimal(1)


def _default_event_rules() -> dict[str, EventRule]:
    return {
        "narrative.chapter_completed": EventRule(points=50),
        "game.won": EventRule(points=20),
        "user.registered": EventRule(points=10),
    }


class EventsSection(Section):
    enabled: bool = True
    # Patterns of bus events the plugin listens to.
    subscribe: tuple[str, ...] = ("game.*", "narrative.*", "user.*", "admin.*")
    # Event type -> points, or { points = N, multiplier = "1.5" }.
    rules: dict[str, EventRule] = Field(default_factory=_default_event_rules)

    @field_validator("rules", mode="before")
    @classmethod
    def _types(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        tables: dict[object, object] = {}
        for name, rule in value.items():
            if not isinstance(name, str) or not re.match(_EVENT_TYPE, name):
                raise ValueError(f"{name!r} is not an event type that can earn points")
            if name.startswith("admin."):
                raise ValueError(f"{name!r} is not an event type that can earn points")
            if isinstance(rule, bool) or not isinstance(rule, int | dict | EventRule):
                raise KeyedError(name, 'must be whole points or { points = N, multiplier = "F" }')
            # A bare number is short for { points = N }: one model, so a mistake is reported
            # once rather than once per member of a union.
            tables[name] = {"points": rule} if isinstance(rule, int) else rule
        return tables

    @model_validator(mode="after")
    def _listens(self) -> EventsSection:
        if self.enabled and not self.subscribe:
            raise KeyedError(
                "subscribe",
                "lists no event pattern, so no event arrives; to turn events off,"
                " set gamification.events.enabled = false",
            )
        return self

    def rule(self, event_type: str) -> EventRule | None:
        return self.rules.get(event_type)


class WeeklySection(Section):
    """A weekly leaderboard post: a view over the ledger, nothing is ever reset."""

    enabled: bool = False
    chats: tuple[ChatId, ...] = ()
    # Crontab in the [scheduler] timezone; by default Sunday 18:00.
    cron: str = "0 18 * * sun"

    _cron = field_validator("cron")(check_crontab)

    @model_validator(mode="after")
    def _somewhere(self) -> WeeklySection:
        if self.enabled and not self.chats:
            raise KeyedError(
                "chats",
                "lists no chat, so the weekly post goes nowhere; list chat ids,"
                " or set gamification.weekly.enabled = false",
            )
        return self


class IntegritySection(Section):
    # When the daily ledger check runs (crontab), in `timezone` or else the scheduler's.
    cron: str = "0 3 * * *"
    timezone: str | None = None

    _cron = field_validator("cron")(check_crontab)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class CardsSection(Section):
    """/points as a picture: a rank card (PNG) with the text reply as its caption."""

    enabled: bool = True
    # How long fetching a profile photo may take before the card shows initials instead.
    avatar_seconds: Annotated[float, within(0.1, 30, unit="seconds")] = 2.0
    # Rendered cards kept in memory (each 20-45 KB); the least recently used go first.
    cache_size: Annotated[int, within(1, 10_000)] = 256


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
    integrity: IntegritySection = IntegritySection()
    cards: CardsSection = CardsSection()

    @model_validator(mode="after")
    def _amounts_within_ledger(self) -> GamificationConfig:
        """Every configured amount must fit one transaction, or each award of it fails."""
        top = self.ledger.max_amount
        amounts: list[tuple[str, int]] = [
            ("admin.max_grant", self.admin.max_grant),
            ("thanks.points", self.thanks.points),
        ]
        for kind, spec in self.activity.points.items():
            amounts.append(
                (f"activity.points.{kind}", spec[1] if isinstance(spec, tuple) else spec)
            )
        for name, rule in self.events.rules.items():
            amounts.append((f"events.rules.{name}", rule.points))
        for index, achievement in enumerate(self.progress.achievements):
            amounts.append((f"progress.achievements.{index}.reward", achievement.reward))
        for key, amount in amounts:
            if amount > top:
                raise KeyedError(
                    key,
                    f"{amount:,} points is more than one transaction may hold (ledger.max_amount"
                    f" = {top:,}); lower it or raise gamification.ledger.max_amount",
                )
        return self
