"""One worker's path in one logic (``operators/worker.py``): the timers, the keyed logics
and the order of the path.  That it sends the sinks what the flow's steps send is tested
in ``tests/flows/test_journey.py``, whose single-worker tests run both shapes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from operators.events import Event, Keyed, Rejected
from operators.logic import DISCARD, RETAIN, BatchLogic, Logic
from operators.records import Alert, ModelStatus, ProfileUpdate, ScoreRequest, Signal, Tally
from operators.worker import ALERTS, STATUSES, STORE_WRITES, Keys, Timers, WorkerLogic, picked

KEYS = st.sampled_from(["a", "b", "c", "d"])
TIMES = st.none() | st.integers(0, 20).map(float)


@given(st.lists(st.tuples(KEYS, TIMES), max_size=60), st.integers(0, 20).map(float))
def test_timers_give_the_soonest_and_each_due_key_once(
    sets: list[tuple[str, float | None]], now: float
) -> None:
    timers, latest = Timers(), dict[str, float]()
    for key, at in sets:
        timers.set(key, at)
        if at is None:
            latest.pop(key, None)
        else:
            latest[key] = at
        assert timers.soonest() == min(latest.values(), default=None)
    due = timers.due(now)
    expected = sorted((t, k) for k, t in latest.items() if t <= now)
    assert due == [k for _, k in expected]
    assert timers.soonest() == min((t for t in latest.values() if t > now), default=None)
    assert len(timers.heap) <= 2 * len(timers.at) + 64  # stale entries do not pile up


class Counter(Logic[str, str, tuple[()]]):
    """Counts its items; asks to be notified at its count; discards itself on "drop"."""

    built = 0

    def __init__(self) -> None:
        Counter.built += 1
        self.n = 0
        self.notified = 0

    def on_item(self, value: str) -> tuple[list[str], bool]:
        if value == "drop":
            return ["dropped"], DISCARD
        self.n += 1
        return [f"{value}{self.n}"], RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(float(self.n), tz=UTC)

    def on_notify(self) -> tuple[list[str], bool]:
        self.notified += 1
        return [f"notified{self.n}"], RETAIN

    def on_eof(self) -> tuple[list[str], bool]:
        return [f"eof{self.n}"], RETAIN

    def snapshot(self) -> tuple[()]:
        return ()


def test_keys_build_a_logic_per_key_again_after_a_discard() -> None:
    keys: Keys[str, str] = Keys(Counter)
    Counter.built = 0
    out = keys.on_items([("a", "x"), ("b", "y"), ("a", "x"), ("a", "drop"), ("a", "x")])
    assert out == ["x1", "y1", "x2", "dropped", "x1"]  # a new logic after the discard
    assert Counter.built == 3
    assert keys.timers.at == {"a": 1.0, "b": 1.0}  # each key's time, read after the batch
    assert keys.on_notify(now=0.5) == []
    assert sorted(keys.on_notify(now=1.0)) == ["notified1", "notified1"]
    assert keys.on_notify(now=1.0) == ["notified1", "notified1"]  # asked again: due again
    assert sorted(keys.on_eof()) == ["eof1", "eof1"]
    keys.on_items([("b", "drop")])
    assert list(keys.logics) == ["a"]
    assert list(keys.timers.at) == ["a"]


def event(i: int, customer: str | None = "c1", anonymous: str | None = None) -> Event:
    return Event(f"e{i}", customer, anonymous, i, "web", "page_view", {})


class Customers(BatchLogic[Keyed, Any, tuple[()]]):
    """A customer step: per event a profile update, a score request, a signal and a tally;
    a notification (at ``due``) writes a profile."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.due: float | None = None

    def on_batch(self, values: list[Keyed]) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        for key, e in values:
            self.seen.append(f"{key}:{e.event_id}")
            out += [
                ProfileUpdate(key, {"event": e.event_id}),
                ScoreRequest(key, e, {}, None, {}),
                Signal("contacts", e.ts, e.event_id, "web", None, None, None),
                Tally((), ()),
            ]
        return out, RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        self.due = None
        return [ProfileUpdate("c1", {"written": "behind"})], RETAIN

    def notify_at(self) -> datetime | None:
        return None if self.due is None else datetime.fromtimestamp(self.due, tz=UTC)

    def snapshot(self) -> tuple[()]:
        return ()


class Model(BatchLogic[Any, Any, tuple[()]]):
    """A model shard that asks to be notified at once after a batch (its backlog), as
    DecideLogic does; ``calls`` records what it was given."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.calls: list[str] = []
        self.backlog = False
        self.more = 0  # notifications that leave something to learn

    def on_batch(self, values: list[Any]) -> tuple[Iterable[Any], bool]:
        self.batches.append(values)
        self.calls.append(f"batch of {len(values)}")
        self.backlog = True
        return [*[Alert(f"a-{v.event.event_id}", {}) for v in values], Tally((), ())], RETAIN

    def on_notify(self) -> tuple[Iterable[Any], bool]:
        self.calls.append("notify")
        self.backlog, self.more = self.more > 0, self.more - 1
        return [ModelStatus("", {"learned": 1})], RETAIN

    def notify_at(self) -> datetime | None:
        return datetime(1970, 1, 1, tzinfo=UTC) if self.backlog else None  # "at once"

    def snapshot(self) -> tuple[()]:
        return ()


class Trend(Logic[Any, Alert, tuple[()]]):
    def on_item(self, value: Any) -> tuple[list[Alert], bool]:
        series, signal = value
        return [Alert(f"t-{series}-{signal.event_id}", {})], RETAIN

    def snapshot(self) -> tuple[()]:
        return ()


class Experience(Logic[Tally, Any, tuple[()]]):
    def __init__(self) -> None:
        self.tallies = 0

    def on_item(self, value: Tally) -> tuple[list[Any], bool]:
        self.tallies += 1
        return [], RETAIN

    def on_eof(self) -> tuple[list[Any], bool]:
        return [Alert(f"x-{self.tallies}", {})], RETAIN

    def snapshot(self) -> tuple[()]:
        return ()


class Identity(Logic[Event, Keyed, tuple[()]]):
    def on_item(self, value: Event) -> tuple[list[Keyed], bool]:
        return [("c1", value)], RETAIN  # every anonymous id is c1's

    def snapshot(self) -> tuple[()]:
        return ()


def worker(customers: Customers, model: Model, live: Experience, now: float = 0.0) -> WorkerLogic:
    def parse(batch: list[Any]) -> list[Any]:
        return [x if isinstance(x, Rejected) else (x.key, x) for x in batch]

    return WorkerLogic(
        parse=parse,
        customers=customers,
        identity=Identity,
        model=lambda: model,
        trend=Trend,
        experience=live,
        model_shards=1,
        wake=lambda: now,
    )


def test_the_path_runs_in_the_steps_order_and_each_sink_picks_its_own() -> None:
    customers, model, live = Customers(), Model(), Experience()
    w = worker(customers, model, live)
    bad = Rejected("s", "1-0", b"{", "not json", "")
    batches, discard = w.on_batch(
        [[event(1), bad], [event(2, customer=None, anonymous="ck"), event(3, customer="c2")]]
    )
    assert discard is RETAIN
    [out] = batches
    # the known events first, the stitched one after them (the flow's merge)
    assert customers.seen == ["c1:e1", "c2:e3", "c1:e2"]
    assert [[v.event.event_id for v in b] for b in model.batches] == [["e1", "e3", "e2"]]
    assert picked([out], STORE_WRITES) == [
        ProfileUpdate("c1", {"event": "e1"}),
        ProfileUpdate("c2", {"event": "e3"}),
        ProfileUpdate("c1", {"event": "e2"}),
    ]
    alerts = [a.alert_id for a in picked([out], ALERTS)]
    assert alerts[:3] == [f"t-contacts|channel=web-e{i}" for i in (1, 3, 2)]  # trends first
    assert alerts[3:] == ["a-e1", "a-e3", "a-e2"]
    assert picked([out], (Rejected,)) == [bad]
    assert live.tallies == 4  # the customers' three, then the model shard's
    # the model shard asked to be notified at once: in this activation, after its batch
    assert model.calls == ["batch of 3", "notify"]
    assert picked([out], STATUSES) == [ModelStatus("m0", {"learned": 1})]  # stamped
    assert w.on_notify() == ([], RETAIN)  # (the same activation: nothing left to do)
    assert w.notify_at() is None  # the activation is over
    [ended], _ = w.on_eof()
    assert [a.alert_id for a in picked([ended], ALERTS)] == ["x-4"]


def test_a_notification_due_with_events_reaches_the_model_in_their_batch() -> None:
    """As the steps do: the customers' events and their checks due by then reach a model
    shard as one batch, and the shard is notified once an activation (its learning after
    scored contacts waits for the next activation)."""
    customers, model, live = Customers(), Model(), Experience()
    w = worker(customers, model, live, now=100.0)
    customers.due = 50.0  # due: its profile written behind
    model.more = 1  # its first notification leaves more to learn
    [out], _ = w.on_batch([[event(1)]])
    assert picked([out], STORE_WRITES) == [
        ProfileUpdate("c1", {"event": "e1"}),
        ProfileUpdate("c1", {"written": "behind"}),
    ]
    assert model.calls == ["batch of 1", "notify"]
    assert w.on_notify() == ([], RETAIN)  # Bytewax's notification in the same activation
    assert model.calls == ["batch of 1", "notify"]
    assert w.notify_at() == datetime(1970, 1, 1, tzinfo=UTC)
    [notified], _ = w.on_notify()  # the next activation
    assert model.calls == ["batch of 1", "notify", "notify"]
    assert picked([notified], STATUSES) == [ModelStatus("m0", {"learned": 1})]


def test_a_due_customer_notification_goes_down_the_path() -> None:
    customers, model, live = Customers(), Model(), Experience()
    w = worker(customers, model, live, now=100.0)
    customers.due = 150.0
    assert w.notify_at() == datetime.fromtimestamp(150.0, tz=UTC)
    assert w.on_notify() == ([], RETAIN)  # not due by the wake clock: nothing runs
    w.notify_at()
    customers.due = 50.0
    [out], _ = w.on_notify()
    assert out == [ProfileUpdate("c1", {"written": "behind"})]
    w.notify_at()
    assert w.on_batch([]) == ([], RETAIN)
