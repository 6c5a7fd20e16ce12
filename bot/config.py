"""Configuration: a TOML file plus environment overrides, validated into pydantic models."""

from __future__ import annotations

import os
import re
import string
import tomllib
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG = Path("config.toml")

# Environment variables that override keys of the file: (variable, section, key); a key
# may be dotted (a plugin's nested key: the composition root passes those to load_config).
EnvOverride = tuple[str, str, str]
ENV_OVERRIDES: tuple[EnvOverride, ...] = (
    ("BOT_TOKEN", "bot", "token"),
    ("BOT_API_SERVER", "bot", "api_server"),
    ("BOT_DATABASE", "storage", "database"),
    ("BOT_DATABASE_URL", "storage", "url"),
    ("BOT_WEBHOOK_SECRET", "webhook", "secret_token"),
    ("BOT_NATS_URL", "events", "url"),
)

# The two ways to name the ledger: each replaces the other when set by the environment.
LOCATION_KEYS = {("storage", "url"): "database", ("storage", "database"): "url"}
# Checks a `[storage] url` and returns it, or raises ValueError with one sentence that
# never shows a password. The host knows no storage backend: the composition root
# (bot/registry.py) passes the ledger's own parser to `load_config`.
UrlCheck = Callable[[str], str]


# What the ledger's SQLite INTEGER columns hold: every chat and user id must fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UTF8_BOM = b"\xef\xbb\xbf"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the key and why."""


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
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_token(value: SecretStr) -> SecretStr:
    from aiogram.utils.token import TokenValidationError, validate_token

    token = value.get_secret_value()
    if token:
        try:
            validate_token(token)
        except TokenValidationError:
            raise ValueError(
                "is malformed (it must look like 123456:ABC-DEF, from BotFather)"
            ) from None
    return value


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


class BotSettings(Section):
    token: SecretStr = Field(default=SecretStr(""), repr=False)
    api_server: str = ""
    admin_ids: tuple[ChatId, ...] = ()
    admin_chat_id: ChatId | None = None
    admin_log_chat_id: ChatId | None = None
    # What the bot speaks where neither the chat (/language) nor the person's Telegram
    # settings choose a language it has.
    language: str = "en"

    _token = field_validator("token")(check_token)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        from bot.i18n import languages

        shipped = languages()
        if value not in shipped:
            raise ValueError(f"unknown language {value!r} (the bot speaks {', '.join(shipped)})")
        return value

    @field_validator("api_server")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        wrong = "must be an http:// or https:// URL, like 'http://127.0.0.1:8081'"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        except ValueError:
            raise ValueError(wrong) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(wrong)
        return value.rstrip("/")


class StorageSettings(Section):
    # The ledger as a URL (sqlite:///path or postgresql://user@host/db); empty: `database`.
    url: str = Field(default="", repr=False)
    database: Path = Path("data/bot.sqlite3")
    # SQLite only (PostgreSQL always commits with synchronous_commit = on).
    synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_seconds: Annotated[float, within(0, 600, above=True, unit="seconds")] = 5.0
    write_timeout_seconds: Annotated[float, within(0, 3600, above=True, unit="seconds")] = 30.0
    # How long a write that meets a lock, a full disk or an unreachable server is retried
    # before its update (or bus event) is handed back to be delivered again.
    retry_seconds: Annotated[float, within(0, 3600, unit="seconds")] = 30.0

    @field_validator("database")
    @classmethod
    def _path(cls, value: Path) -> Path:
        if not str(value) or str(value) == "." or "\x00" in str(value):
            raise ValueError("must be the path of a file, like 'data/bot.sqlite3'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value
        check: UrlCheck | None = (info.context or {}).get("storage_url")
        if check is not None:
            return check(value)
        if "://" not in value or "\x00" in value:
            raise ValueError("must be a URL like sqlite:///data/bot.sqlite3 or postgresql://...")
        return value

    @model_validator(mode="after")
    def _one_location(self) -> StorageSettings:
        if {"url", "database"} <= self.model_fields_set and self.url:
            raise KeyedError(
                "url",
                "give the ledger either as [storage] url or as [storage] database"
                " (BOT_DATABASE_URL or BOT_DATABASE), not both",
            )
        return self


class PluginsSettings(Section):
    # Left out of the file: the plugins the program ships (see load_config's default_plugins).
    enabled: tuple[str, ...] = ()


class SchedulerSettings(Section):
    timezone: str = "UTC"
    # Deprecated: the integrity check is the gamification plugin's, set in its own section.
    integrity_cron: str | None = None
    misfire_grace_seconds: Annotated[int, within(1, 7 * 86_400, unit="seconds (7 days)")] = 3600
    coalesce: bool = True

    _tz = field_validator("timezone")(check_timezone)

    @field_validator("integrity_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_crontab(value)


def check_listen(value: str, example: str) -> str:
    """A `host:port` address to listen on (empty passes: the caller decides what it means)."""
    if not value:
        return value
    host, sep, port = value.rpartition(":")
    digits = sep and port.isascii() and port.isdecimal() and len(port) <= 5
    if not host or not digits or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be host:port with a port from 0 to 65535, like {example!r}")
    return value


def listen_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class MetricsSettings(Section):
    # "host:port" for a Prometheus endpoint, e.g. "127.0.0.1:9464"; empty: off.
    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_listen(value, "127.0.0.1:9464")

    def address(self) -> tuple[str, int]:
        return listen_address(self.listen)


# Telegram's rule for setWebhook's secret_token (sent back in X-Telegram-Bot-Api-Secret-Token).
SECRET_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_-")


class WebhookSettings(Section):
    """`run --webhook` and `python -m bot webhook set|delete|info`."""

    # Where this instance's HTTP server listens (behind the HTTPS proxy or load balancer).
    listen: str = "127.0.0.1:8080"
    # The path it serves updates on; anything else is 404.
    path: str = "/telegram/webhook"
    # The full public HTTPS URL Telegram calls (path included); only `webhook set` needs it.
    url: str = ""
    # Telegram sends it with every update; requests without it are refused (BOT_WEBHOOK_SECRET).
    secret_token: SecretStr = Field(default=SecretStr(""), repr=False)
    # Telegram's simultaneous connections to the webhook (setWebhook); None: Telegram's 40.
    max_connections: Annotated[int, within(1, 100)] | None = None

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        # Empty is not "off" here: `run --webhook` must listen somewhere.
        return check_listen(value or ":", "127.0.0.1:8080")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or not value.isprintable() or " " in value:
            raise ValueError("must be a URL path starting with /, like '/telegram/webhook'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        wrong = (
            "must be the public https:// URL Telegram calls, path included, like"
            " 'https://bot.example.org/telegram/webhook'"
        )
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        except ValueError:
            raise ValueError(wrong) from None
        # http:// only reaches a local Bot API server, which allows it; Telegram says so.
        if parts.scheme not in ("https", "http") or not parts.hostname or " " in value:
            raise ValueError(wrong)
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and (len(secret) > 256 or not set(secret) <= SECRET_CHARACTERS):
            raise ValueError(
                "must be 1 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)"
            )
        return value

    def address(self) -> tuple[str, int]:
        return listen_address(self.listen)


# @BotFather's rule for a Mini App's short name (/newapp).
_APP_SHORT_NAME = re.compile(r"^[A-Za-z0-9_]{3,30}$")


class WebSettings(Section):
    """The chat pages (leaderboard, profiles, admin actions) served by the bot itself."""

    # "host:port" for the pages' HTTP server, e.g. "127.0.0.1:8081"; empty: no pages.
    listen: str = ""
    # The pages' public https:// base URL (behind your proxy); the Mini App URL to give
    # @BotFather is <public_url>/app.
    public_url: str = ""
    # The Mini App's short name from @BotFather's /newapp (t.me/<bot>/<name>); empty: the
    # bot's main Mini App (t.me/<bot>?startapp=...).
    app_short_name: str = ""
    # How long a Mini App's signed launch data is accepted after Telegram issued it.
    init_data_max_age_seconds: Annotated[
        float, within(60, 30 * 86_400, unit="seconds (1 minute to 30 days)")
    ] = 86_400.0
    # How long a getChatMember answer (member or not, admin or not) is trusted.
    member_cache_seconds: Annotated[float, within(0, 3600, unit="seconds")] = 60.0

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_listen(value, "127.0.0.1:8081")

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            return value
        wrong = "must be the pages' public URL, like 'https://points.example.org'"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        except ValueError:
            raise ValueError(wrong) from None
        if parts.scheme not in ("https", "http") or not parts.hostname or " " in value:
            raise ValueError(wrong)
        if parts.query or parts.fragment:
            raise ValueError(wrong + " (no query or fragment)")
        return value

    @field_validator("app_short_name")
    @classmethod
    def _app(cls, value: str) -> str:
        if value and not _APP_SHORT_NAME.match(value):
            raise ValueError("must be 3 to 30 of A-Z, a-z, 0-9 and _ (@BotFather's rule)")
        return value

    @model_validator(mode="after")
    def _public(self) -> WebSettings:
        if self.listen and not self.public_url:
            raise KeyedError("public_url", "must be set when listen is (the buttons link to it)")
        return self

    def address(self) -> tuple[str, int]:
        return listen_address(self.listen)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


# NATS names: a stream or consumer name is one token; a subject prefix is tokens with dots.
_NATS_TOKEN = r"[A-Za-z0-9_-]+"
_NATS_NAME = re.compile(rf"^{_NATS_TOKEN}$")
_NATS_PREFIX = re.compile(rf"^{_NATS_TOKEN}(\.{_NATS_TOKEN})*$")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def check_nats_url(value: str) -> str:
    """One server URL or several, comma-separated; never echoes a password back."""
    wrong = "must be a NATS server URL like 'nats://127.0.0.1:4222' (several: comma-separated)"
    for part in value.split(","):
        try:
            parts = urlsplit(part.strip())
            parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        except ValueError:
            raise ValueError(wrong) from None
        if parts.scheme not in NATS_SCHEMES or not parts.hostname:
            raise ValueError(wrong)
    return value


class EventsSettings(Section):
    """The event bus between plugins and other services: in-process, or NATS JetStream."""

    # "memory": in this process only; "nats": NATS JetStream, shared by every instance.
    bus: Literal["memory", "nats"] = "memory"
    url: str = Field(default="nats://127.0.0.1:4222", repr=False)
    stream: str = "GAMIFICATION"
    # Events travel on "<subject_prefix>.<event type>", e.g. bot.events.game.won.
    subject_prefix: str = "bot.events"
    # Durable consumers are named "<durable_prefix>_<subscription>"; instances with the same
    # prefix share them (each event is handled by one of them).
    durable_prefix: str = "bot"
    # JetStream drops a second publish of the same event id within this window.
    duplicate_window_seconds: Annotated[
        float, within(0, 86_400, above=True, unit="seconds (1 day)")
    ] = 120.0
    # How long the stream keeps events (a consumer that was away catches up within it).
    max_age_days: Annotated[float, within(0, 3650, above=True, unit="days")] = 7.0
    # A delivered event not acknowledged within this is delivered again (a handler still
    # working says so every third of it, so only a dead instance's events come back).
    ack_wait_seconds: Annotated[float, within(1, 3600, unit="seconds")] = 30.0
    # Deliveries of one event before JetStream gives up on it; left out: never gives up.
    max_deliver: Annotated[int, within(1, 1_000_000)] | None = None

    _url = field_validator("url")(check_nats_url)

    @field_validator("stream", "durable_prefix")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NATS_NAME.match(value):
            raise ValueError("must be letters, digits, '_' or '-' only, like 'GAMIFICATION'")
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _NATS_PREFIX.match(value):
            raise ValueError(
                "must be dot-separated words of letters, digits, '_' or '-', like 'bot.events'"
                " (no wildcards)"
            )
        return value

    @model_validator(mode="after")
    def _window(self) -> EventsSettings:
        if self.duplicate_window_seconds > self.max_age_days * 86_400:
            raise KeyedError("duplicate_window_seconds", "must not be longer than max_age_days")
        return self


class AppConfig(Section):
    """The host's sections; each plugin's section, validated by its model, in `plugin_sections`."""

    bot: BotSettings = BotSettings()
    storage: StorageSettings = StorageSettings()
    plugins: PluginsSettings = PluginsSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    metrics: MetricsSettings = MetricsSettings()
    webhook: WebhookSettings = WebhookSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()
    events: EventsSettings = EventsSettings()
    source: str = Field(default="defaults", exclude=True)
    plugin_sections: dict[str, BaseModel] = Field(default_factory=dict, exclude=True)

    def section(self, name: str) -> BaseModel | None:
        return self.plugin_sections.get(name)


HOST_SECTIONS = frozenset(
    {"bot", "storage", "plugins", "scheduler", "metrics", "webhook", "web", "logging", "events"}
)


def read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: the config file does not exist.")
        return {}
    try:
        raw = path.read_bytes()
        # Windows editors may save UTF-8 with a byte order mark, which TOML does not allow.
        return tomllib.loads(raw.removeprefix(UTF8_BOM).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text; save it as UTF-8).") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from exc


def apply_env(
    data: dict[str, Any], environ: Mapping[str, str], extra: Sequence[EnvOverride] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's data with the environment's overrides, and which key came from which
    variable (`{"bot.api_server": "BOT_API_SERVER"}`), so an error can name the variable.
    `extra`: the plugins' own overrides (dotted keys inside their sections)."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    origins: dict[str, str] = {}
    for variable, section, dotted in (*ENV_OVERRIDES, *extra):
        if environ.get(variable):
            table = merged.setdefault(section, {})
            *parents, key = dotted.split(".")
            for part in parents:  # copied on the way down: the file's data stays as read
                if not isinstance(table, dict):
                    break
                child = table.get(part, {})
                table[part] = table = dict(child) if isinstance(child, dict) else child
            if isinstance(table, dict):
                # The ledger's location from the environment replaces the file's, whichever
                # of the two keys the file used (both variables at once are still refused).
                other = LOCATION_KEYS.get((section, key))
                if other is not None and f"{section}.{other}" not in origins:
                    table.pop(other, None)
                table[key] = environ[variable]
                origins[f"{section}.{dotted}"] = variable
    return merged, origins


def describe_errors(
    source: str, prefix: str, error: ValidationError, origins: Mapping[str, str] | None = None
) -> str:
    """One line per problem: `config.toml: bot.admin_ids.0: expected an integer, got 'x'.`

    A key set by an environment variable is blamed on that variable, not on the file.
    """
    lines = []
    for item in error.errors():
        loc: tuple[object, ...] = item["loc"]
        cause = (item.get("ctx") or {}).get("error")
        # Any error carrying the dotted key it blames (a plugin's settings may raise their
        # own kind, as the host's KeyedError does) is reported under that key.
        blamed = getattr(cause, "key", None) if isinstance(cause, ValueError) else None
        if isinstance(blamed, str):
            loc = (*loc, *blamed.split("."))
        key = ".".join(str(part) for part in (prefix, *loc) if part != "")
        key = key.replace("\n", "\\n")
        variable = (origins or {}).get(key)
        where = f"environment variable {variable}" if variable else f"{source}: {key}"
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key.")
            continue
        given = item.get("input")
        # The bot section holds the token: none of its values is ever echoed back, so a
        # token pasted under the wrong key cannot end up in a terminal or a log.
        # A database, Redis or NATS URL may carry a password: never echoed either.
        secret = key.split(".")[0] == "bot" or "token" in key
        secret = secret or key in ("storage.url", "events.url") or key.endswith(".redis_url")
        hidden = isinstance(given, dict | list) or secret or isinstance(blamed, str)
        shown = "" if hidden else f", got {given!r}"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}{shown}.")
    return "\n".join(lines)


def load_config(
    path: Path | None = None,
    *,
    plugin_models: Mapping[str, type[BaseModel]] | None = None,
    environ: Mapping[str, str] | None = None,
    default_plugins: Sequence[str] | None = None,
    storage_url: UrlCheck | None = None,
    env_overrides: Sequence[EnvOverride] = (),
) -> AppConfig:
    """Read `path` (default config.toml, optional), apply the environment, validate it all.

    Without `[plugins] enabled` in the file, `default_plugins` run (None: every plugin of
    `plugin_models`). `storage_url` checks `[storage] url` (without it: only that it is a URL).
    `env_overrides`: environment variables for plugins' keys, as (variable, section, dotted key).

    Raises ConfigError naming the file, the key and what was expected. A table that is
    neither a host section nor a known plugin's is an error, so a typo never goes unnoticed.
    """
    required = path is not None
    path = path or DEFAULT_CONFIG
    source = str(path) if path.exists() else "environment/defaults"
    environ = os.environ if environ is None else environ
    data, origins = apply_env(read_toml(path, required=required), environ, env_overrides)
    models = dict(plugin_models or {})
    host = {key: value for key, value in data.items() if key in HOST_SECTIONS}
    problems: list[str] = []
    try:
        config = AppConfig.model_validate(host, context={"storage_url": storage_url})
    except ValidationError as exc:
        problems.append(describe_errors(source, "", exc, origins))
        config = AppConfig()
    if "enabled" not in config.plugins.model_fields_set:
        defaults = tuple(models if default_plugins is None else default_plugins)
        config = config.model_copy(update={"plugins": PluginsSettings(enabled=defaults)})
    sections: dict[str, BaseModel] = {}
    for key, value in data.items():
        if key in HOST_SECTIONS:
            continue
        model = models.get(key)
        if model is None:
            problems.append(f"{source}: {key}: unknown section (not the host's or a plugin's).")
            continue
        try:
            sections[key] = model.model_validate(value)
        except ValidationError as exc:
            problems.append(describe_errors(source, key, exc, origins))
    for name in config.plugins.enabled:
        if name not in models:
            problems.append(f"{source}: plugins.enabled: there is no plugin named {name!r}.")
        elif name not in sections:
            sections[name] = models[name]()
    if problems:
        raise ConfigError("\n".join(problems))
    return config.model_copy(update={"source": source, "plugin_sections": sections})
