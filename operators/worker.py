"""One worker's whole path in one logic: the journey flow's keyed steps, run in place
when a single worker owns every key.

The journey flow (``flows/journey.py``) spreads its work over keyed steps (anonymous
ids, customers, model shards, trend series, the live experience) so that Bytewax can
hand each key to the worker that owns it.  A flow of one worker in one process, without
recovery, owns every key: routing moves nothing, yet each step still costs Bytewax's
handling of each item (its key read, items grouped per key, a Python call per item at
each branch, each touched key asked for its next notification).  :class:`WorkerLogic`
runs the same logics, built the same way, step after step as an activation goes
through the steps, inside one step: the sinks get the same outputs, each key's in its
order.  What depends on the order customers are taken in within an activation may
differ, as it does between one worker and two: the steps take them bucket by bucket (a
hash of their id), this in the order they came, so the exploring policy's draws fall to
other contacts, and where one customer's events pass another's in event time the
process's watermark (late events, labelled periods) sees them in another order.

It keeps what Bytewax keeps for a stateful step: a logic per key, built on the key's
first item and again after it asks to be discarded, each key's next notification
(called when due by the ``wake`` clock, Bytewax's system clock; a key that asks "at
once" is notified in the same activation, once), and the end of input handed down the
path.  Nothing resumes: it is for flows without recovery (its snapshot is empty, as the
customer buckets' are).

>>> from operators.events import Event
>>> from operators.logic import RETAIN
>>> from operators.records import ProfileUpdate
>>> class Echo(BatchLogic):  # a customer step that writes a profile per event
...     def on_batch(self, values):
...         return [ProfileUpdate(k, {"type": e.type}) for k, e in values], RETAIN
...     def snapshot(self): return ()
>>> w = WorkerLogic(
...     parse=lambda batch: [(e.key, e) for e in batch], customers=Echo(),
...     identity=None, model=None, trend=None, experience=None,  # (not reached here)
...     model_shards=1, wake=lambda: 0.0)
>>> outs, _ = w.on_batch([[Event("e1", "c1", None, 1, "web", "page_view", {})]])
>>> outs
[[ProfileUpdate(customer_id='c1', fields={'type': 'page_view'}, refresh_ttl=False)]]
>>> picked(outs, STORE_WRITES), picked(outs, ALERTS)
([ProfileUpdate(customer_id='c1', fields={'type': 'page_view'}, refresh_ttl=False)], [])
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

from operators.decide import with_shard
from operators.events import Event, Keyed, Rejected, Suppressed
from operators.experience import ExperienceOut
from operators.identity import needs_identity
from operators.logic import DISCARD, RETAIN, BatchLogic, KeyedLogic, Logic
from operators.records import (
    _NOT_TO_MODEL,
    Alert,
    ConsentChange,
    CustomerOut,
    DecideIn,
    DecideOut,
    Erase,
    ExperienceIn,
    ExperienceStatus,
    ModelStatus,
    Proactive,
    ProfileUpdate,
    Signal,
    Tally,
    model_shard,
)
from operators.trends import TrendItem, trend_keys_batch

V = TypeVar("V")
W = TypeVar("W")

# what the worker hands the sinks (each sink picks its own: :func:`picked`)
WorkerOut = (
    Rejected
    | Suppressed
    | Alert
    | Proactive
    | ProfileUpdate
    | Erase
    | ConsentChange
    | ModelStatus
    | ExperienceStatus
)
REJECTED: Final = (Rejected,)  # the dead-letter sink's
ALERTS: Final = (Alert, Proactive)  # the alert sink's
STORE_WRITES: Final = (ProfileUpdate, Erase, ConsentChange, Suppressed)  # the profile sink's
STATUSES: Final = (ModelStatus,)  # the model-status sink's
EXPERIENCE: Final = (ExperienceStatus,)  # the experience sink's


def picked(batches: list[list[WorkerOut]], kinds: tuple[type, ...]) -> list[Any]:
    """The outputs of ``kinds`` in the worker's output batches, in order (one sink's)."""
    return [item for batch in batches for item in batch if type(item) in kinds]


class Timers:
    """Keys' next notification times (epoch seconds), the soonest kept at the top of a
    heap; an entry made stale by a later change is dropped when it comes up."""

    __slots__ = ("at", "heap")

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.heap: list[tuple[float, str]] = []

    def set(self, key: str, at: float | None) -> None:
        if at is None:
            self.at.pop(key, None)
            return
        if self.at.get(key) == at:
            return
        self.at[key] = at
        heapq.heappush(self.heap, (at, key))
        if len(self.heap) > 2 * len(self.at) + 64:  # drop the stale entries
            self.heap = [(t, k) for k, t in self.at.items()]
            heapq.heapify(self.heap)

    def soonest(self) -> float | None:
        heap, at = self.heap, self.at
        while heap:
            t, key = heap[0]
            if at.get(key) == t:
                return t
            heapq.heappop(heap)
        return None

    def due(self, now: float) -> list[str]:
        """The keys due by ``now``, soonest first, taken off (each asks again once called)."""
        keys: list[str] = []
        t = self.soonest()
        while t is not None and t <= now:
            _, key = heapq.heappop(self.heap)
            del self.at[key]
            keys.append(key)
            t = self.soonest()
        return keys


def _seconds(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


class Keys(Generic[V, W]):
    """A logic per key, as a Bytewax stateful step keeps them (``logics``: the live ones)."""

    __slots__ = ("build", "logics", "timers")

    def __init__(self, build: Callable[[], KeyedLogic[Any, W, Any]]) -> None:
        self.build = build
        self.logics: dict[str, KeyedLogic[Any, W, Any]] = {}
        self.timers = Timers()

    def get(self, key: str) -> KeyedLogic[Any, W, Any]:
        logic = self.logics.get(key)
        if logic is None:
            logic = self.logics[key] = self.build()
        return logic

    def done(self, key: str, discard: bool) -> None:
        """After a call of ``key``'s logic: dropped, or its next notification noted."""
        if discard:
            del self.logics[key]
            self.timers.set(key, None)
        else:
            self.timers.set(key, _seconds(self.logics[key].notify_at()))

    def on_items(self, items: Iterable[tuple[str, V]]) -> list[W]:
        """Each item to its key's :class:`~operators.logic.Logic`, in order."""
        out: list[W] = []
        touched: dict[str, None] = {}
        for key, value in items:
            logic = self.get(key)
            assert isinstance(logic, Logic)
            ws, discard = logic.on_item(value)
            out.extend(ws)
            if discard:
                self.done(key, DISCARD)
                touched.pop(key, None)
            else:
                touched[key] = None
        for key in touched:  # (asked once a batch, as Bytewax asks)
            self.done(key, RETAIN)
        return out

    def on_notify(self, now: float) -> list[W]:
        out: list[W] = []
        for key in self.timers.due(now):
            ws, discard = self.logics[key].on_notify()
            out.extend(ws)
            self.done(key, discard)
        return out

    def on_eof(self) -> list[W]:
        out: list[W] = []
        for key in list(self.logics):
            ws, discard = self.logics[key].on_eof()
            out.extend(ws)
            self.done(key, discard)
        return out

    def soonest(self) -> float | None:
        return self.timers.soonest()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class WorkerLogic(BatchLogic[list[Any], list[WorkerOut], tuple[()]]):
    """The journey flow's steps after the source, for a worker that owns every key.

    Each value is a batch of what the source handed over (entries, or whole reads); each
    output a batch of what the sinks take (:data:`WorkerOut`, picked per sink with
    :func:`picked`).  ``parse`` is the parse step; ``customers`` the customer step (one
    bucket holds them all here: Bytewax no longer looks at its keys); ``identity``,
    ``model``, ``trend`` build an anonymous id's, a model shard's and a trend series'
    logic; ``experience`` is the live experience (or None: its inputs are dropped, as
    with no experience step).  ``wake`` is the clock notifications come due by.
    """

    def __init__(
        self,
        *,
        parse: Callable[[list[Any]], list[Keyed | Rejected | Suppressed]],
        customers: BatchLogic[Keyed, CustomerOut, Any],
        identity: Callable[[], Logic[Event, Keyed, Any]],
        model: Callable[[], BatchLogic[DecideIn, DecideOut, Any]],
        trend: Callable[[], Logic[TrendItem, Alert, Any]],
        experience: Logic[ExperienceIn, ExperienceOut, Any] | None,
        model_shards: int,
        suffix: str = "",
        topics: frozenset[str] = frozenset(),
        wake: Callable[[], float],
    ) -> None:
        self.parse = parse
        self.customers = customers
        self.identities: Keys[Event, Keyed] = Keys(identity)
        self.shards: Keys[DecideIn, DecideOut] = Keys(model)
        self.trends: Keys[TrendItem, Alert] = Keys(trend)
        self.experience = experience
        self.model_shards = model_shards
        self.suffix = suffix
        self.topics = topics
        self.wake = wake
        self.active = False  # an activation is under way (Bytewax has not asked notify_at)

    # -- the path ---------------------------------------------------------------------
    #
    # An activation goes down the path as Bytewax takes it through the steps: each step
    # takes what the step before handed on in this activation (``on_batch`` or
    # ``on_item``), then the keys due by then are notified (a key that asks "at once"
    # is notified in the same activation: the model shard's contacts are scored before
    # anything is learned, and its learning waits for the next one); what both give
    # goes on to the next step together.

    def _activation(self, batches: Iterable[list[Any]], now: float) -> list[WorkerOut]:
        out: list[WorkerOut] = []
        known: list[Keyed] = []
        anonymous: list[tuple[str, Event]] = []
        for batch in batches:
            for item in self.parse(batch):
                if type(item) is tuple:
                    if needs_identity(item):
                        event = item[1]
                        assert event.anonymous_id is not None
                        anonymous.append((event.anonymous_id, event))
                    else:
                        known.append(item)
                else:
                    assert not isinstance(item, tuple)
                    out.append(item)
        # (stitched events after the others, as the flow's merge has them)
        if anonymous:
            known.extend(self.identities.on_items(anonymous))
        known.extend(self.identities.on_notify(now))
        outs: list[CustomerOut] = []
        if known:
            outs.extend(self.customers.on_batch(known)[0])
        at = _seconds(self.customers.notify_at())
        if at is not None and at <= now:
            outs.extend(self.customers.on_notify()[0])
        self._customers_out(outs, out, now)
        return out

    def _customers_out(
        self, outs: Iterable[CustomerOut], out: list[WorkerOut], now: float | None
    ) -> None:
        """The customer step's outputs down the path (the flow's ``route`` and its
        branches): profile updates to the store; signals through their trend series;
        the model's inputs to their shard; the worker's tallies to the experience.  With
        ``now``, each step's keys due by then are notified after its items (at the end
        of input, None: the end of input is handed down instead)."""
        signals: list[Signal] = []
        tallies: list[Tally] = []
        to_model: dict[str, list[DecideIn]] = {}
        n, suffix = self.model_shards, self.suffix
        for item in outs:
            if isinstance(item, _NOT_TO_MODEL):
                if type(item) is ProfileUpdate:
                    out.append(item)
                elif type(item) is Signal:
                    signals.append(item)
                else:
                    assert type(item) is Tally
                    tallies.append(item)
                continue
            shard = model_shard(item.customer_id, n) + suffix
            batch = to_model.get(shard)
            if batch is None:
                to_model[shard] = [item]
            else:
                batch.append(item)
        if signals:
            out.extend(self.trends.on_items(trend_keys_batch(signals, self.topics)))
        if now is not None:
            out.extend(self.trends.on_notify(now))
        for shard, items in to_model.items():
            logic = self.shards.get(shard)
            assert isinstance(logic, BatchLogic)
            self._model_out(shard, logic.on_batch(items), out, tallies)
        if now is not None:
            for shard in self.shards.timers.due(now):
                self._model_out(shard, self.shards.logics[shard].on_notify(), out, tallies)
        self._experience(tallies, out)
        live = self.experience
        if now is not None and live is not None:
            at = _seconds(live.notify_at())
            if at is not None and at <= now:
                out.extend(live.on_notify()[0])

    def _experience(self, tallies: list[Tally], out: list[WorkerOut]) -> None:
        """The tallies to the live experience, if kept (the customers' before the model
        shards')."""
        if self.experience is not None:
            for tally in tallies:
                out.extend(self.experience.on_item(tally)[0])

    def _model_out(
        self,
        shard: str,
        called: tuple[Iterable[DecideOut], bool],
        out: list[WorkerOut],
        tallies: list[Tally],
    ) -> None:
        """What a call of a model shard gave, stamped with it: tallies to the experience
        (after the customers' ones), the rest to the sinks; the shard dropped if it asked,
        else its next notification noted."""
        decided, discard = called
        self.shards.done(shard, discard)
        for item in decided:
            stamped = with_shard((shard, item))
            if type(stamped) is Tally:
                tallies.append(stamped)
            else:
                assert not isinstance(stamped, Tally)
                out.append(stamped)

    # -- Bytewax's calls ----------------------------------------------------------------
    #
    # Bytewax calls ``on_batch`` when input came, then ``on_notify`` if ``notify_at``
    # has come, then (once the activation is done) ``notify_at``.  The activation's
    # notifications run in ``on_batch`` with its items (see above), so an ``on_notify``
    # after it in the same activation has nothing left to do.

    def on_batch(self, values: list[list[Any]]) -> tuple[Iterable[list[WorkerOut]], bool]:
        self.active = True
        out = self._activation(values, self.wake())
        return ([out] if out else []), RETAIN

    def on_notify(self) -> tuple[Iterable[list[WorkerOut]], bool]:
        if self.active:  # (this activation's notifications ran with its items)
            return [], RETAIN
        self.active = True
        out = self._activation((), self.wake())
        return ([out] if out else []), RETAIN

    def on_eof(self) -> tuple[Iterable[list[WorkerOut]], bool]:
        """The end of input, down the path: each step's, after what the steps before it
        handed on at theirs."""
        out: list[WorkerOut] = []
        stitched = self.identities.on_eof()
        if stitched:
            self._customers_out(self.customers.on_batch(stitched)[0], out, None)
        self._customers_out(self.customers.on_eof()[0], out, None)
        tallies: list[Tally] = []
        for shard in list(self.shards.logics):
            self._model_out(shard, self.shards.logics[shard].on_eof(), out, tallies)
        out.extend(self.trends.on_eof())
        self._experience(tallies, out)
        if self.experience is not None:
            out.extend(self.experience.on_eof()[0])
        return ([out] if out else []), RETAIN

    def notify_at(self) -> datetime | None:
        self.active = False  # (Bytewax asks once an activation is done)
        times = [
            t
            for t in (
                _seconds(self.customers.notify_at()),
                self.identities.soonest(),
                self.shards.soonest(),
                self.trends.soonest(),
                None if self.experience is None else _seconds(self.experience.notify_at()),
            )
            if t is not None
        ]
        if not times:
            return None
        soonest = min(times)
        return _EPOCH if soonest <= 0 else datetime.fromtimestamp(soonest, tz=UTC)

    def snapshot(self) -> tuple[()]:
        return ()  # (no recovery: nothing resumes)
