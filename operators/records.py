"""The plain values that travel between the steps of the flow."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard, TypeVar

from operators.consent import Consents
from operators.events import Event, Suppressed
from operators.values import record

T = TypeVar("T")


@record
class ScoreRequest:
    """A moment to score this customer (features as of ``event.ts``).

    ``moment``: ``contact`` (a contact starts: the agent's alert), ``event`` (every K-th
    event, ``score_every``) or ``silence`` (no event: the customer's silence has grown
    long for their own cadence; ``event`` is then a synthetic one of type ``silence`` at
    that time, on the customer's last channel, whose id names the customer and the time;
    ``journey`` is then empty: no alert is built) or ``trigger`` (a catalog rule fired on
    ``event``: ``trigger`` names it).  Every moment but a contact may raise a proactive
    alert (see :mod:`operators.proactive`); ``tz`` is the customer's time zone, if said;
    ``consent`` the customer's consent statements (None: none, the defaults hold).
    """

    customer_id: str
    event: Event
    features: dict[str, float]
    previous: dict[str, float] | None  # features at the previous scored moment, if pending
    journey: dict[str, Any]
    moment: str = "contact"
    trigger: tuple[str, str] | None = None  # a rule that fired: (name, its words)
    tz: str | None = None
    consent: Consents | None = None


@record
class Example:
    """A matured training example: features of a past snapshot and its label."""

    customer_id: str
    features: dict[str, float]
    label: int
    snapshot_ts: int
    label_ts: int


@record
class Decided:
    """A pending snapshot's label, decided before its horizon (a return in inactivity
    mode, a cancel in cancel mode): the example itself follows at the horizon, but a
    model may count the decision now (see ``operators.refit``)."""

    customer_id: str
    snapshot_ts: int
    label: int
    label_ts: int


@record
class Watched:
    """The label of a moment a catalog rule fired (not a training example): churned
    within the horizon after ``snapshot_ts`` or not.  The model shard counts it for the
    uplift if it acted (or held out) at that moment; a silence's or a scored event's
    label comes as its :class:`Example`."""

    customer_id: str
    snapshot_ts: int
    label: int


@record
class Proactive:
    """A proactive decision (a trigger fired and the contact policy let it through).

    ``action_id`` None: no action is worth it (expected value not positive, or none
    eligible): nothing is written.  ``control``: the hold-out; ``outbound`` is written
    (for the record), ``alert`` is None.  Otherwise both are written, once per
    ``alert_id``.  ``eligible`` and ``value`` are for the benchmarks' counterfactuals.
    """

    alert_id: str
    customer_id: str
    trigger: dict[str, Any]
    ts: int
    action_id: str | None
    control: bool
    expected_value: float
    alert: dict[str, Any] | None
    outbound: dict[str, Any] | None
    eligible: tuple[str, ...] = ()


@record
class ProfileUpdate:
    """Fields of the customer's 360 profile to overwrite (values JSON-ready).

    ``refresh_ttl``: also push the profile's expiry back to a full retention
    period (the customer step asks for it at most once an hour per customer).
    """

    customer_id: str
    fields: dict[str, Any]
    refresh_ttl: bool = False


@record
class ModelStatus:
    """A model shard's version and prequential metrics."""

    shard: str
    fields: dict[str, Any]


@record
class Alert:
    """An alert for the agents (``payload`` follows the alert contract)."""

    alert_id: str
    payload: dict[str, Any]


@record
class Outcome:
    """An answer to a recommendation (agent's outcome or a channel's offer_response)."""

    customer_id: str
    alert_id: str
    action_id: str
    response: str
    ts: int


@record
class Erase:
    """Erase this customer key from every store (a ``forget`` event, or an event
    of an erased customer that got past the parse step: its entries are swept again).

    ``linked``: the anonymous ids seen on the customer's events (identify and the
    anonymous history it merged): they are erased with it."""

    customer_id: str
    linked: tuple[str, ...] = ()


@record
class ConsentChange:
    """A consent statement that changed what the customer's latest says (a ``consent``
    event): for the audit trail, and for the model shard, which drops what it holds to
    learn from a customer who now ``objected`` to profiling."""

    customer_id: str
    event_id: str
    ts: int
    purpose: str
    channel: str | None
    granted: bool
    source: str  # the statement's attr source (free text), else the event's channel
    objected: bool  # the customer objects to profiling, after this statement
    via: str = ""  # the channel of the event that said it


@record
class Signal:
    """A complaint or a contact, as the trends see it (no customer id, no text)."""

    metric: str  # complaints | contacts
    ts: int
    event_id: str
    channel: str
    queue: str | None
    topic: str | None
    sentiment: float | None


@record
class Rating:
    """A customer's answers (``nps`` 0-10, ``csat`` 1-5, ``ces`` 1-7: None if not given),
    as the experience view sees them: the touchpoint rated (``channel·type``: for a
    survey or review, the customer's touchpoint before it), its channel, the queue of
    the customer's latest contact, and the change of their CES since their previous
    answer (no customer id, no text).  Counted in the worker's tally."""

    ts: int
    event_id: str
    channel: str
    touchpoint: str
    queue: str | None
    nps: float | None
    csat: float | None
    ces: float | None
    ces_change: float | None = None


@record
class Rated:
    """A customer's survey answers (the eight counts of ``Kpis.row``, the hour of event
    time they came), to the customer's model shard: it counts them by the persona it
    gave the customer at their latest contact (the one on the agent's card), for the
    experience's series by persona.  No customer id leaves the model step with them."""

    customer_id: str
    hour: int
    counts: tuple[float, ...]


@record
class Tally:
    """What a worker's customers did for the experience view since its last tally (no
    customer id): ``steps`` ((from, to), count, some gaps in ms); ``sentiment``
    (touchpoint, count, sum of the change in the customer's sentiment at the next text
    after it); ``ratings`` (hour of event time, channel, touchpoint, queue, the eight
    counts of the answers, CES changes: count, sum); the customer-periods labelled:
    ``periods`` (how many, how many churned), ``touched`` (touchpoint, periods that had
    it, churned of them) and ``took`` ((from, to), periods that took the step, churned
    of them).  A model shard's tally has only ``personas`` (hour of event time, the
    persona (``m0/p2``: the shard's cluster), its current name, the eight counts: the
    answers of the customers it gave that persona at their latest contact)."""

    steps: tuple[tuple[tuple[str, str], int, tuple[int, ...]], ...]
    sentiment: tuple[tuple[str, int, float], ...]
    ratings: tuple[tuple[int, str, str, str | None, tuple[float, ...], int, float], ...] = ()
    periods: tuple[int, int] = (0, 0)
    touched: tuple[tuple[str, int, int], ...] = ()
    took: tuple[tuple[tuple[str, str], int, int], ...] = ()
    personas: tuple[tuple[int, str, str, tuple[float, ...]], ...] = ()  # from a model shard


@record
class ExperienceStatus:
    """The experience step's counts (see ``operators.experience.LiveExperience``), for
    the supervisors' view: written to ``cx:experience`` under ``name``."""

    name: str
    counts: dict[str, Any]


ExperienceIn = Tally

CustomerOut = (
    ScoreRequest
    | Example
    | Decided
    | Watched
    | ProfileUpdate
    | Outcome
    | Erase
    | Signal
    | ConsentChange
    | Tally
    | Rated
)
DecideIn = ScoreRequest | Example | Decided | Watched | Outcome | Erase | ConsentChange | Rated
DecideOut = Alert | ModelStatus | ProfileUpdate | Erase | Proactive | ConsentChange | Tally
# what the customer-store sink writes (a consent change: to the audit trail)
StoreWrite = ProfileUpdate | Erase | Suppressed | ConsentChange


# isinstance with constant tuples: ``A | B`` builds a union at every call (these run
# for every item of every batch)
_MODEL_INPUT = (ScoreRequest, Example, Decided, Watched, Outcome, Erase, ConsentChange, Rated)
_NOT_TO_MODEL = (ProfileUpdate, Signal, Tally)


def model_input(item: CustomerOut) -> DecideIn | None:
    """What the model shard needs from the customer step (not profile updates)."""
    return item if isinstance(item, _MODEL_INPUT) else None


def only(cls: type[T]) -> Callable[[object], T | None]:
    """A selector keeping the items of one type (for ``filter_map`` steps).

    >>> only(int)(3), only(int)("3")
    (3, None)
    """

    def pick(item: object) -> T | None:
        return item if isinstance(item, cls) else None

    return pick


ToModel = tuple[str, DecideIn]


def route_batch(
    items: Iterable[tuple[str, CustomerOut]], model_shards: int, suffix: str = ""
) -> list[ToModel | ProfileUpdate | Signal | ExperienceIn]:
    """The customer step's outputs, routed: model inputs keyed by model shard
    (``m<i>``, see :func:`model_shard`, then ``suffix``: see
    ``Settings.model_suffix``), profile updates, trend signals and the experience's
    records as they are.  An
    :class:`Erase` goes to the model shard first (it holds the customer's open
    recommendations) and from there to the store.

    >>> from operators.events import Event
    >>> e = Event("e1", "c1", None, 0, "web", "page_view", {})
    >>> routed = route_batch(
    ...     [("c1", ProfileUpdate("c1", {})), ("c1", Outcome("c1", "al", "act", "accepted", 0))], 1
    ... )
    >>> [r[0] if isinstance(r, tuple) else type(r).__name__ for r in routed]
    ['ProfileUpdate', 'm0']
    """
    out: list[ToModel | ProfileUpdate | Signal | ExperienceIn] = []
    for _key, item in items:
        if isinstance(item, _NOT_TO_MODEL):
            out.append(item)
        else:
            out.append((model_shard(item.customer_id, model_shards) + suffix, item))
    return out


def model_shard(customer_id: str, model_shards: int) -> str:
    """The model shard that scores and learns from a customer.

    A hash of its own, not the event shard's crc32: a process that owns a set of
    event shards (CX_READ_SHARDS) still spreads its customers over every model
    shard (with crc32 mod both, shards 0 and 2 of 4 would all land on m0 of 2).

    >>> model_shard("c1", 1)
    'm0'
    >>> from operators.events import shard_of
    >>> sorted({model_shard(f"c{i}", 2) for i in range(64) if shard_of(f"c{i}", 4) in (0, 2)})
    ['m0', 'm1']
    """
    if model_shards == 1:
        return "m0"
    digest = hashlib.blake2b(customer_id.encode("utf-8"), digest_size=4, person=b"cx-model")
    return f"m{int.from_bytes(digest.digest(), 'big') % model_shards}"


Routed = ToModel | ProfileUpdate | Signal | ExperienceIn


def is_to_model(item: Routed) -> TypeGuard[ToModel]:
    return type(item) is tuple


def is_signal_or_tally(item: Routed) -> TypeGuard[Signal | Tally]:
    """What the trends and the experience count (few: a worker's tally each quarter second)."""
    return type(item) is Signal or type(item) is Tally


def is_tally(item: Signal | Tally) -> TypeGuard[Tally]:
    return type(item) is Tally
