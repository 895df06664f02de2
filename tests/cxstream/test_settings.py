from __future__ import annotations

from pathlib import Path

import pytest

from cxstream.settings import Secret, Settings
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
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


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


def test_a_process_may_own_a_set_of_shards() -> None:
    s = Settings.from_env({"CX_SHARDS": "8", "CX_READ_SHARDS": "4-5, 7"})
    assert s.shard_set == (4, 5, 7)
    assert s.model_suffix == "@4-5,7"
    every = Settings.from_env({"CX_SHARDS": "8"})
    assert every.shard_set == tuple(range(8))
    assert every.model_suffix == ""
