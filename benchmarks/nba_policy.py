"""Next-best-action policy value against an oracle and a random policy.

Simulated customers make contact; at each contact three policies choose from
the same eligible actions (the shipped catalog and contact policy, each policy
with its own contact history): the learned policy (Thompson sampling, learning
only from sampled accept/decline answers), an oracle that knows each
customer's true acceptance probabilities, and a uniform random choice.  Each
decision earns its true expected value, P(accept) x value x lever x relevance
- cost, with relevance from the customer's true churn propensity.  The control
group is off here so all three policies see the same customers.

    python benchmarks/nba_policy.py            # 20,000 decisions
    python benchmarks/nba_policy.py --quick    # 5,000

Prints JSON (``oracle_ratio`` = learned / oracle value, ``random_ratio`` =
random / oracle) as its last line and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import record
from operators.customer import CustomerConfig, CustomerLogic
from operators.nba import Action, Arbiter, Decision, gain, segment
from operators.records import ScoreRequest
from operators.simulate import SimConfig, Simulator
from state.catalog import load_catalog


def run(decisions: int, customers: int, seed: int) -> dict[str, object]:
    base = load_catalog(None)
    catalog = dataclasses.replace(base, policy=dataclasses.replace(base.policy, control_group=0.0))
    sim = Simulator(SimConfig(customers=customers, seed=seed))
    policies = {name: Arbiter(catalog, seed=seed) for name in ("learned", "oracle", "random")}
    answers = random.Random(seed + 1)
    pick = random.Random(seed + 2)
    totals = dict.fromkeys(policies, 0.0)
    late = dict.fromkeys(policies, 0.0)  # the last quarter, once the policy has learned
    logics: dict[str, CustomerLogic] = {}
    config = CustomerConfig(label_mode="external")
    made = 0
    while made < decisions:
        event = sim.next_event()
        logic = logics.setdefault(event.key, CustomerLogic(None, config=config, clock=lambda: 0.0))
        outputs, _ = logic.on_item(event)
        for req in (o for o in outputs if isinstance(o, ScoreRequest)):
            churn = sim.propensity(req.customer_id)
            if churn is None:
                continue
            made += 1
            alert_id = f"al-{made}"
            for name, arbiter in policies.items():
                eligible, excluded = arbiter.candidates(
                    req.customer_id, req.features, churn, event.channel, now_ms=event.ts
                )
                if not eligible:
                    continue

                def truth(
                    action: Action, customer: str = req.customer_id, p_churn: float = churn
                ) -> float:
                    p = sim.acceptance(customer, action.action_id) or 0.0
                    return p * gain(action, p_churn) - action.cost

                if name == "learned":
                    decision = arbiter.select_one(
                        req.customer_id, req.features, churn, event.channel, now_ms=event.ts
                    )
                    action = decision.action
                    assert action is not None
                else:
                    action = max(eligible, key=truth) if name == "oracle" else pick.choice(eligible)
                    seg = segment(req.features, churn)
                    decision = Decision(action, 0.0, 0.0, "", (), excluded, seg)
                value = truth(action)
                totals[name] += value
                if made > decisions * 3 // 4:
                    late[name] += value
                arbiter.offered(req.customer_id, alert_id, decision, event.ts)
                accepted = answers.random() < (
                    sim.acceptance(req.customer_id, action.action_id) or 0
                )
                response = "accepted" if accepted else "declined"
                arbiter.outcome_one(alert_id, action.action_id, response, event.ts)
            if made % 5000 == 0:
                print(f"nba_policy: {made}/{decisions} decisions", file=sys.stderr, flush=True)
    return {
        "oracle_ratio": round(totals["learned"] / totals["oracle"], 4),
        "random_ratio": round(totals["random"] / totals["oracle"], 4),
        "late_oracle_ratio": round(late["learned"] / late["oracle"], 4),
        "late_random_ratio": round(late["random"] / late["oracle"], 4),
        "decisions": made,
        "value_per_decision": {k: round(v / made, 3) for k, v in totals.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="5,000 decisions")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.decisions = 5000
    figures = run(args.decisions, args.customers, args.seed)
    if not args.no_record:
        command = "python benchmarks/nba_policy.py" + (" --quick" if args.quick else "")
        record("nba_policy", command, figures)
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
