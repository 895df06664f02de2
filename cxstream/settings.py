"""One frozen settings object, read once from the environment.

Every variable is documented in the README (section *Settings*).  Nothing else
in cxstream reads ``os.environ``.

>>> s = Settings.from_env({"CX_SHARDS": "8", "CX_PORT": "9000"})
>>> s.shards, s.port, s.redis_url
(8, 9000, None)
>>> Settings.from_env({"CX_SHARDS": "zero"})
Traceback (most recent call last):
...
operators.errors.ConfigError: CX_SHARDS='zero': not an integer
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from operators.errors import ConfigError

T = TypeVar("T")

MIN_SECRET_BYTES = 32


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback.

    >>> Secret("x" * 40)
    Secret('********')
    >>> Secret("x" * 40).reveal()[:3]
    'xxx'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


def parse_shard_set(text: str) -> tuple[int, ...]:
    """``"0-3,6"`` -> (0, 1, 2, 3, 6); empty -> () (every shard).

    >>> parse_shard_set("4-5, 0")
    (0, 4, 5)
    """
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError as exc:
            raise ConfigError(
                f"CX_READ_SHARDS={text!r}: use shard numbers and ranges, e.g. 0-3,6"
            ) from exc
        if first > last:
            raise ConfigError(f"CX_READ_SHARDS={text!r}: range {part} goes backwards")
        out.update(range(first, last + 1))
    return tuple(sorted(out))


def format_shard_set(shards: tuple[int, ...]) -> str:
    """(0, 1, 2, 3, 6) -> ``"0-3,6"``."""
    parts: list[str] = []
    for i in sorted(shards):
        if parts and parts[-1] and int(parts[-1].rpartition("-")[2]) == i - 1:
            low = parts[-1].partition("-")[0]
            parts[-1] = f"{low}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def read_shards_of(index: int, processes: int, shards: int) -> str:
    """``CX_READ_SHARDS`` of process ``index`` when ``processes`` processes own the
    shards in turn.

    >>> read_shards_of(0, 2, 4), read_shards_of(1, 2, 4), read_shards_of(0, 1, 4)
    ('0,2', '1,3', '0-3')
    """
    return format_shard_set(tuple(range(index, shards, processes)))


def _flag(name: str, raw: str | None) -> bool:
    """A yes/no setting: 1, true, yes, on or 0, false, no, off (absent: no).

    >>> _flag("X", "yes"), _flag("X", None), _flag("X", "0")
    (True, False, False)
    """
    if raw is None or raw.strip() == "":
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: use 1 or 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything cxstream can be told, with its default.

    Build it with :meth:`from_env` in the composition root and pass it down.
    """

    redis_url: str | None = None
    shards: int = 4
    secret: Secret | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    origins: tuple[str, ...] = ()
    recovery_dir: Path | None = None
    data_dir: Path = Path(".cxstream")
    model_shards: int = 1
    retention_days: float = 90.0
    horizon_days: float = 30.0
    label_mode: str = "cancel"
    alerts_maxlen: int = 100_000
    read_count: int = 1000
    read_block_ms: int = 100
    token_ttl_hours: float = 12.0
    log_level: str = "INFO"
    challenger: str = "arf"
    promote_margin: float = 0.02
    challenger_every: int = 16
    catalog_path: Path | None = None
    profile_interval_ms: int = 30000
    read_shards: tuple[int, ...] = ()  # empty: every shard (one flow, or one Bytewax cluster)
    topics_path: Path | None = None
    trend_window_min: float = 60.0
    trend_threshold: float = 5.0
    trend_min_count: int = 10
    redis_cluster: bool = False
    max_unauthenticated: int = 1000
    silence_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.max_unauthenticated < 1:
            raise ConfigError(
                f"CX_MAX_UNAUTHENTICATED={self.max_unauthenticated}: must be at least 1"
            )
        if self.shards < 1 or self.shards > 1024:
            raise ConfigError(f"CX_SHARDS={self.shards}: must be between 1 and 1024")
        if self.model_shards < 1 or self.model_shards > 1024:
            raise ConfigError(f"CX_MODEL_SHARDS={self.model_shards}: must be between 1 and 1024")
        if not 0 < self.port < 65536 and self.port != 0:
            raise ConfigError(f"CX_PORT={self.port}: not a tcp port")
        if self.label_mode not in ("cancel", "inactivity"):
            raise ConfigError(f"CX_LABEL_MODE={self.label_mode!r}: use cancel or inactivity")
        if self.horizon_days <= 0 or self.retention_days <= 0:
            raise ConfigError("CX_HORIZON_DAYS and CX_RETENTION_DAYS must be positive")
        if self.retention_days < self.horizon_days:
            raise ConfigError(
                f"CX_RETENTION_DAYS={self.retention_days} is shorter than "
                f"CX_HORIZON_DAYS={self.horizon_days}: pending labels would expire unmatured"
            )
        if self.secret is not None and len(self.secret.reveal().encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"CX_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes")
        if self.challenger not in ("arf", "none"):
            raise ConfigError(f"CX_CHALLENGER={self.challenger!r}: use arf or none")
        if self.challenger_every < 1:
            raise ConfigError(f"CX_CHALLENGER_EVERY={self.challenger_every}: must be at least 1")
        if not 0 <= self.promote_margin < 1:
            raise ConfigError(f"CX_PROMOTE_MARGIN={self.promote_margin}: must be in [0, 1)")
        if self.profile_interval_ms < 0:
            raise ConfigError(f"CX_PROFILE_INTERVAL_MS={self.profile_interval_ms}: must be >= 0")
        if self.read_block_ms < 1:
            raise ConfigError("CX_READ_BLOCK_MS must be at least 1 (never block forever)")
        if not 1 <= self.trend_window_min <= 7 * 24 * 60:
            raise ConfigError(
                f"CX_TREND_WINDOW_MIN={self.trend_window_min}: must be between 1 and 10080"
            )
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("CX_REDIS_CLUSTER needs REDIS_URL: the embedded redis is one node")
        if self.trend_threshold <= 0 or self.trend_min_count < 1:
            raise ConfigError("CX_TREND_THRESHOLD must be positive, CX_TREND_MIN_COUNT at least 1")
        if self.silence_ratio and self.silence_ratio < 1:
            raise ConfigError(
                f"CX_SILENCE_RATIO={self.silence_ratio}: use 0 (off) or at least 1 "
                "(times the customer's own mean gap between events)"
            )
        outside = [i for i in self.read_shards if not 0 <= i < self.shards]
        if outside:
            raise ConfigError(
                f"CX_READ_SHARDS: shard {outside[0]} does not exist (CX_SHARDS={self.shards})"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ

        def get(name: str, cast: Callable[[str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return cast(raw)
            except ValueError as exc:
                kind = "an integer" if cast is int else "a number"
                raise ConfigError(f"{name}={raw!r}: not {kind}") from exc

        secret = env.get("CX_SECRET")
        recovery = env.get("CX_RECOVERY_DIR")
        origins = tuple(o.strip() for o in env.get("CX_ORIGINS", "").split(",") if o.strip())
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            shards=get("CX_SHARDS", int, 4),
            secret=Secret(secret) if secret else None,
            host=env.get("CX_HOST") or "127.0.0.1",
            port=get("CX_PORT", int, 8765),
            origins=origins,
            recovery_dir=Path(recovery) if recovery else None,
            data_dir=Path(env.get("CX_DATA_DIR") or ".cxstream"),
            model_shards=get("CX_MODEL_SHARDS", int, 1),
            retention_days=get("CX_RETENTION_DAYS", float, 90.0),
            horizon_days=get("CX_HORIZON_DAYS", float, 30.0),
            label_mode=env.get("CX_LABEL_MODE") or "cancel",
            alerts_maxlen=get("CX_ALERTS_MAXLEN", int, 100_000),
            read_count=get("CX_READ_COUNT", int, 1000),
            profile_interval_ms=get("CX_PROFILE_INTERVAL_MS", int, 30000),
            read_block_ms=get("CX_READ_BLOCK_MS", int, 100),
            token_ttl_hours=get("CX_TOKEN_TTL_HOURS", float, 12.0),
            log_level=(env.get("CX_LOG_LEVEL") or "INFO").upper(),
            challenger=(env.get("CX_CHALLENGER") or "arf").lower(),
            promote_margin=get("CX_PROMOTE_MARGIN", float, 0.02),
            challenger_every=get("CX_CHALLENGER_EVERY", int, 16),
            catalog_path=Path(env["CX_CATALOG"]) if env.get("CX_CATALOG") else None,
            read_shards=parse_shard_set(env.get("CX_READ_SHARDS") or ""),
            topics_path=Path(env["CX_TOPICS"]) if env.get("CX_TOPICS") else None,
            trend_window_min=get("CX_TREND_WINDOW_MIN", float, 60.0),
            max_unauthenticated=get("CX_MAX_UNAUTHENTICATED", int, 1000),
            trend_threshold=get("CX_TREND_THRESHOLD", float, 5.0),
            trend_min_count=get("CX_TREND_MIN_COUNT", int, 10),
            redis_cluster=_flag("CX_REDIS_CLUSTER", env.get("CX_REDIS_CLUSTER")),
            silence_ratio=get("CX_SILENCE_RATIO", float, 2.0),
        )

    @property
    def shard_set(self) -> tuple[int, ...]:
        """The shards this process reads: CX_READ_SHARDS, else all of them."""
        return self.read_shards or tuple(range(self.shards))

    @property
    def model_suffix(self) -> str:
        """What tells this process's model shards from another's when processes own
        shard sets (``m0@0-1`` in ``cx:model:``); nothing when one flow reads every shard.

        >>> Settings(shards=4, read_shards=(0, 1, 3)).model_suffix
        '@0-1,3'
        >>> Settings().model_suffix
        ''
        """
        return "@" + format_shard_set(self.read_shards) if self.read_shards else ""

    def allowed_origins(self) -> tuple[str, ...]:
        """Browser origins allowed on the WebSocket: CX_ORIGINS, else the console's own."""
        if self.origins:
            return self.origins
        return (f"http://{self.host}:{self.port}", f"http://localhost:{self.port}")

    def signing_secret(self) -> Secret:
        """CX_SECRET, or a random key kept (mode 0600) in the data directory.

        The file lets ``cxstream token`` and ``cxstream serve`` agree on a key on
        one machine without any set-up; production sets CX_SECRET.
        """
        if self.secret is not None:
            return self.secret
        path = self.data_dir / "secret"
        try:
            return Secret(path.read_text().strip())
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return Secret(path.read_text().strip())
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return Secret(value)
