"""Configuration: a TOML file plus environment overrides, validated into pydantic models."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

DEFAULT_CONFIG = Path("config.toml")

# Environment variables that override keys of the file: (variable, section, key).
ENV_OVERRIDES: tuple[tuple[str, str, str], ...] = (
    ("BOT_TOKEN", "bot", "token"),
    ("BOT_API_SERVER", "bot", "api_server"),
    ("BOT_DATABASE", "storage", "database"),
)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the key and why."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

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


class BotSettings(Section):
    token: SecretStr = Field(default=SecretStr(""), repr=False)
    api_server: str = ""
    admin_ids: tuple[int, ...] = ()
    admin_chat_id: int | None = None
    admin_log_chat_id: int | None = None

    @field_validator("api_server")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL, like 'http://127.0.0.1:8081'")
        return value.rstrip("/")


class StorageSettings(Section):
    database: Path = Path("data/bot.sqlite3")
    synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    busy_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    write_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # How long a write that meets a lock or a full disk is retried before its update (or
    # bus event) is handed back to be delivered again.
    retry_seconds: float = Field(default=30.0, ge=0, le=3600)


class PluginsSettings(Section):
    enabled: tuple[str, ...] = ("gamification",)


class SchedulerSettings(Section):
    timezone: str = "UTC"
    integrity_cron: str = "0 3 * * *"
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    coalesce: bool = True

    _tz = field_validator("timezone")(check_timezone)

    _cron = field_validator("integrity_cron")(check_crontab)


class MetricsSettings(Section):
    # "host:port" for a Prometheus endpoint, e.g. "127.0.0.1:9464"; empty: off.
    listen: str = ""

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdecimal() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, like '127.0.0.1:9464'")
        return value

    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class AppConfig(Section):
    """The host's sections; each plugin's section, validated by its model, in `plugin_sections`."""

    bot: BotSettings = BotSettings()
    storage: StorageSettings = StorageSettings()
    plugins: PluginsSettings = PluginsSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    source: str = Field(default="defaults", exclude=True)
    plugin_sections: dict[str, BaseModel] = Field(default_factory=dict, exclude=True)

    def section(self, name: str) -> BaseModel | None:
        return self.plugin_sections.get(name)


HOST_SECTIONS = frozenset({"bot", "storage", "plugins", "scheduler", "metrics", "logging"})


def read_toml(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: the config file does not exist.")
        return {}
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}).") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text; save it as UTF-8).") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply).") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from exc


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for variable, section, key in ENV_OVERRIDES:
        if environ.get(variable):
            table = merged.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = environ[variable]
    return merged


def describe_errors(source: str, prefix: str, error: ValidationError) -> str:
    """One line per problem: `config.toml: bot.admin_ids.0: expected an integer, got 'x'`."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        key = key.replace("\n", "\\n")
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: {key}: unknown key.")
            continue
        given = item.get("input")
        # The bot section holds the token: none of its values is ever echoed back, so a
        # token pasted under the wrong key cannot end up in a terminal or a log.
        secret = key.split(".")[0] == "bot" or "token" in key
        shown = "" if isinstance(given, dict | list) or secret else f", got {given!r}"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}{shown}.")
    return "\n".join(lines)


def load_config(
    path: Path | None = None,
    *,
    plugin_models: Mapping[str, type[BaseModel]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> AppConfig:
    """Read `path` (default config.toml, optional), apply the environment, validate it all.

    Raises ConfigError naming the file, the key and what was expected. A table that is
    neither a host section nor a known plugin's is an error, so a typo never goes unnoticed.
    """
    required = path is not None
    path = path or DEFAULT_CONFIG
    source = str(path) if path.exists() else "environment/defaults"
    environ = os.environ if environ is None else environ
    data = apply_env(read_toml(path, required=required), environ)
    models = dict(plugin_models or {})
    host = {key: value for key, value in data.items() if key in HOST_SECTIONS}
    problems: list[str] = []
    try:
        config = AppConfig.model_validate(host)
    except ValidationError as exc:
        problems.append(describe_errors(source, "", exc))
        config = AppConfig()
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
            problems.append(describe_errors(source, key, exc))
    for name in config.plugins.enabled:
        if name not in models:
            problems.append(f"{source}: plugins.enabled: there is no plugin named {name!r}.")
        elif name not in sections:
            sections[name] = models[name]()
    if problems:
        raise ConfigError("\n".join(problems))
    return config.model_copy(update={"source": source, "plugin_sections": sections})
