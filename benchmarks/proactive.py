"""Proactive retention: does the measured uplift hold, and does the program pay?

Simulated customers (``operators.simulate``) live through months of event time.
The engine's operators run over them in a plain loop, as the flow runs them: the
customer step (journeys, the catalog's rules, silences, labels) and the model step
(churn model, model triggers, contact policy, hold-out, the uplift it learns and
acts on).  Each proactive decision goes to the simulator, which fixes the
customer's churn within the horizon from potential outcomes with a true, known
effect per action and customer (``operators.simulate.true_effect``: some actions
annoy some customers), so every other choice's outcome is known too:

- ``learned``: what the program did (its hold-out and its exploration included);
- ``nobody``: no action for anyone (saves 0 by definition);
- ``random``: every triggered customer gets a random one of their eligible actions;
- ``oracle``: the best action for each, or none (the ceiling, for scale).

``value_saved`` is the churn avoided, in the simulated customers' value (a year of
their mean purchase), minus the actions' costs; ``value_expected`` the same from the
true uplifts rather than the drawn outcomes (less noisy).  ``uplift_measured`` and
``uplift_ci`` are the engine's own figures (hold-out against treated, on the
decisions whose horizon has passed); ``uplift_true`` is the mean true uplift of the
same decisions (the action chosen; for the hold-out, the one it would have had).

The figures count the decisions whose horizon has passed (``decisions_matured``, of
``decisions``): ``acted`` on, ``held_out`` (the hold-out: no action, the outcome
measured), ``left_alone`` (a model trigger whose best action was not worth it).
``churn_treated`` and ``churn_control`` are the engine's own (acted on, held out);
``churn_no_program`` is the true untreated churn of every matured decision, the left
alone included (less at risk than those the program acts on, so it is lower than the
hold-out's).  ``by_action`` and ``by_trigger`` hold the same figures per action (with
the true uplift of its decisions) and per trigger.

The cool-down is set to the horizon here, so that a customer's outcome belongs to
one decision.

    python benchmarks/proactive.py             # 3,000 customers, 240 days
    python benchmarks/proactive.py --quick     # 1,500 customers, 150 days

Prints JSON as its last line and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import record
from cxstream.components import customer_config, model_factory, proactive_config
from cxstream.settings import Settings
from operators.customer import CustomerLogic, Watermark
from operators.decide import DecideLogic
from operators.journey import DAY_MS
from operators.proactive import uplift_report
from operators.records import Decided, DecideIn, Example, Outcome, Proactive, ScoreRequest, Watched
from operators.simulate import SimConfig, Simulator, Treatment
from state.catalog import load_catalog

BATCH = 200


@dataclass(frozen=True, slots=True)
class Record:
    decision: Proactive
    truth: Treatment


def run(customers: int, days: int, seed: int, holdout: float) -> dict[str, Any]:
    settings = Settings(proactive_holdout=holdout, proactive_cooldown_days=30.0, horizon_days=30.0)
    catalog = load_catalog(None)
    costs = {a.action_id: a.cost for a in catalog.actions}
    horizon = int(settings.horizon_days * DAY_MS)
    watermark = Watermark()

    def clock() -> float:  # the wall clock follows event time
        return watermark.now / 1000

    config = customer_config(settings, catalog)
    decide = DecideLogic(
        None,
        clock=clock,
        catalog=catalog,
        model=model_factory(settings),
        keep_snapshots=False,
        proactive=proactive_config(settings, catalog),
    )
    sim = Simulator(SimConfig(customers=customers, seed=seed))
    start = sim.config.start_ms
    end = start + days * DAY_MS
    logics: dict[str, CustomerLogic] = {}
    timers: list[tuple[int, str]] = []
    records: list[Record] = []
    n = 0
    started = time.perf_counter()

    def to_model(items: list[DecideIn]) -> None:
        decided = list(decide.on_batch(items)[0])
        while decide.notify_at() is not None and decide.backlog:
            decided += decide.on_notify()[0]
        for out in decided:
            if isinstance(out, Proactive):
                acted = None if out.control or out.action_id is None else out.action_id
                truth = sim.treat(
                    out.customer_id,
                    out.ts,
                    acted,
                    horizon_ms=horizon,
                    actions=out.eligible,
                    fix=out.action_id is not None,  # acted on or held out: the experiment
                )
                if truth is not None:
                    records.append(Record(out, truth))

    def schedule(key: str, logic: CustomerLogic) -> None:
        deadline = logic.next_deadline()
        if deadline is not None:
            heapq.heappush(timers, (deadline, key))

    batch: list[DecideIn] = []  # the model step's inputs, BATCH events at a time (as the flow)
    while True:
        event = sim.next_event()
        if event.ts >= end:
            to_model(batch)
            break
        n += 1
        logic = logics.get(event.key)
        if logic is None:
            logic = logics[event.key] = CustomerLogic(
                None, config=config, clock=clock, watermark=watermark, keep_snapshots=False
            )
        outs = list(logic.on_item(event)[0])
        schedule(event.key, logic)
        now = watermark.now
        while timers and timers[0][0] < now:  # (a horizon is passed once time is beyond it)
            _, key = heapq.heappop(timers)
            due = logics.get(key)
            if due is not None and (d := due.next_deadline()) is not None and d < now:
                outs += due.advance(now)
                schedule(key, due)
        batch += (
            o for o in outs if isinstance(o, ScoreRequest | Example | Decided | Watched | Outcome)
        )
        if n % BATCH == 0:
            to_model(batch)
            batch = []
        if n % 100_000 == 0:
            print(
                f"proactive: {n:,} events, day {(event.ts - start) // DAY_MS} of {days}, "
                f"{len(records):,} decisions, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return summary(records, decide, costs, end=end, horizon=horizon, seed=seed, events=n)


def summary(
    records: list[Record],
    decide: DecideLogic,
    costs: dict[str, float],
    *,
    end: int,
    horizon: int,
    seed: int,
    events: int,
) -> dict[str, Any]:
    matured = [r for r in records if r.decision.ts + horizon < end]
    pick = random.Random(seed + 5)
    saved = {"learned": 0.0, "random": 0.0, "oracle": 0.0, "nobody": 0.0}
    expected = dict.fromkeys(saved, 0.0)
    for r in matured:
        t, d = r.truth, r.decision
        acted = None if d.control or d.action_id is None else d.action_id
        if acted is not None:
            saved["learned"] += t.value * (t.churn_untreated - t.churned) - costs[acted]
            expected["learned"] += t.value * t.uplift_if[acted] - costs[acted]
        options = list(t.uplift_if)
        if options:
            a = pick.choice(options)
            saved["random"] += t.value * (t.churn_untreated - t.churn_if[a]) - costs[a]
            expected["random"] += t.value * t.uplift_if[a] - costs[a]
            best = max(options, key=lambda o: t.value * t.uplift_if[o] - costs[o])
            gain = t.value * t.uplift_if[best] - costs[best]
            if gain > 0:
                saved["oracle"] += t.value * (t.churn_untreated - t.churn_if[best]) - costs[best]
                expected["oracle"] += gain
    experiment = [r for r in matured if r.decision.action_id is not None]
    truth = [r.truth.uplift_if[r.decision.action_id or ""] for r in experiment]
    report = uplift_report(decide.uplift.counts())
    overall = report["overall"]
    uplift_true = sum(truth) / len(truth) if truth else None
    ci = overall["ci"]
    by_action: dict[str, Any] = {}
    for action, measured in report["by_action"].items():
        own = [r.truth.uplift_if[action] for r in experiment if r.decision.action_id == action]
        by_action[action] = {
            "uplift_measured": measured["uplift"],
            "uplift_ci": measured["ci"],
            "uplift_true": round(sum(own) / len(own), 4) if own else None,
            "n_treated": measured["n_treated"],
            "n_control": measured["n_control"],
        }
    return {
        "events": events,
        "decisions": len(records),
        "decisions_matured": len(matured),
        "acted": sum(1 for r in matured if not r.decision.control and r.decision.action_id),
        "held_out": sum(1 for r in matured if r.decision.control),
        "left_alone": sum(1 for r in matured if r.decision.action_id is None),
        "uplift_measured": overall["uplift"],
        "uplift_ci": ci,
        "uplift_true": None if uplift_true is None else round(uplift_true, 4),
        "uplift_true_in_ci": bool(ci and uplift_true is not None and ci[0] <= uplift_true <= ci[1]),
        "churn_treated": overall["churn_treated"],
        "churn_control": overall["churn_control"],
        "churn_no_program": round(sum(r.truth.churn_untreated for r in matured) / len(matured), 4)
        if matured
        else None,
        "value_saved": {k: round(v, 1) for k, v in saved.items()},
        "value_expected": {k: round(v, 1) for k, v in expected.items()},
        "by_action": by_action,
        "by_trigger": {
            k: {
                "uplift_measured": v["uplift"],
                "uplift_ci": v["ci"],
                "n_treated": v["n_treated"],
                "n_control": v["n_control"],
            }
            for k, v in report["by_trigger"].items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--holdout", type=float, default=0.1, help="CX_PROACTIVE_HOLDOUT")
    parser.add_argument("--quick", action="store_true", help="1,500 customers, 150 days")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.days = 1500, 150
    if args.customers < 1 or args.days < 31 or not 0 <= args.holdout < 1:
        parser.error(
            "--customers at least 1, --days more than the 30-day horizon, 0 <= --holdout < 1"
        )
    figures = run(args.customers, args.days, args.seed, args.holdout)
    if not args.no_record:
        command = "python benchmarks/proactive.py" + (" --quick" if args.quick else "")
        record("proactive", command, figures)
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
