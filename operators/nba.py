"""Next-best-action: eligibility, contact policy, arbitration, and learning from answers.

For each contact moment :meth:`Arbiter.select_one` takes the catalog's actions,
removes those whose conditions fail or whose contact policy forbids them (each
with the reason), and ranks the rest by

    score = P(accept | context) x value x lever x relevance - cost

where relevance is the churn probability for retention actions, its complement
for growth actions and 1 for service.  P(accept) is learned online per action
and context segment (risk band, open complaint, failed payment) from the
agents' answers, with Thompson sampling: each decision draws from the Beta
posterior, so uncertain actions still get tried and the policy keeps learning.
A fixed share of customers (by id) is a control group that gets no action.

>>> catalog = parse_catalog('''
... [policy]
... control_group = 0.0
... [[action]]
... id = "fix"
... title = "Fix it"
... script = "Let me fix it."
... goal = "serve"
... value = 10
... when = ["complaints_open >= 1"]
... [[action]]
... id = "thanks"
... title = "Thank them"
... script = "Thank you."
... goal = "serve"
... value = 1
... ''')
>>> arbiter = Arbiter(catalog, seed=1)
>>> d = arbiter.select_one("c1", {"complaints_open": 0.0}, 0.2, "voice", now_ms=0)
>>> d.action.action_id, d.excluded["fix"]
('thanks', 'needs complaints_open >= 1')
"""

from __future__ import annotations

import hashlib
import math
import random
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, Final, NamedTuple

from mypy_extensions import mypyc_attr
from river import proba

from operators.errors import ConfigError
from operators.journey import FEATURE_NAMES
from operators.proactive import OPS, Check, Rule, parse_quiet_hours
from operators.values import NUMBER, record

_FEATURES: Final = frozenset((*FEATURE_NAMES, "silence"))

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
GOALS: Final[tuple[str, ...]] = ("retain", "serve", "grow")
KINDS: Final[tuple[str, ...]] = ("service", "sales")


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Condition:
    """``feature op value``; the feature ``churn_probability`` is the model's score."""

    feature: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"condition on {self.feature}: unknown operator {self.op!r}")

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``"complaints_open >= 1"`` -> Condition."""
        parts = text.split()
        if len(parts) != 3:
            raise ValueError(f"condition {text!r}: write it as 'feature op number'")
        name, op, number = parts
        try:
            return cls(name, op, float(number))
        except ValueError as exc:
            raise ValueError(f"condition {text!r}: {exc}") from exc

    def holds(self, x: dict[str, float]) -> bool:
        return OPS[self.op](x.get(self.feature, 0.0), self.value)

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value:g}"


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Action:
    action_id: str
    title: str
    script: str
    goal: str
    value: float
    cost: float = 0.0
    when: tuple[Condition, ...] = ()
    channels: tuple[str, ...] = ("any",)
    kind: str = "service"
    lever: float = 1.0
    max_offers: int | None = None
    window_days: float | None = None
    suppress_days: float | None = None
    outbound: tuple[str, ...] = ()  # channels it can go out on proactively, in preference
    template: str = ""  # the channel systems' template (default: the action id)
    uplift: float = 0.05  # prior: how much less a treated customer churns (proactive)
    purpose: str | None = None  # the consent it needs: "marketing" (every sales action)

    def __post_init__(self) -> None:
        if self.kind == "sales" and self.purpose is None:
            object.__setattr__(self, "purpose", "marketing")

    @property
    def needs_score(self) -> bool:
        """Whether its conditions read the churn score (not chosen without the model)."""
        return any(c.feature == "churn_probability" for c in self.when)


# Why an action may not be taken for this customer's consent (None: it may)
Refusal = Callable[["Action"], str | None]
PURPOSES: Final[tuple[str, ...]] = ("marketing",)  # the consent purposes an action may need

OUTBOUND_CHANNELS: Final[tuple[str, ...]] = (
    "email",
    "sms",
    "push",
    "app",
    "voice",
    "chat",
    "social",
    "web",
)


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True, kw_only=True)
class ProactiveTable:
    """The catalog's ``[proactive]`` table (see :class:`operators.proactive.ProactiveConfig`)."""

    caps: Mapping[str, int] = field(default_factory=dict)
    quiet_hours: tuple[int, int] | None = (21, 8)
    contact_gap_hours: float = 24.0
    risk_step: float = 0.2
    expires_hours: float = 72.0
    default_value: float = 100.0
    model_triggers: bool = True
    uplift_prior_sd: float = 0.1


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class ContactPolicy:
    control_group: float = 0.05
    max_offers: int = 3
    window_days: float = 30.0
    suppress_days: float = 14.0
    response_timeout_hours: float = 24.0


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Catalog:
    actions: tuple[Action, ...]
    policy: ContactPolicy = ContactPolicy()
    triggers: tuple[Rule, ...] = ()
    proactive: ProactiveTable = ProactiveTable()

    def __post_init__(self) -> None:
        if not self.actions:
            raise ConfigError("the catalog has no actions")
        ids = [a.action_id for a in self.actions]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"the catalog repeats action ids {dupes}")
        if not any(not a.when and a.kind == "service" for a in self.actions):
            raise ConfigError("the catalog needs a service action without conditions (a fallback)")
        names = [t.name for t in self.triggers]
        twice = sorted(
            {n for n in names if names.count(n) > 1 or n in ("risk_high", "risk_rising")}
        )
        if twice:
            raise ConfigError(f"the catalog repeats trigger names (or takes a model's) {twice}")

    def get(self, action_id: str) -> Action | None:
        return next((a for a in self.actions if a.action_id == action_id), None)


def parse_catalog(text: str, source: str = "catalog") -> Catalog:
    """Parse and validate a TOML catalog; :class:`ConfigError` says what and where."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid toml: {exc}") from exc
    policy_raw = raw.get("policy", {})
    try:
        policy = ContactPolicy(**{k: _number(v, f"policy.{k}") for k, v in policy_raw.items()})
    except TypeError as exc:
        raise ConfigError(f"{source}: [policy]: {exc}") from exc
    if not 0 <= policy.control_group < 1:
        raise ConfigError(f"{source}: policy.control_group must be in [0, 1)")
    actions = []
    for i, item in enumerate(raw.get("action", []), start=1):
        where = f"{source}: action {item.get('id', f'#{i}')!r}"
        try:
            actions.append(_action(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    triggers = []
    for i, item in enumerate(raw.get("trigger", []), start=1):
        where = f"{source}: trigger {item.get('name', f'#{i}')!r}"
        try:
            triggers.append(Rule.parse(item))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    try:
        proactive = _proactive_table(raw.get("proactive", {}))
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"{source}: [proactive]: {exc}") from exc
    for action in actions:
        _known_names(f"{source}: action {action.action_id!r}", action.when, "churn_probability")
    for rule in triggers:
        _known_names(f"{source}: trigger {rule.name!r}", rule.on_customer, "value")
    try:
        return Catalog(tuple(actions), policy, tuple(triggers), proactive)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _known_names(where: str, conditions: Iterable[Condition | Check], own: str) -> None:
    """A condition on a name no journey has would read 0 for ever: a spelling mistake."""
    for c in conditions:
        name = c.feature if isinstance(c, Condition) else c.name
        if name != own and name not in _FEATURES and ":" not in name:
            raise ConfigError(
                f"{where}: condition {str(c)!r}: no feature {name!r} "
                f"(use {own}, event.<attr> in a trigger, or a journey feature: "
                f"{', '.join(sorted(_FEATURES))})"
            )


def _proactive_table(raw: dict[str, Any]) -> ProactiveTable:
    known = {
        "caps_per_week", "quiet_hours", "contact_gap_hours", "risk_step", "expires_hours",
        "default_value", "model_triggers", "uplift_prior_sd",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown}")
    caps = raw.get("caps_per_week", {})
    if not isinstance(caps, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in caps.values()
    ):
        raise ValueError("caps_per_week: a table of channel = whole number, e.g. { sms = 1 }")
    bad = sorted(set(caps) - set(OUTBOUND_CHANNELS))
    if bad:
        raise ValueError(f"caps_per_week: unknown channels {bad}")
    numbers = {}
    for name in (
        "contact_gap_hours", "risk_step", "expires_hours", "default_value", "uplift_prior_sd"
    ):  # fmt: skip
        if name in raw:
            value = _number(raw[name], name)
            if value < 0 or (name in ("expires_hours", "uplift_prior_sd") and value == 0):
                raise ValueError(f"{name} must be above 0")
            numbers[name] = float(value)
    quiet = raw.get("quiet_hours", "21-08")
    if not isinstance(quiet, str):
        raise ValueError("quiet_hours: a string 'HH-HH' (local hours) or 'none'")
    model_triggers = raw.get("model_triggers", True)
    if not isinstance(model_triggers, bool):
        raise ValueError("model_triggers: true or false")
    return ProactiveTable(
        caps=dict(caps),
        quiet_hours=parse_quiet_hours(quiet),
        model_triggers=model_triggers,
        **numbers,
    )


def _number(value: object, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, NUMBER):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    return value


def _action(item: dict[str, Any]) -> Action:
    known = {
        "id", "title", "script", "goal", "value", "cost", "when", "channels", "kind", "lever",
        "max_offers", "window_days", "suppress_days", "outbound", "template", "uplift",
        "purpose",
    }  # fmt: skip
    unknown = sorted(set(item) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown}")
    for name in ("id", "title", "script", "goal", "value"):
        if name not in item:
            raise KeyError(f"{name} missing")
    if item["goal"] not in GOALS:
        raise ValueError(f"goal {item['goal']!r}: use one of {', '.join(GOALS)}")
    kind = item.get("kind", "service")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: use service or sales")
    for name in ("value", "cost", "lever"):
        if name in item and (isinstance(item[name], bool) or not isinstance(item[name], NUMBER)):
            raise ValueError(f"{name} must be a number")
    if float(item["value"]) < 0 or float(item.get("cost", 0)) < 0:
        raise ValueError("value and cost cannot be negative")
    purpose = item.get("purpose")
    if purpose is not None and purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r}: use marketing (or leave it out)")
    if kind == "sales" and purpose not in (None, "marketing"):
        raise ValueError("a sales action's purpose is marketing")
    return Action(
        action_id=str(item["id"]),
        title=str(item["title"]),
        script=str(item["script"]),
        goal=item["goal"],
        value=float(item["value"]),
        cost=float(item.get("cost", 0.0)),
        when=tuple(Condition.parse(c) for c in item.get("when", [])),
        channels=tuple(item.get("channels", ["any"])),
        kind=kind,
        lever=float(item.get("lever", 1.0)),
        max_offers=item.get("max_offers"),
        window_days=item.get("window_days"),
        suppress_days=item.get("suppress_days"),
        outbound=_outbound(item.get("outbound", [])),
        template=str(item.get("template", item["id"])),
        uplift=_uplift(item.get("uplift", 0.05)),
        purpose=purpose,
    )


def _uplift(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, NUMBER) or not -1 <= value <= 1:
        raise ValueError(f"uplift {value!r}: a share of churn, from -1 to 1 (e.g. 0.1)")
    return float(value)


def _outbound(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError('outbound: a list of channels, e.g. ["sms", "email"]')
    bad = [c for c in value if c not in OUTBOUND_CHANNELS]
    if bad:
        raise ValueError(f"outbound: unknown channels {bad}; use {', '.join(OUTBOUND_CHANNELS)}")
    return tuple(value)


# -- contact policy -------------------------------------------------------------------------------


@record  # (made per contact: a frozen dataclass's __init__ costs 4 to 5 times more)
class History:
    """A customer's recent offers and declines: (event time ms, action id), oldest first."""

    offers: tuple[tuple[int, str], ...] = ()
    declines: tuple[tuple[int, str], ...] = ()

    def offered(self, ts: int, action_id: str, keep_ms: int) -> History:
        return History(_recent((*self.offers, (ts, action_id)), ts, keep_ms), self.declines)

    def declined(self, ts: int, action_id: str, keep_ms: int) -> History:
        return History(self.offers, _recent((*self.declines, (ts, action_id)), ts, keep_ms))


def _recent(
    items: tuple[tuple[int, str], ...], now: int, keep_ms: int
) -> tuple[tuple[int, str], ...]:
    return tuple(sorted(i for i in items if now - i[0] < keep_ms))[-32:]


def is_offer(action: Action) -> bool:
    """Sales and retention actions are offers: the per-customer cap counts them."""
    return action.kind == "sales" or action.goal == "retain"


def policy_block(
    action: Action,
    history: History,
    features: dict[str, float],
    channel: str | None,
    now_ms: int,
    policy: ContactPolicy,
) -> str | None:
    """Why the contact policy forbids this action now, or None when it allows it
    (``channel`` None: a proactive action, whose channels are its ``outbound``)."""
    if channel is not None and "any" not in action.channels and channel not in action.channels:
        return f"not offered on {channel}"
    if action.kind == "sales" and features.get("complaints_open", 0.0) >= 1:
        return "sales action while a complaint is open"
    window_ms = int(policy.window_days * DAY_MS)
    recent = [a for t, a in history.offers if now_ms - t < window_ms and t <= now_ms]
    if is_offer(action) and len(recent) >= policy.max_offers:
        return f"{len(recent)} offers in {policy.window_days:g} days (cap {policy.max_offers})"
    if action.max_offers is not None:
        own_ms = int((action.window_days or policy.window_days) * DAY_MS)
        own = [t for t, a in history.offers if a == action.action_id and 0 <= now_ms - t < own_ms]
        if len(own) >= action.max_offers:
            return f"offered {len(own)} times already (cap {action.max_offers})"
    suppress_ms = int((action.suppress_days or policy.suppress_days) * DAY_MS)
    for t, a in history.declines:
        if a == action.action_id and 0 <= now_ms - t < suppress_ms:
            return f"declined {(now_ms - t) / DAY_MS:.0f} days ago"
    return None


# -- learning P(accept) ---------------------------------------------------------------------


def segment(features: dict[str, float], churn_probability: float) -> str:
    """The context an acceptance rate is learned for."""
    band = "high" if churn_probability >= 0.6 else "medium" if churn_probability >= 0.3 else "low"
    complaint = "complaint" if features.get("complaints_open", 0.0) >= 1 else "calm"
    payment = "payfail" if features.get("payment_failures_30d", 0.0) >= 1 else "paid"
    return f"{band}/{complaint}/{payment}"


_LOG4: Final = math.log(4.0)
_SG_MAGICCONST: Final = 1.0 + math.log(4.5)


def beta_draw(rng: random.Random, alpha: float, beta: float) -> float:
    """``rng.betavariate(alpha, beta)``: the same draw from the same stream, as compiled
    code (River's ``proba.Beta.sample`` calls the standard library's, whose two gamma
    draws run in the interpreter: a fifth of a contact's ranking).

    >>> a, b = random.Random(3), random.Random(3)
    >>> [beta_draw(a, x, y) for x, y in ((1.0, 1.0), (0.5, 4.0), (7.0, 2.0))] == [
    ...     b.betavariate(x, y) for x, y in ((1.0, 1.0), (0.5, 4.0), (7.0, 2.0))]
    True
    """
    y = _gamma_draw(rng, alpha)
    if y:
        return y / (y + _gamma_draw(rng, beta))
    return 0.0


def _gamma_draw(rng: random.Random, alpha: float) -> float:
    """``rng.gammavariate(alpha, 1.0)``, step for step (Python 3.11 and 3.12's)."""
    if alpha <= 0.0:
        raise ValueError("gammavariate: alpha and beta must be > 0.0")
    if alpha > 1.0:  # R.C.H. Cheng (1977)
        ainv = math.sqrt(2.0 * alpha - 1.0)
        bbb = alpha - _LOG4
        ccc = alpha + ainv
        while True:
            u1 = rng.random()
            if not 1e-7 < u1 < 0.9999999:
                continue
            u2 = 1.0 - rng.random()
            v = math.log(u1 / (1.0 - u1)) / ainv
            x = alpha * math.exp(v)
            z = u1 * u1 * u2
            r = bbb + ccc * v - x
            if r + _SG_MAGICCONST - 4.5 * z >= 0.0 or r >= math.log(z):
                return x
    if alpha == 1.0:
        return -math.log(1.0 - rng.random())
    while True:  # 0 < alpha < 1: algorithm GS (Kennedy and Gentle)
        u = rng.random()
        b = (math.e + alpha) / math.e
        p = b * u
        x = p ** (1.0 / alpha) if p <= 1.0 else -math.log((b - p) / alpha)
        u1 = rng.random()
        if p > 1.0:
            if u1 <= x ** (alpha - 1.0):
                return x
        elif u1 <= math.exp(-x):
            return x


@mypyc_attr(native_class=False)
class AcceptanceModel:
    """P(accept) per (action, segment): River's ``proba.Beta`` posterior, Beta(1, 1) at first.

    :meth:`sample` draws from it (Thompson sampling), :meth:`mean` is its expectation.
    Each cell's random stream is seeded from (seed, action, segment): reproducible.
    """

    def __init__(self, *, seed: int = 7) -> None:
        self.seed = seed
        self.cells: dict[tuple[str, str], Any] = {}
        self.n_learned = 0

    def _cell(self, action_id: str, seg: str) -> Any:
        cell = self.cells.get((action_id, seg))
        if cell is None:
            key = f"{self.seed}/{action_id}/{seg}".encode()
            cell_seed = int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")
            cell = self.cells[(action_id, seg)] = proba.Beta(1, 1, seed=cell_seed)
        return cell

    def sample(self, action_id: str, seg: str) -> float:
        cell = self._cell(action_id, seg)
        rng = getattr(cell, "_rng", None)
        if type(rng) is not random.Random:  # (a River whose Beta keeps its stream elsewhere)
            return float(cell.sample())
        return beta_draw(rng, float(cell.alpha), float(cell.beta))

    def mean(self, action_id: str, seg: str) -> float:
        cell = self.cells.get((action_id, seg))
        return 0.5 if cell is None else float(cell.alpha / (cell.alpha + cell.beta))

    def learn_one(self, action_id: str, seg: str, accepted: bool) -> None:
        self._cell(action_id, seg).update(accepted)
        self.n_learned += 1


# -- decisions -------------------------------------------------------------------------------


@record  # (made per contact: a frozen dataclass's __init__ costs 4 to 5 times more)
class Decision:
    action: Action | None  # None: control group
    score: float
    p_accept: float
    why: str
    alternatives: tuple[tuple[str, float], ...]
    excluded: Mapping[str, str]
    segment: str
    control: bool = False
    reason: str = ""  # the why in one sentence of plain words, for the agent
    alternative_titles: tuple[str, ...] = ()  # the titles of ``alternatives``, in order


# A condition ``feature >= 1`` (or ``> 0``) on a count, said of the customer.
_HAS: Final[Mapping[str, str]] = {
    "complaints_open": "the customer has an open complaint",
    "complaints_total": "the customer has complained before",
    "payment_failures_30d": "a payment failed in the last 30 days",
    "contacts_7d": "the customer contacted us in the last 7 days",
    "offers_declined": "the customer declined an offer before",
    "offers_accepted": "the customer accepted an offer before",
    "purchases": "the customer has bought from us",
    "cart_abandons": "the customer abandoned a cart",
    "channel_switches_24h": "the customer switched channels today",
}
# Other features, named for a sentence.
_NAMES: Final[Mapping[str, str]] = {
    "tenure_days": "days as a customer",
    "days_since_last": "days since the last interaction",
    "contacts_7d": "contacts in 7 days",
    "complaints_open": "open complaints",
    "complaints_total": "complaints",
    "payment_failures_30d": "failed payments in 30 days",
    "purchases": "purchases",
    "nps": "NPS",
    "csat": "CSAT",
    "sentiment": "sentiment",
}
_OP_WORDS: Final[Mapping[str, str]] = {
    ">": "above",
    ">=": "at least",
    "<": "below",
    "<=": "at most",
    "==": "exactly",
}


# A condition's texts, made once (formatting its number took a third of the ranking's
# time when made for every action at every contact), by the condition object: equal
# conditions may read differently (``x > 0`` and ``x > -0``).  The catalog's conditions
# are made once, at its load; each entry keeps its condition, so an id is never reused.
_TEXTS: Final[dict[int, tuple[Condition, str]]] = {}
_WORDS: Final[dict[int, tuple[Condition, str]]] = {}


def condition_text(c: Condition) -> str:
    """``str(c)``, made once per condition.

    >>> condition_text(Condition.parse("complaints_open >= 1"))
    'complaints_open >= 1'
    >>> condition_text(Condition.parse("nps > -0")), condition_text(Condition.parse("nps > 0"))
    ('nps > -0', 'nps > 0')
    """
    return _once(_TEXTS, c, str)


def _cached_words(c: Condition) -> str:
    return _once(_WORDS, c, condition_words)


def _once(
    cache: dict[int, tuple[Condition, str]], c: Condition, make: Callable[[Condition], str]
) -> str:
    """``make(c)``, kept in ``cache`` under the condition object."""
    entry = cache.get(id(c))
    if entry is None or entry[0] is not c:
        entry = cache[id(c)] = (c, make(c))
    return entry[1]


def condition_words(c: Condition) -> str:
    """A catalog condition as an agent would say it.

    >>> condition_words(Condition.parse("complaints_open >= 1"))
    'the customer has an open complaint'
    >>> condition_words(Condition.parse("churn_probability >= 0.4"))
    'the churn risk is at least 40%'
    >>> condition_words(Condition.parse("tenure_days < 30"))
    'days as a customer below 30'
    """
    if c.feature == "churn_probability":
        return f"the churn risk is {_OP_WORDS[c.op]} {c.value * 100:.0f}%"
    if c.feature in _HAS and (c.op, c.value) in ((">=", 1.0), (">", 0.0)):
        return _HAS[c.feature]
    name = _NAMES.get(c.feature, c.feature.replace("_", " "))
    return f"{name} {_OP_WORDS[c.op]} {c.value:g}"


def plain_reason(action: Action, n_eligible: int) -> str:
    """Why ``action`` is recommended, in one sentence without numbers to decode.

    >>> a = Action("fix", "Fix it", "Let me fix it.", "serve", 10.0,
    ...            when=(Condition.parse("complaints_open >= 1"),))
    >>> plain_reason(a, 3)  # doctest: +NORMALIZE_WHITESPACE
    'The customer has an open complaint; of the 3 actions that fit,
     it is the likeliest to pay off.'
    >>> plain_reason(Action("thanks", "Thank them", "Thank you.", "serve", 1.0), 1)
    'It is the only action that fits this contact.'
    """
    met = " and ".join(map(_cached_words, action.when))
    rest = (
        "it is the only action that fits this contact"
        if n_eligible <= 1
        else f"of the {n_eligible} actions that fit, it is the likeliest to pay off"
    )
    sentence = f"{met}; {rest}." if met else f"{rest}."
    return sentence[0].upper() + sentence[1:]


_WHY: Final = (
    "P(accept) %.2f x value %g x lever %g x %s relevance %.2f - cost %g = %.1f; "
    "eligible: %s; segment %s"
)


def _relevance(goal: str, churn_probability: float) -> float:
    if goal == "retain":
        return churn_probability
    if goal == "grow":
        return 1.0 - churn_probability
    return 1.0


def gain(action: Action, churn_probability: float) -> float:
    """What an accepted action is worth: value x lever x relevance."""
    return action.value * action.lever * _relevance(action.goal, churn_probability)


def _service_worth(action: Action) -> float:
    """A service action's worth without the model: value x lever - cost."""
    return action.value * action.lever - action.cost


def _unscored(refuse: Refusal | None, action: Action) -> str | None:
    """Why ``action`` is left out for a customer who objects to profiling (None: it is
    not): what the consent refuses, an action other than a service one, one whose
    conditions read the churn score."""
    refused = refuse(action) if refuse is not None else None
    if refused is not None:
        return refused
    if action.kind != "service":
        return "profiling objected: service actions only"
    if action.needs_score:
        return "needs the churn score (profiling objected)"
    return None


_CONTROL: Final = hashlib.blake2b(digest_size=8, person=b"cx-control")  # (copied a draw)
_2_TO_MINUS_64: Final = 2.0**-64


def in_control_group(customer_id: str, share: float) -> bool:
    """A fixed draw per customer id: the same customers stay in the control group.

    The draw is the id's keyed digest over 2**64 (computed as the float of the digest,
    correctly rounded, times 2**-64: the same number as the division, without a big
    integer).

    >>> key = b"c1"
    >>> n = int.from_bytes(hashlib.blake2b(key, digest_size=8, person=b"cx-control").digest())
    >>> in_control_group("c1", n / 2**64), in_control_group("c1", math.nextafter(n / 2**64, 1))
    (False, True)
    """
    h = _CONTROL.copy()
    h.update(customer_id.encode())
    return float(int.from_bytes(h.digest(), "big")) * _2_TO_MINUS_64 < share


# a condition, ready to check: (feature, comparison, value, the condition)
Prepared = tuple[str, Callable[[float, float], bool], float, Condition]


class Derived(NamedTuple):
    """What an arbiter derives from its catalog."""

    catalog: Catalog
    keep_ms: int  # how long a customer's contact history counts: the longest window or
    # suppression of the catalog
    checks: list[tuple[Action, tuple[Prepared, ...]]]  # each action, its conditions ready


@mypyc_attr(native_class=False)
class Arbiter:
    """Chooses actions, remembers them until answered, and learns from the answers."""

    HISTORY_CUSTOMERS = 200_000
    PENDING_DECISIONS = 200_000

    def __init__(self, catalog: Catalog, *, seed: int = 7) -> None:
        self.catalog = catalog
        self.model = AcceptanceModel(seed=seed)
        self.history: OrderedDict[str, History] = OrderedDict()
        # alert id -> (customer, action id, segment, decided at event ms)
        self.pending: OrderedDict[str, tuple[str, str, str, int]] = OrderedDict()
        self.ignored = 0
        self.outcomes = 0
        self._derived: Derived | None = None  # (see _from_catalog)

    @property
    def version(self) -> str:
        return f"thompson@{self.model.n_learned}"

    def select_one(
        self,
        customer_id: str,
        features: dict[str, float],
        churn_probability: float,
        channel: str,
        *,
        now_ms: int,
        explore: bool = True,
        refuse: Refusal | None = None,
    ) -> Decision:
        """The action for a contact (``refuse``: what the customer's consent forbids)."""
        seg = segment(features, churn_probability)
        if in_control_group(customer_id, self.catalog.policy.control_group):
            return Decision(None, 0.0, 0.0, "control group: no action", (), {}, seg, control=True)
        eligible, excluded = self.candidates(
            customer_id, features, churn_probability, channel, now_ms=now_ms, refuse=refuse
        )
        scored: list[tuple[float, float, Action]] = []
        for action in eligible:
            p = (
                self.model.sample(action.action_id, seg)
                if explore
                else self.model.mean(action.action_id, seg)
            )
            scored.append((p * gain(action, churn_probability) - action.cost, p, action))
        if not scored:
            return Decision(None, 0.0, 0.0, "every action is excluded", (), excluded, seg)
        scored.sort(key=itemgetter(0), reverse=True)
        best_score, p, best = scored[0]
        met = ", ".join(map(condition_text, best.when)) or "always eligible"
        # (one C call: an f-string's format specs are a method call each, at every contact)
        why = _WHY % (
            p,
            best.value,
            best.lever,
            best.goal,
            _relevance(best.goal, churn_probability),
            best.cost,
            best_score,
            met,
            seg,
        )
        alternatives = tuple((a.action_id, round(s, 2)) for s, _, a in scored[1:4])
        return Decision(
            best,
            round(best_score, 2),
            round(p, 4),
            why,
            alternatives,
            excluded,
            seg,
            reason=plain_reason(best, len(scored)),
            alternative_titles=tuple(a.title for _, _, a in scored[1:4]),
        )

    def candidates(
        self,
        customer_id: str,
        features: dict[str, float],
        churn_probability: float,
        channel: str | None,
        *,
        now_ms: int,
        outbound: bool = False,
        refuse: Refusal | None = None,
    ) -> tuple[list[Action], dict[str, str]]:
        """The actions eligible now, and why each of the others is not (``outbound``:
        only those that can go out proactively, ``channel`` None; ``refuse``: what the
        customer's consent forbids, checked first)."""
        x = {**features, "churn_probability": churn_probability}
        history = self.history.get(customer_id, History())
        eligible: list[Action] = []
        excluded: dict[str, str] = {}
        for action, checks in self._checks():
            if outbound and not action.outbound:
                continue
            refused = refuse(action) if refuse is not None else None
            if refused is not None:
                excluded[action.action_id] = refused
                continue
            failed = None
            for feature, holds, value, condition in checks:  # (Condition.holds, inlined)
                if not holds(x.get(feature, 0.0), value):
                    failed = condition
                    break
            if failed is not None:
                excluded[action.action_id] = "needs " + condition_text(failed)
                continue
            blocked = policy_block(action, history, features, channel, now_ms, self.catalog.policy)
            if blocked is not None:
                excluded[action.action_id] = blocked
                continue
            eligible.append(action)
        return eligible, excluded

    def select_without_model(
        self,
        customer_id: str,
        features: dict[str, float],
        channel: str,
        *,
        now_ms: int,
        refuse: Refusal | None = None,
    ) -> Decision:
        """The action for a customer who objects to profiling: a service action whose
        conditions do not read the churn score, the one worth most (value x lever - cost),
        without the acceptance model or the control group (nothing is learned from it)."""

        eligible, excluded = self.candidates(
            customer_id, features, 0.0, channel, now_ms=now_ms, refuse=partial(_unscored, refuse)
        )
        seg = "unscored"
        if not eligible:
            return Decision(None, 0.0, 0.0, "every action is excluded", (), excluded, seg)
        ranked = sorted(eligible, key=_service_worth, reverse=True)
        best = ranked[0]
        score = _service_worth(best)
        met = ", ".join(map(condition_text, best.when)) or "always eligible"
        rest = (
            "it is the only service action that fits"
            if len(ranked) == 1
            else f"of the {len(ranked)} service actions that fit, it is worth most"
        )
        return Decision(
            best,
            round(score, 2),
            0.0,
            (
                f"profiling objected: chosen without the model; value {best.value:g} x lever "
                f"{best.lever:g} - cost {best.cost:g} = {score:.1f}; eligible: {met}"
            ),
            tuple((a.action_id, round(_service_worth(a), 2)) for a in ranked[1:4]),
            excluded,
            seg,
            reason=f"The customer objects to profiling, so no score is used; {rest}.",
            alternative_titles=tuple(a.title for a in ranked[1:4]),
        )

    def offered(
        self,
        customer_id: str,
        alert_id: str,
        decision: Decision,
        now_ms: int,
        *,
        learn: bool = True,
    ) -> None:
        """The decision was sent: count it against the contact policy, await the answer
        (``learn`` False: the answer teaches nothing, the customer objects to profiling)."""
        if decision.action is None:
            return
        keep = self._keep_ms()
        history = self.history.pop(customer_id, History())
        if is_offer(decision.action):
            history = history.offered(now_ms, decision.action.action_id, keep)
        self.history[customer_id] = history
        if len(self.history) > self.HISTORY_CUSTOMERS:
            self.history.popitem(last=False)
        if not learn:
            return
        self.pending[alert_id] = (customer_id, decision.action.action_id, decision.segment, now_ms)
        if len(self.pending) > self.PENDING_DECISIONS:
            self.pending.popitem(last=False)
            self.ignored += 1

    def outcome_one(self, alert_id: str, action_id: str, response: str, now_ms: int) -> bool:
        """An answer to a recommendation; False when it matches no pending decision."""
        pending = self.pending.pop(alert_id, None)
        if pending is None or pending[1] != action_id:
            if pending is not None:
                self.pending[alert_id] = pending
            return False
        customer_id, _, seg, _ = pending
        self.model.learn_one(action_id, seg, response == "accepted")
        self.outcomes += 1
        if response == "declined" and customer_id:  # "" once erased
            history = self.history.pop(customer_id, History())
            self.history[customer_id] = history.declined(now_ms, action_id, self._keep_ms())
        return True

    def customers(self) -> set[str]:
        """Every customer id this arbiter remembers (history and open recommendations)."""
        return set(self.history) | {owner for owner, *_ in self.pending.values() if owner}

    def forget(self, customer_id: str) -> None:
        """The customer was erased: drop its contact history, and its id from the
        open recommendations (an answer still teaches the acceptance model)."""
        self.history.pop(customer_id, None)
        for alert_id, (owner, action_id, seg, at) in self.pending.items():
            if owner == customer_id:
                self.pending[alert_id] = ("", action_id, seg, at)

    def expire(self, now_ms: int) -> int:
        """Recommendations unanswered past the timeout count as ignored (not accepted)."""
        timeout = int(self.catalog.policy.response_timeout_hours * HOUR_MS)
        expired = 0
        while self.pending:
            alert_id, (_, action_id, seg, at) = next(iter(self.pending.items()))
            if now_ms - at <= timeout:
                break
            del self.pending[alert_id]
            self.model.learn_one(action_id, seg, False)
            expired += 1
        self.ignored += expired
        return expired

    def __getstate__(self) -> dict[str, Any]:
        """What is pickled (the recovery store): not what is derived from the catalog,
        made again from it (nor the ``_keep``/``_keep_of`` an older arbiter kept)."""
        state = dict(self.__dict__)
        for derived in ("_derived", "_keep", "_keep_of"):
            state.pop(derived, None)
        return state

    def _from_catalog(self) -> Derived:
        """What the arbiter reads from its catalog at every contact, worked out once per
        catalog (again when it is another): see :class:`Derived`."""
        catalog = self.catalog
        derived = getattr(self, "_derived", None)  # (a resumed arbiter has none)
        if derived is None or derived.catalog is not catalog:
            p = catalog.policy
            longest = max(
                [p.window_days, p.suppress_days]
                + [a.window_days or 0 for a in catalog.actions]
                + [a.suppress_days or 0 for a in catalog.actions]
            )
            checks = [
                (a, tuple((c.feature, OPS[c.op], c.value, c) for c in a.when))
                for a in catalog.actions
            ]
            derived = self._derived = Derived(catalog, int(longest * DAY_MS), checks)
        return derived

    def _checks(self) -> list[tuple[Action, tuple[Prepared, ...]]]:
        return self._from_catalog().checks

    def _keep_ms(self) -> int:
        return self._from_catalog().keep_ms

    def stats(self) -> dict[str, Any]:
        return {
            "nba_version": self.version,
            "nba_outcomes": self.outcomes,
            "nba_ignored": self.ignored,
            "nba_pending": len(self.pending),
        }
