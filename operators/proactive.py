"""Proactive retention: act before the customer calls.

Pure values in, plain values out; time is event time, passed in.

- **Triggers.** A catalog :class:`Rule` names an event pattern (``payment_failed``
  twice within 7 days; a ``complaint`` with ``event.sentiment <= -0.5`` from a
  customer with ``value >= 250``); :class:`RuleState` keeps, per customer, the
  recent matches a counting rule needs.  A model trigger fires when a scored
  moment that is not a contact (an event, a silence) finds the churn risk
  entering the high band, or risen by ``risk_step`` since the customer's last
  scored moment (:func:`model_trigger`).
- **Contact policy.** :class:`OutboundPolicy` holds what it needs per customer: one
  proactive action per cool-down, none within ``contact_gap_hours`` of a contact,
  caps per channel per week, quiet hours in the customer's time zone
  (``not_before``: the first moment out of them).
- **Proof.** :class:`Uplift` keeps, per action and per trigger, how many treated
  and hold-out customers churned within the horizon, and draws the uplift from
  its posterior to choose (Thompson sampling): an action whose uplift is unknown
  is still tried, one that annoys is dropped, a customer whose expected value is
  not positive is left alone.  :func:`uplift_report` turns the counts (summed over
  model shards) into uplift with its 95% interval (Agresti-Caffo).

>>> rule = Rule.parse({"name": "two_failed", "event": "payment_failed", "count": 2,
...                    "within_days": 7})
>>> state = RuleState()
>>> day = 86_400_000
>>> [r.name for r in state.observe((rule,), "payment_failed", 0, {}, lambda name: 0.0)]
[]
>>> [r.name for r in state.observe((rule,), "payment_failed", 3 * day, {}, lambda name: 0.0)]
['two_failed']
>>> model_trigger(0.7, 0.4, step=0.2), model_trigger(0.5, 0.2, step=0.2), model_trigger(0.5, 0.4)
('risk_high', 'risk_rising', None)
"""

from __future__ import annotations

import hashlib
import math
import operator
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mypy_extensions import mypyc_attr

from operators.values import NUMBER

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
WEEK_MS: Final = 7 * DAY_MS
Z95: Final = 1.959964

OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {  # the catalog's comparisons
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Check:
    """``name op number``: ``event.<attr>`` reads the event's attribute (a missing or
    non-numeric one fails the test), ``value`` the customer's value (purchases, else
    the latest ``value`` attr), any other name a journey feature (0 when absent)."""

    name: str
    op: str
    number: float
    attr: str | None = field(init=False, default=None)  # the event's attribute, if it reads one

    def __post_init__(self) -> None:
        if self.name.startswith("event."):
            object.__setattr__(self, "attr", self.name[6:])

    @classmethod
    def parse(cls, text: str) -> Check:
        parts = text.split()
        if len(parts) != 3 or parts[1] not in OPS:
            raise ValueError(f"condition {text!r}: write it as 'name op number' (op: > >= < <= ==)")
        try:
            return cls(parts[0], parts[1], float(parts[2]))
        except ValueError as exc:
            raise ValueError(f"condition {text!r}: {parts[2]!r} is not a number") from exc

    @property
    def on_event(self) -> bool:
        return self.attr is not None

    def holds(self, attrs: dict[str, Any], journey: Callable[[str], float]) -> bool:
        """Whether it holds of an event's ``attrs`` and the customer (``journey(name)``:
        the value or a feature; read only if this check names one)."""
        if self.attr is not None:
            value = attrs.get(self.attr)
            if isinstance(value, bool) or not isinstance(value, NUMBER):
                return False
            return OPS[self.op](float(value), self.number)
        return OPS[self.op](journey(self.name), self.number)

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.number:g}"


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Rule:
    """A catalog trigger: ``count`` events of type ``event`` within ``within_days``
    (event time), the last of them meeting every ``when`` test, fire it."""

    name: str
    event: str
    count: int = 1
    within_days: float = 7.0
    when: tuple[Check, ...] = ()
    description: str = ""
    on_event: tuple[Check, ...] = field(init=False, default=())  # checks of the event, first
    on_customer: tuple[Check, ...] = field(init=False, default=())  # then of the customer

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_event", tuple(c for c in self.when if c.attr is not None))
        object.__setattr__(self, "on_customer", tuple(c for c in self.when if c.attr is None))

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> Rule:
        known = {"name", "event", "count", "within_days", "when", "description"}
        unknown = sorted(set(item) - known)
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        for name in ("name", "event"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise ValueError(f"{name} missing (a non-empty string)")
        count = item.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 16:
            raise ValueError(f"count {count!r}: a whole number from 1 to 16")
        within = item.get("within_days", 7.0)
        if isinstance(within, bool) or not isinstance(within, NUMBER) or within <= 0:
            raise ValueError(f"within_days {within!r}: a number above 0")
        when = item.get("when", [])
        if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
            raise ValueError("when: a list of conditions such as 'event.sentiment <= -0.5'")
        return cls(
            name=item["name"],
            event=item["event"],
            count=count,
            within_days=float(within),
            when=tuple(Check.parse(w) for w in when),
            description=str(item.get("description", "")),
        )

    @property
    def window_ms(self) -> int:
        return int(self.within_days * DAY_MS)

    def words(self) -> str:
        """What fired, for the agent (the catalog's description, else the pattern)."""
        if self.description:
            return self.description
        what = self.event.replace("_", " ")
        head = f"{self.count} x {what} within {self.within_days:g} days" if self.count > 1 else what
        tests = ", ".join(str(t) for t in self.when)
        return f"{head} ({tests})" if tests else head


@mypyc_attr(native_class=False)
class RuleState:
    """One customer's recent matches of the counting rules: ``{rule: (ts, ...)}``,
    at most ``count`` of each, within the rule's window.  Picklable, bounded."""

    __slots__ = ("matches",)

    def __init__(self, matches: Mapping[str, tuple[int, ...]] | None = None) -> None:
        self.matches: dict[str, tuple[int, ...]] = dict(matches or {})

    def observe(
        self,
        rules: Iterable[Rule],
        event_type: str,
        ts: int,
        attrs: dict[str, Any],
        journey: Callable[[str], float],
    ) -> list[Rule]:
        """The rules this event fires.  The window slides: a third failure within the
        window fires again (the contact policy's cool-down holds it back).  Late events
        count by their own time, and fire only as the latest of their window."""
        fired: list[Rule] = []
        for rule in rules:
            if rule.event != event_type:
                continue
            if rule.on_event and not all(c.holds(attrs, journey) for c in rule.on_event):
                continue
            if rule.count > 1:
                before = self.matches.get(rule.name, ())
                if not before or ts >= before[-1]:
                    kept = (*before, ts)  # in time order: the common case
                else:
                    kept = tuple(sorted((*before, ts)))
                latest = kept[-1]
                window = rule.window_ms
                kept = tuple(t for t in kept if latest - t < window)[-rule.count :]
                self.matches[rule.name] = kept
                if len(kept) < rule.count or ts != latest:
                    continue  # a late match does not fire a window that has passed
            if not rule.on_customer or all(c.holds(attrs, journey) for c in rule.on_customer):
                fired.append(rule)
        return fired

    def snapshot(self) -> dict[str, tuple[int, ...]]:
        return {k: v for k, v in self.matches.items() if v}


def model_trigger(
    p: float, previous: float | None, *, step: float = 0.2, high: float = 0.6
) -> str | None:
    """``risk_high`` when the risk enters the high band (``high``: the alerts' band),
    ``risk_rising`` when it rose by ``step`` or more since the previous scored moment,
    else None."""
    if p >= high and (previous is None or previous < high):
        return "risk_high"
    if previous is not None and p - previous >= step:
        return "risk_rising"
    return None


MODEL_TRIGGER_WORDS: Final[Mapping[str, str]] = {
    "risk_high": "the churn risk has just entered the high band",
    "risk_rising": "the churn risk has risen sharply since the last look",
}


# -- configuration ------------------------------------------------------------------------


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True, kw_only=True)
class ProactiveConfig:
    """``queue``, ``cooldown_days`` and ``holdout`` come from the settings
    (CX_PROACTIVE_*); the rest from the catalog's ``[proactive]`` table."""

    enabled: bool = True
    queue: str = "retention"
    cooldown_days: float = 7.0
    holdout: float = 0.1
    caps: Mapping[str, int] = field(default_factory=dict)  # channel -> actions a week
    quiet_hours: tuple[int, int] | None = (21, 8)  # local [start, end) hours
    contact_gap_hours: float = 24.0
    risk_step: float = 0.2
    expires_hours: float = 72.0
    default_value: float = 100.0  # a customer's value when nothing says it
    model_triggers: bool = True
    uplift_prior_sd: float = 0.1  # how unsure the catalog's uplift priors are


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """``"21-08"`` -> (21, 8); ``""`` or ``"none"`` -> None.

    >>> parse_quiet_hours("21-08"), parse_quiet_hours("none")
    ((21, 8), None)
    """
    if text.strip().lower() in ("", "none", "off"):
        return None
    start, dash, end = text.partition("-")
    try:
        hours = (int(start), int(end))
    except ValueError:
        hours = (-1, -1)
    if not dash or not all(0 <= h <= 23 for h in hours) or hours[0] == hours[1]:
        raise ValueError(f"quiet_hours {text!r}: write it as 'HH-HH' in local hours, e.g. '21-08'")
    return hours


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name``, or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def quiet_until(ts: int, tz: str | None, hours: tuple[int, int] | None) -> int | None:
    """When ``ts`` falls in the quiet hours of zone ``tz`` (UTC when unknown): the
    first moment after them (epoch ms), else None.

    >>> h = (21, 8)
    >>> quiet_until(1_767_225_600_000, None, h)  # 2026-01-01 00:00 UTC
    1767254400000
    >>> quiet_until(1_767_268_800_000, None, h) is None  # 12:00 UTC
    True
    >>> quiet_until(1_767_268_800_000, "Asia/Tokyo", h)  # 21:00 in Tokyo: until 08:00 there
    1767308400000
    """
    if hours is None:
        return None
    where = (zone(tz) if tz else None) or UTC
    local = datetime.fromtimestamp(ts / 1000, tz=where)
    start, end = hours
    hour = local.hour
    quiet = (start <= hour < end) if start < end else (hour >= start or hour < end)
    if not quiet:
        return None
    day = local.date() if hour < end else local.date() + timedelta(days=1)
    wake = datetime(day.year, day.month, day.day, end, tzinfo=where)
    return int(wake.timestamp() * 1000)


# -- contact policy ---------------------------------------------------------------------------


@mypyc_attr(native_class=False)
class OutboundPolicy:
    """Whom we may approach now: per customer, the last proactive action, the last
    contact and the week's sends per channel.  Bounded (least recently seen dropped)."""

    CUSTOMERS = 200_000

    def __init__(self, config: ProactiveConfig) -> None:
        self.config = config
        self.last_action: OrderedDict[str, int] = OrderedDict()
        self.last_contact: OrderedDict[str, int] = OrderedDict()
        self.sends: OrderedDict[str, tuple[tuple[int, str], ...]] = OrderedDict()
        self.blocked: Counter[str] = Counter()  # reason -> count

    def contacted(self, customer_id: str, ts: int) -> None:
        if ts > self.last_contact.get(customer_id, -1):
            _put(self.last_contact, customer_id, ts, self.CUSTOMERS)

    def block(self, customer_id: str, ts: int) -> str | None:
        """Why no proactive action may go to this customer at ``ts`` (None: it may)."""
        c = self.config
        last = self.last_action.get(customer_id)
        if last is not None and abs(ts - last) < c.cooldown_days * DAY_MS:
            return "cool-down"
        contact = self.last_contact.get(customer_id)
        if contact is not None and abs(ts - contact) < c.contact_gap_hours * HOUR_MS:
            return "recent contact"
        return None

    def refuse(self, reason: str) -> None:
        self.blocked[reason] += 1

    def channel(self, customer_id: str, channels: Iterable[str], ts: int) -> str | None:
        """The first of ``channels`` whose weekly cap this customer has not reached."""
        sent = [ch for t, ch in self.sends.get(customer_id, ()) if 0 <= ts - t < WEEK_MS]
        for ch in channels:
            cap = self.config.caps.get(ch)
            if cap is None or sent.count(ch) < cap:
                return ch
        return None

    def acted(self, customer_id: str, channel: str | None, ts: int) -> None:
        """A proactive decision went out (or was held out): the cool-down starts."""
        _put(self.last_action, customer_id, ts, self.CUSTOMERS)
        if channel is not None:
            recent = tuple(s for s in self.sends.get(customer_id, ()) if 0 <= ts - s[0] < WEEK_MS)
            _put(self.sends, customer_id, (*recent, (ts, channel))[-16:], self.CUSTOMERS)

    def forget(self, customer_id: str) -> None:
        for table in (self.last_action, self.last_contact, self.sends):
            table.pop(customer_id, None)

    def customers(self) -> set[str]:
        return set(self.last_action) | set(self.last_contact) | set(self.sends)


def _put(table: OrderedDict[str, Any], key: str, value: Any, cap: int) -> None:
    table.pop(key, None)
    table[key] = value
    if len(table) > cap:
        table.popitem(last=False)


def in_holdout(customer_id: str, share: float) -> bool:
    """A fixed draw per customer (its own salt, apart from the contact control group)."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, person=b"cx-holdout").digest()
    return int.from_bytes(digest, "big") / 2**64 < share


# -- uplift -----------------------------------------------------------------------------------

Counts = dict[str, int]  # n_treated, churned_treated, n_control, churned_control


def _cell() -> Counts:
    return {"n_treated": 0, "churned_treated": 0, "n_control": 0, "churned_control": 0}


@mypyc_attr(native_class=False)
class Uplift:
    """Treated and hold-out outcomes per action and per trigger, and the open
    decisions waiting for their label (keyed by customer and the trigger's time)."""

    OPEN = 200_000

    def __init__(self, *, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.by_action: dict[str, Counts] = {}
        self.by_trigger: dict[str, Counts] = {}
        self.cells: dict[tuple[str, str], Counts] = {}  # (action, trigger)
        self.open: OrderedDict[tuple[str, int], tuple[str, str, bool]] = OrderedDict()
        self.dropped = 0  # open decisions pushed out unlabelled (the bound)

    def opened(
        self, customer_id: str, ts: int, action_id: str, trigger: str, control: bool
    ) -> None:
        self.open[(customer_id, ts)] = (action_id, trigger, control)
        if len(self.open) > self.OPEN:
            self.open.popitem(last=False)
            self.dropped += 1

    def labelled(self, customer_id: str, ts: int, churned: int) -> bool:
        """The outcome of the decision taken for ``customer_id`` at ``ts``, if one was."""
        found = self.open.pop((customer_id, ts), None)
        if found is None:
            return False
        action_id, trigger, control = found
        arm = "control" if control else "treated"
        for cell in (
            self.by_action.setdefault(action_id, _cell()),
            self.by_trigger.setdefault(trigger, _cell()),
            self.cells.setdefault((action_id, trigger), _cell()),
        ):
            cell[f"n_{arm}"] += 1
            cell[f"churned_{arm}"] += churned
        return True

    def draw(self, action_id: str, trigger: str, *, prior: float, prior_sd: float) -> float:
        """A draw of the uplift of ``action_id`` on this trigger's customers (Thompson
        sampling): the catalog's prior N(``prior``, ``prior_sd``) updated with what was
        measured, the hold-out's churn on this trigger (pooled over its actions) minus
        the churn of its customers treated with this action (a normal approximation,
        one churn and one stay added to each arm)."""
        mean, sd = self.posterior(action_id, trigger, prior=prior, prior_sd=prior_sd)
        return self.rng.gauss(mean, sd)

    def posterior(
        self, action_id: str, trigger: str, *, prior: float, prior_sd: float
    ) -> tuple[float, float]:
        """The uplift's posterior mean and standard deviation (see :meth:`draw`)."""
        t = self.cells.get((action_id, trigger))
        c = self.by_trigger.get(trigger)
        if not t or not c or not t["n_treated"] or not c["n_control"]:
            return prior, prior_sd
        nt, nc = t["n_treated"] + 2, c["n_control"] + 2
        pt, pc = (t["churned_treated"] + 1) / nt, (c["churned_control"] + 1) / nc
        measured_var = pt * (1 - pt) / nt + pc * (1 - pc) / nc
        precision = 1 / prior_sd**2 + 1 / measured_var
        mean = (prior / prior_sd**2 + (pc - pt) / measured_var) / precision
        return mean, math.sqrt(1 / precision)

    def forget(self, customer_id: str) -> None:
        for key in [k for k in self.open if k[0] == customer_id]:
            del self.open[key]

    def customers(self) -> set[str]:
        return {c for c, _ in self.open}

    def counts(self) -> dict[str, Any]:
        """The raw counts (what model shards publish and the server sums)."""
        return {
            "by_action": {k: dict(v) for k, v in sorted(self.by_action.items())},
            "by_trigger": {k: dict(v) for k, v in sorted(self.by_trigger.items())},
            "open": len(self.open),
        }


def merge_counts(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum :meth:`Uplift.counts` of several model shards (and their ``funnel`` and
    ``blocked`` counts, when given: name -> count, what is not a count skipped)."""
    out: dict[str, Any] = {
        "by_action": {},
        "by_trigger": {},
        "open": 0,
        "funnel": {},
        "blocked": {},
    }
    for part in parts:
        out["open"] += int(part.get("open", 0))
        for table in ("by_action", "by_trigger"):
            for name, cell in (part.get(table) or {}).items():
                into = out[table].setdefault(name, _cell())
                for k in into:
                    into[k] += int(cell.get(k, 0))
        for table in ("funnel", "blocked"):
            counts = part.get(table)
            if isinstance(counts, dict):
                for k, v in counts.items():
                    if isinstance(v, int):
                        out[table][k] = out[table].get(k, 0) + v
    return out


def uplift_of(cell: Mapping[str, int]) -> dict[str, Any]:
    """Uplift = churn of the hold-out minus churn of the treated, with its 95%
    interval (Agresti-Caffo: one churn and one stay added to each arm).

    >>> u = uplift_of({"n_treated": 900, "churned_treated": 180, "n_control": 100,
    ...                "churned_control": 30})
    >>> u["uplift"], u["ci"], u["churn_treated"], u["churn_control"]
    (0.1, [0.0102, 0.1963], 0.2, 0.3)
    """
    nt, ct = cell.get("n_treated", 0), cell.get("churned_treated", 0)
    nc, cc = cell.get("n_control", 0), cell.get("churned_control", 0)
    out: dict[str, Any] = {
        "n_treated": nt,
        "n_control": nc,
        "churn_treated": round(ct / nt, 4) if nt else None,
        "churn_control": round(cc / nc, 4) if nc else None,
        "uplift": round(cc / nc - ct / nt, 4) if nt and nc else None,
        "ci": None,
    }
    if nt and nc:
        pt, pc = (ct + 1) / (nt + 2), (cc + 1) / (nc + 2)
        se = math.sqrt(pt * (1 - pt) / (nt + 2) + pc * (1 - pc) / (nc + 2))
        centre = pc - pt
        low, high = max(-1.0, centre - Z95 * se), min(1.0, centre + Z95 * se)
        out["ci"] = [round(low, 4), round(high, 4)]
    return out


def uplift_report(counts: Mapping[str, Any]) -> dict[str, Any]:
    """Uplift overall, per action and per trigger, from (merged) counts."""
    by_action = counts.get("by_action") or {}
    overall = _cell()
    for cell in by_action.values():
        for k in overall:
            overall[k] += int(cell.get(k, 0))
    return {
        "overall": uplift_of(overall),
        "by_action": {k: uplift_of(v) for k, v in sorted(by_action.items())},
        "by_trigger": {
            k: uplift_of(v) for k, v in sorted((counts.get("by_trigger") or {}).items())
        },
        "open": int(counts.get("open", 0)),
    }
