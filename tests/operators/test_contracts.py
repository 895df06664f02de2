"""Contract checks run over every stateful logic in operators/ (the River `checks/` idea).

Each logic must: restore from a pickled snapshot into the same state; give
snapshots that later updates cannot change; leave its inputs unmutated; and
answer the Bytewax shape (on_item or on_batch / on_notify / notify_at / snapshot).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest

import operators
from operators.customer import CustomerBucket, CustomerConfig, CustomerLogic
from operators.decide import DecideLogic
from operators.events import Event
from operators.experience import LiveConfig, LiveExperience, TallyBuffer
from operators.identity import IdentityLogic
from operators.journey import FEATURE_NAMES
from operators.logic import BatchLogic, Logic
from operators.proactive import ProactiveConfig
from operators.records import Example, ScoreRequest, Signal, Tally, Watched
from operators.simulate import SimConfig, Simulator
from operators.trends import TrendConfig, TrendLogic
from operators.worker import WorkerLogic
from state.catalog import default_catalog
from tests.conftest import T0

CATALOG = default_catalog()


def _all_logics() -> set[type]:
    found: set[type] = set()
    for info in pkgutil.iter_modules(operators.__path__):
        module = importlib.import_module(f"operators.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, Logic | BatchLogic)
                and obj not in (Logic, BatchLogic)
                and obj.__module__ == module.__name__
            ):
                found.add(obj)
    return found


def _customer_inputs() -> list[Any]:
    return list(Simulator(SimConfig(customers=3, seed=2)).take(120))


def _decide_inputs() -> list[Any]:
    zero = dict.fromkeys(FEATURE_NAMES, 0.0)
    sim_event = next(e for e in _customer_inputs() if e.type == "contact_start")
    items: list[Any] = []
    for i in range(60):
        items.append(Example("c", {**zero, "contacts_7d": float(i % 3)}, i % 2, T0, T0))
        if i % 20 == 0:
            items.append(ScoreRequest("c", sim_event, {**zero, "complaints_open": 1.0}, None, {}))
        if i % 20 == 5:  # a rule fired: a proactive decision, then its outcome
            fired = Event(f"p{i}", "c", None, T0 + i * 86_400_000, "web", "payment_failed", {})
            features = {**zero, "payment_failures_30d": 2.0}
            journey = {"value": 120.0}
            items.append(ScoreRequest("c", fired, features, None, journey, "trigger", ("r", "r")))
            items.append(Watched("c", fired.ts, i % 2))
    return items


def _identity_inputs() -> list[Any]:
    anonymous = [
        Event(f"a{i}", None, "ck-1", T0 + i, "web", "page_view", {"n": i}) for i in range(40)
    ]
    identify = Event("id", "c1", "ck-1", T0 + 50, "voice", "identify", {})
    later = Event("a99", None, "ck-1", T0 + 60, "web", "search", {})
    claim = Event("id2", "c2", "ck-1", T0 + 70, "voice", "identify", {})
    return [*anonymous, identify, later, identify, claim]


def _experience_inputs() -> list[Any]:
    """The workers' tallies of simulated customers, one an event (a planted bad step
    makes surveys carry all three answers), over weeks: windows close, periods mature."""
    sim = Simulator(
        SimConfig(customers=40, seed=4, bad_touchpoint=("app", "checkout_error"), bad_share=0.2)
    )
    tally = TallyBuffer(every_s=0.0)
    logics: dict[str, CustomerLogic] = {}
    config = CustomerConfig(horizon_ms=7 * 86_400_000)
    out: list[Any] = []
    for event in sim.take(3000):
        logic = logics.get(event.key)
        if logic is None:
            logic = logics[event.key] = CustomerLogic(
                None, config=config, clock=lambda: 0.0, tally=tally
            )
        out += [o for o in logic.on_item(event)[0] if isinstance(o, Tally)]
    return out


def _trend_inputs() -> list[Any]:
    """Quiet (one a minute), then a burst whose alert falls in the second half."""
    times = [T0 + i * 60_000 for i in range(300)] + [T0 + 18_000_000 + i * 1000 for i in range(300)]
    return [
        ("complaints|topic=outage", Signal("complaints", t, f"e{i}", "chat", None, "outage", None))
        for i, t in enumerate(times)
    ]


BUILDERS: dict[type, tuple[Callable[[Any], Any], Callable[[], list[Any]]]] = {
    CustomerLogic: (
        lambda resume: CustomerLogic(
            resume,
            config=CustomerConfig(triggers=CATALOG.triggers, proactive=True, score_every=7),
            clock=lambda: 0.0,
            tally=TallyBuffer(every_s=0.0),
        ),
        _customer_inputs,
    ),
    DecideLogic: (
        lambda resume: DecideLogic(
            resume, catalog=CATALOG, clock=lambda: 0.0, proactive=ProactiveConfig(holdout=0.3)
        ),
        _decide_inputs,
    ),
    IdentityLogic: (
        lambda resume: IdentityLogic(resume, clock=lambda: 0.0, retention_s=3600.0),
        _identity_inputs,
    ),
    TrendLogic: (
        lambda resume: TrendLogic(resume, config=TrendConfig(warmup_windows=1), clock=lambda: 0.0),
        _trend_inputs,
    ),
    LiveExperience: (
        lambda resume: LiveExperience(
            resume, config=LiveConfig(every_s=0.0, min_n=5, z=1.0), clock=lambda: 0.0
        ),
        _experience_inputs,
    ),
}


# Logics that never resume, and why (each has a test of its own)
UNRESUMABLE = {
    CustomerBucket: "runs without recovery only (tests/operators/test_customer.py)",
    WorkerLogic: "runs without recovery only (tests/operators/test_worker.py, tests/flows)",
}


def test_every_logic_is_covered_by_the_contract_suite() -> None:
    assert _all_logics() == set(BUILDERS) | set(UNRESUMABLE)


def _feed(logic: Any, item: Any) -> tuple[list[Any], bool]:
    """One item, as Bytewax hands it over: on_item, or a batch of one."""
    if isinstance(logic, BatchLogic):
        out, keep = logic.on_batch([item])
    else:
        out, keep = logic.on_item(item)
    return list(out), keep


@pytest.mark.parametrize("cls", list(BUILDERS), ids=[c.__name__ for c in BUILDERS])
def test_logic_contract(cls: type) -> None:
    build, inputs = BUILDERS[cls]
    items = inputs()
    by_key: dict[str, list[Any]] = {}
    for item in items:
        by_key.setdefault(getattr(item, "key", "one"), []).append(item)
    alerts = 0
    for group in by_key.values():
        logic = build(None)
        half = len(group) // 2
        for item in group[:half]:
            before = copy.deepcopy(item)
            _feed(logic, item)
            assert item == before, "input mutated"
        snap = logic.snapshot()
        frozen = pickle.dumps(snap)
        restored = build(pickle.loads(frozen))
        for item in group[half:]:
            out_a, keep_a = _feed(logic, item)
            out_b, keep_b = _feed(restored, item)
            assert out_a == out_b
            assert keep_a == keep_b
            alerts += len(out_a)
        assert pickle.dumps(snap) == frozen, "snapshot changed by later updates"
        logic.notify_at()
        logic.on_notify()
    assert alerts, "no output after the restore: the inputs exercise too little"
