from __future__ import annotations

from dataclasses import Field, fields
from pathlib import Path
from typing import Any

import pytest

from cxstream.settings import Secret, Settings, make_folder, settings_markdown
from operators.errors import ConfigError


def test_defaults_match_the_design() -> None:
    s = Settings.from_env({})
    assert (s.redis_url, s.shards, s.host, s.port, s.recovery_dir) == (
        None,
        4,
        "127.0.0.1",
        8765,
        None,
    )
    assert s.allowed_origins() == ("http://127.0.0.1:8765", "http://localhost:8765")


def test_an_ipv6_host_is_written_in_brackets_in_its_origin() -> None:
    """A browser's Origin for the console served on ::1 is http://[::1]:PORT."""
    s = Settings.from_env({"CX_HOST": "::1", "CX_PORT": "9000"})
    assert s.allowed_origins() == ("http://[::1]:9000", "http://localhost:9000")


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "REDIS_URL": "redis://r:6379/1",
            "CX_SHARDS": "8",
            "CX_SECRET": "s" * 40,
            "CX_HOST": "127.0.0.2",
            "CX_PORT": "9000",
            "CX_ORIGINS": "https://cc.example, https://b.example",
            "CX_RECOVERY_DIR": "/var/lib/cx",
            "CX_DATA_DIR": "/tmp/cx",
            "CX_MODEL_SHARDS": "2",
            "CX_RETENTION_DAYS": "60",
            "CX_HORIZON_DAYS": "14",
            "CX_LABEL_MODE": "inactivity",
            "CX_ALERTS_MAXLEN": "500",
            "CX_READ_COUNT": "200",
            "CX_READ_BLOCK_MS": "50",
            "CX_TOKEN_TTL_HOURS": "1",
            "CX_LOG_LEVEL": "debug",
        }
    )
    assert s.redis_url == "redis://r:6379/1"
    assert (s.shards, s.port, s.model_shards, s.read_count, s.read_block_ms) == (
        8,
        9000,
        2,
        200,
        50,
    )
    assert s.secret == Secret("s" * 40)
    assert s.origins == ("https://cc.example", "https://b.example")
    assert s.allowed_origins() == s.origins
    assert s.recovery_dir == Path("/var/lib/cx")
    assert (s.retention_days, s.horizon_days, s.label_mode) == (60.0, 14.0, "inactivity")
    assert (s.alerts_maxlen, s.token_ttl_hours, s.log_level) == (500, 1.0, "DEBUG")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CX_SHARDS": "0"}, "CX_SHARDS=0"),
        ({"CX_PORT": "http"}, "CX_PORT='http': not an integer"),
        ({"CX_SECRET": "short"}, "CX_SECRET is too short"),
        ({"CX_LABEL_MODE": "vibes"}, "CX_LABEL_MODE"),
        ({"CX_HORIZON_DAYS": "120"}, "shorter than CX_HORIZON_DAYS"),
        ({"CX_READ_BLOCK_MS": "0"}, "never block forever"),
        ({"CX_RETENTION_DAYS": "soon"}, "not a number"),
        ({"CX_READ_SHARDS": "2-5"}, "shard 4 does not exist"),
        ({"CX_READ_SHARDS": "one"}, "use shard numbers and ranges"),
        ({"CX_READ_SHARDS": "3-1"}, "goes backwards"),
        ({"CX_HTTP_PORT": "70000"}, "CX_HTTP_PORT=70000: not a tcp port"),
        ({"CX_PORT": "9000", "CX_HTTP_PORT": "9000"}, "the same port as CX_PORT"),
        ({"CX_PORT": "65535"}, "CX_HTTP_PORT=65536: not a tcp port"),
        ({"CX_CURRENCY": "euro"}, "CX_CURRENCY='EURO': not an ISO 4217 code"),
        ({"CX_CURRENCY": "€"}, "not an ISO 4217 code"),
        ({"CX_CLOCK_SPEED": "0"}, "CX_CLOCK_SPEED=0: must be between 0.001 and 1e9"),
        ({"CX_CLOCK_SPEED": "1e-300"}, "CX_CLOCK_SPEED=1e-300: must be between 0.001 and 1e9"),
        ({"CX_CLOCK_SPEED": "1e308"}, "CX_CLOCK_SPEED=1e[+]308: must be between 0.001 and 1e9"),
        ({"CX_CLOCK_SPEED": "-2"}, "CX_CLOCK_SPEED=-2: must be between 0.001 and 1e9"),
        ({"CX_CLOCK_SPEED": "inf"}, "CX_CLOCK_SPEED='inf': not a finite number"),
        ({"CX_CLOCK_SPEED": "nan"}, "CX_CLOCK_SPEED='nan': not a finite number"),
        ({"CX_HORIZON_DAYS": "nan"}, "CX_HORIZON_DAYS='nan': not a finite number"),
        ({"CX_RETENTION_DAYS": "-inf"}, "CX_RETENTION_DAYS='-inf': not a finite number"),
        ({"CX_SILENCE_RATIO": "inf"}, "CX_SILENCE_RATIO='inf': not a finite number"),
        ({"CX_EXPERIENCE_Z": "NaN"}, "CX_EXPERIENCE_Z='NaN': not a finite number"),
        ({"CX_TOKEN_TTL_HOURS": "1e308"}, "CX_TOKEN_TTL_HOURS=1e[+]308: at most 876600"),
        (
            {"CX_HORIZON_DAYS": "1e308", "CX_RETENTION_DAYS": "1e308"},
            "CX_HORIZON_DAYS=1e[+]308: at most 36525",
        ),
        ({"CX_PROFILE_INTERVAL_MS": "9" * 15}, "CX_PROFILE_INTERVAL_MS=999999999999999: at most"),
        ({"CX_CLOCK_SPEED": "fast"}, "CX_CLOCK_SPEED='fast': not a number"),
        ({"CX_READ_COUNT": "0"}, "CX_READ_COUNT=0: must be at least 1"),
        ({"CX_ALERTS_MAXLEN": "-1"}, "CX_ALERTS_MAXLEN=-1: must be at least 1"),
        ({"CX_TOKEN_TTL_HOURS": "0"}, "CX_TOKEN_TTL_HOURS=0: must be positive"),
        ({"CX_LOG_LEVEL": "loud"}, "CX_LOG_LEVEL='LOUD': use DEBUG, INFO, WARNING, ERROR"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL='http://cache:6379': not a redis://"),
        ({"REDIS_URL": "localhost:6379"}, "not a redis://, rediss://, unix:// URL"),
        ({"REDIS_URL": "redis://127.0.0.1:notaport"}, "port could not be cast to integer"),
        ({"REDIS_URL": "redis://127.0.0.1:99999"}, "port out of range 0-65535"),
        ({"REDIS_URL": "redis://127.0.0.1:0"}, "port 0: use 1 to 65535"),
        ({"REDIS_URL": "redis://[::1"}, "invalid IPv6 URL"),
        ({"REDIS_URL": "redis://h:1/0?socket_timeout=abc"}, "invalid value for 'socket_timeout'"),
        # (a password in the URL is not repeated in the message)
        ({"REDIS_URL": "redis://u:s3cret@h:70000/0"}, "REDIS_URL='redis://[*]{3}@h:70000/0'"),
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        Settings.from_env(env)
    assert "s3cret" not in str(refused.value)


def test_a_number_that_is_not_finite_is_refused_from_keywords_too() -> None:
    with pytest.raises(ConfigError, match="CX_PROMOTE_MARGIN=nan: not a finite number"):
        Settings(promote_margin=float("nan"))


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"CX_LOG_LEVEL": "critical"}, "log_level", "CRITICAL"),
        ({"CX_LOG_LEVEL": "warn"}, "log_level", "WARN"),  # (logging's own names)
        ({"REDIS_URL": "REDIS://cache:6379/0"}, "redis_url", "REDIS://cache:6379/0"),
        ({"REDIS_URL": "unix:///run/redis.sock"}, "redis_url", "unix:///run/redis.sock"),
    ],
)
def test_values_redis_py_and_logging_take_are_kept(
    env: dict[str, str], field: str, value: str
) -> None:
    assert getattr(Settings.from_env(env), field) == value


def test_a_data_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("")
    with pytest.raises(ConfigError, match=r"CX_DATA_DIR=.*a-file/below: cannot make the folder"):
        make_folder(taken / "below", "CX_DATA_DIR")
    with pytest.raises(ConfigError, match=r"CX_DATA_DIR=.*a-file: cannot read secret"):
        Settings(data_dir=taken).signing_secret()
    assert make_folder(tmp_path / "new" / "folder", "CX_DATA_DIR").is_dir()


def test_settings_are_frozen_and_the_secret_never_shows() -> None:
    s = Settings.from_env({"CX_SECRET": "topsecret" * 5})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]
    assert "topsecret" not in repr(s)


def test_without_cx_secret_a_key_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    first = s.signing_secret()
    assert first == s.signing_secret()
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert len(first.reveal()) >= 32


def test_the_http_api_port_follows_the_server_port_unless_set() -> None:
    assert Settings.from_env({}).api_port == 8766
    assert Settings.from_env({"CX_PORT": "9000"}).api_port == 9001
    assert Settings.from_env({"CX_PORT": "0"}).api_port == 0  # a free port, as the other
    assert Settings.from_env({"CX_PORT": "9000", "CX_HTTP_PORT": "8080"}).api_port == 8080
    assert Settings.from_env({"CX_HTTP_PORT": "0"}).api_port == 0


def test_a_process_may_own_a_set_of_shards() -> None:
    s = Settings.from_env({"CX_SHARDS": "8", "CX_READ_SHARDS": "4-5, 7"})
    assert s.shard_set == (4, 5, 7)
    assert s.model_suffix == "@4-5,7"
    every = Settings.from_env({"CX_SHARDS": "8"})
    assert every.shard_set == tuple(range(8))
    assert every.model_suffix == ""


def test_docs_settings_is_generated_from_the_declarations() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    assert docs.read_text() == settings_markdown(), "docs/settings.md is stale: run make docs"


def test_every_setting_is_declared_once_with_its_variable_and_meaning() -> None:
    names = [f.metadata["env"] for f in fields(Settings)]
    assert len(names) == len(set(names))
    for f in fields(Settings):
        assert f.metadata["env"] == "REDIS_URL" or f.metadata["env"].startswith("CX_")
        assert len(f.metadata["doc"]) > 10, f.name
        assert f"`{f.metadata['env']}`" in settings_markdown()


@pytest.mark.parametrize("f", fields(Settings), ids=lambda f: f.name)
def test_every_variable_is_read_and_empty_keeps_the_default(f: Field[Any]) -> None:
    env = f.metadata["env"]
    assert getattr(Settings.from_env({env: ""}), f.name) == f.default
    samples = {
        "REDIS_URL": "redis://127.0.0.1:1",
        "CX_SECRET": "s" * 40,
        "CX_LABEL_MODE": "inactivity",
        "CX_CHALLENGER": "none",
        "CX_READ_SHARDS": "0",
        "CX_LOG_LEVEL": "debug",
        "CX_REDIS_CLUSTER": "1",
        "CX_ORIGINS": "http://a",
        "CX_PROMOTE_MARGIN": "0.5",
        "CX_RETENTION_DAYS": "300",
        "CX_CURRENCY": "gbp",
        "CX_PROACTIVE": "0",
        "CX_PROACTIVE_HOLDOUT": "0.5",
        "CX_CONSENT_DEFAULT": "marketing=denied",
        "CX_EXPERIENCE": "0",
        "CX_EXPERIENCE_Z": "1.96",
    }
    raw = samples.get(env, "3")
    extra = {"REDIS_URL": "redis://127.0.0.1:1"} if env == "CX_REDIS_CLUSTER" else {}
    assert getattr(Settings.from_env({**extra, env: raw}), f.name) != f.default


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"CX_CONSENT_DEFAULT": "opt-in"}, "CX_CONSENT_DEFAULT"),
        ({"CX_CONSENT_DEFAULT": "sms=denied"}, "unknown purpose 'sms'"),
        ({"CX_AUDIT_RETENTION_DAYS": "0"}, "CX_AUDIT_RETENTION_DAYS=0: must be above 0"),
    ],
)
def test_a_wrong_consent_setting_stops_with_the_variable_named(
    env: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(env)
