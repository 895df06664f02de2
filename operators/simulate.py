"""A seeded channel simulator: omnichannel journeys shaped by a latent churn propensity.

Pure: it produces events with *event time* (``start_ms`` onwards); pacing them
in wall time is the caller's business.  The same seed gives the same events.
Each customer has a latent churn propensity ``p`` (Beta(2, 5)); the higher it
is, the more payment failures, complaints, repeat contacts, negative sentiment
and channel switching, and the likelier a ``cancel``.  A customer who cancels
is replaced by a new one, so the population stays the same size.

>>> sim = Simulator(SimConfig(customers=50, seed=1, start_ms=0))
>>> events = sim.take(500)
>>> len(events), len({e.event_id for e in events})
(500, 500)
>>> [e.ts for e in events] == sorted(e.ts for e in events)
True
>>> Simulator(SimConfig(customers=50, seed=1, start_ms=0)).take(500) == events
True
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field

from operators.errors import ConfigError
from operators.events import Event

DAY_MS = 86_400_000
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Incident:
    """An outage, a billing error, a late carrier: from ``start_ms`` (event time) for
    ``duration_ms``, a ``share`` of the customers' steps become a complaint on ``topic``
    (on top of the usual complaints), and the complaint raises their open complaints
    like any other.

    >>> Incident.parse("outage@90+120")
    Incident(topic='outage', start_min=90.0, duration_min=120.0, share=0.3)
    >>> Incident.parse("billing@0+30x0.5").share
    0.5
    """

    topic: str
    start_min: float  # minutes of event time after the simulation's start
    duration_min: float
    share: float = 0.3

    @classmethod
    def parse(cls, text: str) -> Incident:
        """``TOPIC@START_MIN+DURATION_MIN[xSHARE]``."""
        topic, at, rest = text.partition("@")
        start, plus, rest = rest.partition("+")
        duration, _, share = rest.partition("x")
        try:
            incident = cls(topic.strip(), float(start), float(duration), float(share or 0.3))
        except ValueError as exc:
            raise ValueError(
                f"incident {text!r}: use TOPIC@START_MIN+DURATION_MIN[xSHARE]"
            ) from exc
        if not (at and plus and incident.topic) or incident.duration_min <= 0:
            raise ValueError(f"incident {text!r}: use TOPIC@START_MIN+DURATION_MIN[xSHARE]")
        if not 0 < incident.share <= 1 or incident.start_min < 0:
            raise ValueError(f"incident {text!r}: start >= 0 and 0 < share <= 1")
        return incident


# The longest mean gap between two events of one customer: a run of a few dozen events a
# customer stays within the event times the parser takes.
MAX_CUSTOMER_GAP_MS = 365 * DAY_MS


def paced_gap_ms(speed: float, customers: int, rate: float) -> int:
    """The mean event-time gap between one customer's events when ``customers`` share
    ``rate`` events a wall second and event time runs ``speed`` times the wall clock.

    >>> paced_gap_ms(21_600, 400, 40.0) / DAY_MS  # the demo's: each customer every 2.5 days
    2.5
    >>> paced_gap_ms(1e12, 500, 100.0)
    Traceback (most recent call last):
    ...
    operators.errors.ConfigError: each customer would act every 5e+15 ms of event time: \
must be 1 ms to 365 days
    """
    gap = speed * 1000.0 * customers / rate
    if not 1.0 <= gap <= MAX_CUSTOMER_GAP_MS:
        raise ConfigError(
            f"each customer would act every {gap:.3g} ms of event time: must be 1 ms to 365 days"
        )
    return int(gap)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    customers: int = 500
    seed: int = 7
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    # Mean event-time gap between two events of one customer.
    customer_gap_ms: int = DAY_MS
    agents_per_queue: int = 3
    queues: tuple[str, ...] = ("care", "billing", "retention")
    incidents: tuple[Incident, ...] = ()
    # Share of the customers who state a consent choice as they join: most withdraw
    # marketing, some refuse SMS contact, a few object to profiling (0: none, and the
    # events are what they were before consent existed).
    consent: float = 0.0
    # A planted bad touchpoint (channel, type), e.g. ("app", "checkout_error"): from
    # ``bad_from_ms`` (event time; 0: from the start) a share of the digital steps become
    # it; each one a customer has had raises their churn hazard by ``bad_effect``
    # (x1 + bad_effect) and the effort they report (a lower CES: 7 is "very easy"), most
    # in the survey that follows half of them.  Surveys then carry csat and ces too.
    # None: off, and the stream is what it was.
    bad_touchpoint: tuple[str, str] | None = None
    bad_share: float = 0.03
    bad_effect: float = 2.0
    bad_from_ms: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.customer_gap_ms <= MAX_CUSTOMER_GAP_MS:
            raise ConfigError(f"customer_gap_ms={self.customer_gap_ms}: must be 1 ms to 365 days")


BAD_SURVEYED = 0.5  # the share of planted bad steps a survey follows

# What a customer who states a consent choice says (cumulative shares)
CONSENT_CHOICES: tuple[tuple[float, dict[str, object]], ...] = (
    (0.6, {"purpose": "marketing", "granted": False}),
    (0.85, {"purpose": "contact", "channel": "sms", "granted": False}),
    (1.0, {"purpose": "profiling", "granted": False}),
)


@dataclass(slots=True)
class _Customer:
    customer_id: str
    p: float  # latent churn propensity
    value: float
    open_complaints: int = 0
    payment_failures: int = 0
    last_channel: str = "web"
    in_contact: str | None = None
    contacts: int = 0
    sentiment: float = 0.0
    tags: list[str] = field(default_factory=list)
    bad_hits: int = 0  # times the planted bad touchpoint happened to them
    bad_last: bool = False  # ... and it was their latest step
    fate_until: int = 0  # a proactive decision set the churn outcome until then
    fate_cancel_at: int | None = None  # ... and, if it churns, when


class Simulator:
    """Generates a stream of valid events in event-time order."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.n = 0
        self._now = config.start_ms
        self.joined = 0
        self.cancelled = 0
        self._heap: list[tuple[int, int, str]] = []
        self._customers: dict[str, _Customer] = {}
        self._latent: dict[str, float] = {}  # every customer ever joined -> churn propensity
        self._pending: dict[str, list[tuple[str, str, dict[str, object]]]] = {}
        for _ in range(config.customers):
            self._join(config.start_ms + self.rng.randrange(config.customer_gap_ms))

    def acceptance(self, customer_id: str, action_id: str) -> float | None:
        """Ground truth: the probability this live customer accepts this action now.

        It follows the customer's latent churn propensity and current troubles, with
        a fixed personal taste per (customer, action) of +-15% no segment can see.
        """
        c = self._customers.get(customer_id)
        if c is None:
            return None
        p = c.p
        base = {
            "resolve_complaint": 0.75 if c.open_complaints else 0.15,
            "payment_help": 0.65 if c.payment_failures else 0.10,
            "retention_offer": 0.10 + 0.60 * p,
            "service_recovery_credit": (0.25 + 0.5 * p) if c.open_complaints else 0.15,
            "upsell_upgrade": 0.45 * (1.0 - p) ** 2,
            "thank_and_listen": 0.90,
        }.get(action_id, 0.20)
        return min(1.0, base * _taste(customer_id, action_id))

    def ground_truth(self) -> list[dict[str, object]]:
        """Every customer simulated so far: latent churn propensity, whether they cancelled,
        and their fixed taste per action (acceptance = the action's base rate x taste)."""
        return [
            {
                "customer_id": cid,
                "churn_propensity": round(p, 6),
                "cancelled": cid not in self._customers,
                "taste": {a: round(_taste(cid, a), 6) for a in ACTIONS},
            }
            for cid, p in self._latent.items()
        ]

    def propensity(self, customer_id: str) -> float | None:
        """The latent churn propensity of a live customer (ground truth)."""
        c = self._customers.get(customer_id)
        return None if c is None else c.p

    def _join(self, at: int) -> None:
        self.joined += 1
        cid = f"cust-{self.config.seed}-{self.joined:06d}"
        c = _Customer(cid, p=self.rng.betavariate(2, 5), value=self.rng.lognormvariate(3.5, 0.8))
        c.sentiment = 0.4 - c.p
        self._customers[cid] = c
        self._latent[cid] = c.p
        share = self.config.consent
        if share > 0 and _uniform(f"{cid}/consent") < share:  # a hash: the random stream stays
            u = _uniform(f"{cid}/consent-choice")
            said = next(attrs for top, attrs in CONSENT_CHOICES if u < top)
            self._pending[cid] = [("app", "consent", {**said, "source": "preference_centre"})]
        self._schedule(cid, at)

    def _schedule(self, cid: str, at: int) -> None:
        heapq.heappush(self._heap, (at, self.n + len(self._heap), cid))

    def take(self, count: int) -> list[Event]:
        return [self.next_event() for _ in range(count)]

    def next_event(self) -> Event:
        ts, _, cid = heapq.heappop(self._heap)
        self._now = ts
        c = self._customers[cid]
        follow = self._pending.get(cid)
        if follow:
            channel, type_, attrs = follow.pop(0)
        else:
            channel, type_, attrs = self._incident(c, ts) or self._step(c)
        self.n += 1
        event = Event(
            event_id=f"sim-{self.config.seed}-{self.n:09d}",
            customer_id=cid,
            anonymous_id=None,
            ts=ts,
            channel=channel,
            type=type_,
            attrs=attrs,
        )
        c.last_channel = channel
        if type_ == "cancel":
            del self._customers[cid]
            self._pending.pop(cid, None)
            self.cancelled += 1
            self._join(ts + self.rng.randrange(self.config.customer_gap_ms))
        elif self._pending.get(cid):
            self._schedule(cid, ts + self.rng.randrange(2, 20) * MINUTE_MS)
        else:
            gap = self.rng.expovariate(1.0 / self.config.customer_gap_ms)
            self._schedule(cid, ts + max(MINUTE_MS, int(gap)))
        return event

    def _sentiment(self, c: _Customer) -> float:
        s = self.rng.gauss(c.sentiment - 0.25 * c.open_complaints, 0.25)
        return round(max(-1.0, min(1.0, s)), 3)

    def _contact(self, c: _Customer) -> tuple[str, str, dict[str, object]]:
        rng, cfg = self.rng, self.config
        c.contacts += 1
        if c.p > 0.45 and rng.random() < c.p:
            queue = "retention"
        elif c.payment_failures:
            queue = "billing"
        else:
            queue = "care"
        if queue not in cfg.queues:
            queue = cfg.queues[0]
        number = cfg.queues.index(queue) * cfg.agents_per_queue + rng.randrange(
            cfg.agents_per_queue
        )
        agent = f"agent-{number + 1}"
        channel = (
            rng.choice(("voice", "voice", "chat")) if c.p > 0.3 else rng.choice(("chat", "voice"))
        )
        contact_id = f"ct-{cfg.seed}-{self.n + 1:09d}"
        attrs: dict[str, object] = {"contact_id": contact_id, "agent_id": agent, "queue": queue}
        end: dict[str, object] = {**attrs, "sentiment": self._sentiment(c)}
        if c.open_complaints and rng.random() < 0.5 * (1.2 - c.p):
            self._pending.setdefault(c.customer_id, []).append(
                ("crm", "complaint_resolved", {"contact_id": contact_id})
            )
            c.open_complaints -= 1
        self._pending.setdefault(c.customer_id, []).append((channel, "contact_end", end))
        return channel, "contact_start", attrs

    def _incident(self, c: _Customer, ts: int) -> tuple[str, str, dict[str, object]] | None:
        """A complaint about an incident going on at ``ts``, if this step is one.

        (No random number is drawn outside incidents: a seed gives the same stream
        as without them until the first one starts.)
        """
        for inc in self.config.incidents:
            start = self.config.start_ms + int(inc.start_min * MINUTE_MS)
            if start <= ts < start + int(inc.duration_min * MINUTE_MS):
                if self.rng.random() < inc.share:
                    c.open_complaints += 1
                    channel = self.rng.choice(("email", "chat", "social", "voice"))
                    attrs = {"topic": inc.topic, "sentiment": self._sentiment(c)}
                    return channel, "complaint", attrs
                return None
        return None

    def treat(
        self,
        customer_id: str,
        ts: int,
        action_id: str | None,
        *,
        horizon_ms: int,
        actions: tuple[str, ...] = (),
        fix: bool = True,
    ) -> Treatment | None:
        """A proactive decision for a live customer at ``ts``: the customer's churn within
        ``horizon_ms`` is decided now, from potential outcomes (ground truth).

        Untreated, the customer would churn within the horizon with probability ``q0``
        (their own cancel hazard over the horizon's steps); treated with action ``a``,
        with ``q0 x (1 - effect(a))`` (:func:`true_effect`: some actions annoy, effect
        < 0).  One uniform draw per (customer, time) decides every potential outcome, so
        what any other choice would have given is known: the benchmarks compare
        programs on the same customers.  None when the customer is gone, or a decision
        already fixed their outcome within this horizon (it is kept).  ``fix=False``
        (nothing was decided: the program let the customer be): the potential outcomes
        are drawn, and the customer lives on as before.
        """
        c = self._customers.get(customer_id)
        if c is None or c.fate_until > ts:
            return None
        steps = max(1.0, horizon_ms / self.config.customer_gap_ms)
        q0 = 1.0 - (1.0 - self._hazard(c)) ** steps
        u = _uniform(f"{customer_id}/{ts}/fate")
        q1 = {a: min(1.0, max(0.0, q0 * (1.0 - true_effect(a, c)))) for a in actions}
        if action_id is not None and action_id not in q1:
            q1[action_id] = min(1.0, max(0.0, q0 * (1.0 - true_effect(action_id, c))))
        churned = u < (q0 if action_id is None else q1[action_id])
        if fix:
            c.fate_until = ts + horizon_ms
            c.fate_cancel_at = (
                ts + int(horizon_ms * (0.05 + 0.6 * _uniform(f"{customer_id}/{ts}/when")))
                if churned
                else None
            )
        return Treatment(
            customer_id=customer_id,
            ts=ts,
            action_id=action_id,
            value=round(c.value * VALUE_MONTHS, 2),
            q0=q0,
            churn_untreated=u < q0,
            churned=churned,
            churn_if={a: u < q for a, q in q1.items()},
            uplift_if={a: q0 - q for a, q in q1.items()},
        )

    def _hazard(self, c: _Customer) -> float:
        """The customer's chance to cancel at a step."""
        hazard = 0.02 * c.p * (1 + c.open_complaints + c.payment_failures)
        return hazard * (1 + self.config.bad_effect * c.bad_hits) if c.bad_hits else hazard

    def _step(self, c: _Customer) -> tuple[str, str, dict[str, object]]:
        rng, p = self.rng, c.p
        leaves = rng.random() < self._hazard(c)
        if c.fate_until:  # a proactive decision fixed the outcome within its horizon
            ts = self._now
            if ts >= c.fate_until:
                c.fate_until, c.fate_cancel_at = 0, None
            else:
                leaves = c.fate_cancel_at is not None and ts >= c.fate_cancel_at
        if leaves:
            return rng.choice(("voice", "web", "app")), "cancel", {"reason": "customer request"}
        digital = "app" if rng.random() < 0.4 else "web"
        weights = (
            ("page_view", 0.30),
            ("search", 0.10),
            ("cart_abandon", 0.03 + 0.05 * p),
            ("purchase", 0.10 * (1.2 - p)),
            ("payment_failed", 0.01 + 0.08 * p),
            ("complaint", 0.01 + 0.12 * p),
            ("contact", 0.05 + 0.15 * p + 0.05 * c.open_complaints),
            ("survey", 0.04),
            ("review", 0.02),
            ("email", 0.03),
        )
        kind = _pick(weights, rng.random())
        bad = self.config.bad_touchpoint
        after_bad, c.bad_last = c.bad_last, False
        # (a hash draw: the random stream is not touched by the planting itself)
        if (
            bad is not None
            and kind in ("page_view", "search", "purchase", "cart_abandon")
            and self._now >= self.config.bad_from_ms
            and _uniform(f"{c.customer_id}/{self.n}/bad") < self.config.bad_share
        ):
            c.bad_hits += 1
            c.bad_last = True
            return bad[0], bad[1], {}
        if after_bad and _uniform(f"{c.customer_id}/{self.n}/asked") < BAD_SURVEYED:
            kind = "survey"  # asked how it went (a survey after a failed step)
        if kind == "contact":
            return self._contact(c)
        if kind == "purchase":
            return digital, "purchase", {"amount": round(c.value * rng.uniform(0.3, 1.5), 2)}
        if kind == "payment_failed":
            c.payment_failures += 1
            return digital, "payment_failed", {"amount": round(c.value, 2)}
        if kind == "complaint":
            c.open_complaints += 1
            channel = rng.choice(("email", "chat", "social", "voice"))
            topic = rng.choice(("billing", "delivery", "outage", "quality"))
            return channel, "complaint", {"topic": topic, "sentiment": self._sentiment(c)}
        if kind == "survey":
            nps = max(0, min(10, round(rng.gauss(9 - 9 * p - c.open_complaints, 1.5))))
            if bad is None:
                return "survey", "survey", {"nps": nps}
            noise = _uniform(f"{c.customer_id}/{self.n}/effort") - 0.5
            hits = min(c.bad_hits, 2) + 2 * after_bad  # the step just taken weighs most
            effort = 2 + 2 * p + 1.5 * hits + c.open_complaints + 2 * noise
            ces = max(1, min(7, round(8 - effort)))  # CES 7: "very easy"
            csat = max(1, min(5, round(4.6 - 2.5 * p - 0.8 * hits + 2 * noise)))
            return "survey", "survey", {"nps": nps, "csat": csat, "ces": ces}
        if kind == "review":
            sentiment = self._sentiment(c)
            # (its noise from a hash: the random stream stays what it was before ratings)
            noise = _uniform(f"{c.customer_id}/{self.n}/rating") - 0.5
            rating = max(1, min(5, round(3 + 2.5 * sentiment + 1.5 * noise)))
            return "social", "review", {"sentiment": sentiment, "rating": rating}
        if kind == "email":
            return "email", "email_reply", {"sentiment": self._sentiment(c)}
        return digital, kind, {}


VALUE_MONTHS = 12  # what a customer's churn loses: a year of their mean purchase


@dataclass(frozen=True, slots=True, kw_only=True)
class Treatment:
    """The ground truth of one proactive decision (see :meth:`Simulator.treat`)."""

    customer_id: str
    ts: int
    action_id: str | None  # None: no action (the hold-out, or the program let it be)
    value: float  # what the customer's churn loses
    q0: float  # P(churn within the horizon) untreated
    churn_untreated: bool  # the potential outcome without any action
    churned: bool  # the outcome of what was done
    churn_if: dict[str, bool]  # the potential outcome of each action
    uplift_if: dict[str, float]  # each action's true uplift for this customer, q0 - q1


def true_effect(action_id: str, c: _Customer) -> float:
    """How much an action cuts this customer's churn, relative (negative: it annoys).

    It depends on the customer's troubles and value, which the engine sees only
    through their events: a failed payment is fixed by help with the payment, an
    open complaint by resolving it, a discount keeps a valuable customer but
    insults one whose complaint is open, an upsell annoys anyone at risk.
    """
    paying = c.payment_failures > 0
    complaining = c.open_complaints > 0
    valuable = c.value > 40.0
    if action_id == "payment_help":
        return 0.6 if paying else 0.05
    if action_id == "resolve_complaint":
        return 0.5 if complaining else 0.0
    if action_id == "service_recovery_credit":
        return 0.3 if complaining else 0.1
    if action_id == "retention_offer":
        if complaining:
            return -0.3
        return 0.45 if valuable else 0.1
    if action_id == "upsell_upgrade":
        return -0.4
    return 0.0


def _uniform(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=b"cx-sim-fate").digest()
    return int.from_bytes(digest, "big") / 2**64


def _pick(weights: tuple[tuple[str, float], ...], u: float) -> str:
    """The name drawn by ``u`` in [0, 1) from relative ``weights``."""
    r = u * sum(w for _, w in weights)
    for name, w in weights:
        if r < w:
            return name
        r -= w
    return weights[-1][0]


ACTIONS = (
    "resolve_complaint",
    "payment_help",
    "retention_offer",
    "service_recovery_credit",
    "upsell_upgrade",
    "thank_and_listen",
)


def _taste(customer_id: str, action_id: str) -> float:
    """A customer's fixed liking for an action: 0.85 to 1.15, from a hash."""
    digest = hashlib.blake2b(f"{customer_id}/{action_id}".encode(), digest_size=8).digest()
    return 0.85 + 0.30 * int.from_bytes(digest, "big") / 2**64


def purchase_log(
    *,
    customers: int = 3000,
    days: int = 540,
    seed: int = 0,
    start_ms: int = 852_076_800_000,  # 1997-01-01
    acquisition_days: int = 90,
    season: float = 0.5,
) -> list[Event]:
    """A purchases-only log, the shape of a retailer's order history: no contacts, no
    complaints, no sentiment, only ``purchase`` events with a ``value``.

    Each customer joins in the first ``acquisition_days`` (a cohort, as a campaign
    brings), buys at a rate of their own (Gamma spread: a few buy often, most rarely)
    and, after each purchase, stops for good with a probability of their own (Beta
    spread): the Pareto/NBD and BG/NBD story.  The rate moves with the season (a yearly
    wave of relative size ``season``), so the base rate of "no purchase within H" moves
    too.  Sorted by time; the same seed gives the same log.

    >>> log = purchase_log(customers=200, days=120, seed=3)
    >>> {e.type for e in log}, log == sorted(log, key=lambda e: e.ts)
    ({'purchase'}, True)
    >>> log == purchase_log(customers=200, days=120, seed=3)
    True
    """
    import math

    rng = random.Random(seed)
    end = days * DAY_MS
    out: list[tuple[int, str, float]] = []
    peak = 2 * math.pi / (365 * DAY_MS)
    for n in range(customers):
        cid = f"p{seed}-{n:06d}"
        rate = rng.gammavariate(0.6, 1.0) / 25.0  # purchases a day, mean 0.024
        stop = rng.betavariate(1.0, 3.0)  # after each purchase
        spend = rng.lognormvariate(3.0, 0.6)
        t = rng.randrange(acquisition_days * DAY_MS)
        while t < end:
            out.append((t, cid, round(spend * rng.lognormvariate(0.0, 0.4), 2)))
            if rng.random() < stop:
                break
            # thinning: the season scales the rate between 1 - season and 1 + season
            while True:
                t += int(rng.expovariate(rate * (1 + season)) * DAY_MS) + DAY_MS // 24
                if rng.random() * (1 + season) <= 1 + season * math.sin(peak * t):
                    break
    out.sort()
    return [
        Event(
            event_id=f"buy-{seed}-{i:08d}",
            customer_id=cid,
            anonymous_id=None,
            ts=start_ms + t,
            channel="web",
            type="purchase",
            attrs={"value": value},
        )
        for i, (t, cid, value) in enumerate(out)
    ]
