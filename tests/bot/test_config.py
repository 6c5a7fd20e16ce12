"""Config loading: defaults, environment overrides, and one clear error per bad key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import AppConfig, ConfigError, load_config
from bot.plugins import default_registry
from plugins.gamification.config import GamificationConfig

ROOT = Path(__file__).resolve().parents[2]
MODELS = default_registry().config_models()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path | None, **environ: str) -> AppConfig:
    return load_config(path, plugin_models=MODELS, environ=environ)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load(None)
    assert config.storage.synchronous == "FULL"
    assert config.plugins.enabled == ("gamification",)
    assert isinstance(config.section("gamification"), GamificationConfig)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[bot]\ntoken = "1:file"\n[storage]\ndatabase = "a.db"\n')
    config = load(path, BOT_TOKEN="2:env", BOT_DATABASE="b.db", BOT_API_SERVER="http://x:1")
    assert config.bot.token.get_secret_value() == "2:env"
    assert config.storage.database == Path("b.db")
    assert config.bot.api_server == "http://x:1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[bot]\ntokn = 'x'\n", "bot.tokn: unknown key."),
        ("[storage]\nbusy_timeout_seconds = 'soon'\n", "storage.busy_timeout_seconds:"),
        ("[storage]\nsynchronous = 'SOMETIMES'\n", "storage.synchronous:"),
        ("[gamification.anti_abuse]\ncooldown_seconds = -1\n", "anti_abuse.cooldown_seconds"),
        ("[gamification.activity]\npoints = { txt = 5 }\n", "unknown message kind 'txt'"),
        ("[gamification.activity]\npoints = { text = [9, 3] }\n", "low <= high"),
        ("[gamification.ledger]\ntimezone = 'Mars/Base'\n", "unknown timezone 'Mars/Base'"),
        ("[gamificaton]\nx = 1\n", "gamificaton: unknown section"),
        ("[plugins]\nenabled = ['nope']\n", "no plugin named 'nope'"),
        ("[bot]\napi_server = 'localhost:8081'\n", "bot.api_server: must be an http"),
        ("[bot]\nadmin_ids = ['me']\n", "bot.admin_ids.0:"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert "Traceback" not in message


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml")


def test_token_is_never_shown(tmp_path: Path) -> None:
    secret = "123456:SUPER-SECRET-TOKEN"
    path = write(tmp_path, f'[bot]\ntoken = "{secret}"\nadmin_ids = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert secret not in str(caught.value)
    config = load(write(tmp_path, f'[bot]\ntoken = "{secret}"\n'))
    assert secret not in repr(config)
    assert secret not in str(config.model_dump())


def _fields(model: type[BaseModel], prefix: str) -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _fields(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_example_config_documents_every_key_and_loads() -> None:
    example = ROOT / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    keys = _fields(AppConfig, "") + _fields(GamificationConfig, "gamification.")
    for key in keys:
        *tables, leaf = key.split(".")
        assert f"{leaf} =" in text, f"config.example.toml does not mention {key}"
        node = data
        for table in tables:
            node = node.get(table, {})
        optional = leaf in {"admin_chat_id", "admin_log_chat_id"}
        assert optional or leaf in node, f"{key} is not set in config.example.toml"
    config = load(example)
    assert config.section("gamification") == GamificationConfig()
    assert config.bot.model_dump(exclude={"token"}) == AppConfig().bot.model_dump(
        exclude={"token"}
    )
