"""Next-best-action: a first rule set of eligible actions, ranked by expected value.

Each action states when it is eligible (conditions on journey features and the
churn probability) and what it is worth.  ``select_one`` scores every eligible
action, ``score = value x relevance - cost`` where relevance is the churn
probability for retention actions and its complement for growth actions, and
explains both the winner and why the others were left out.

>>> d = select_one({"complaints_open": 1.0, "payment_failures_30d": 0.0}, 0.7)
>>> d.action.action_id, [a for a, _ in d.alternatives][:1]
('resolve_complaint', ['retention_offer'])
>>> d.excluded["upsell_upgrade"]
'needs complaints_open == 0'
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """``feature op value``; the feature ``churn_probability`` is the model's score."""

    feature: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"condition on {self.feature}: unknown operator {self.op!r}")

    def holds(self, x: Mapping[str, float]) -> bool:
        return _OPS[self.op](x.get(self.feature, 0.0), self.value)

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Action:
    action_id: str
    title: str
    script: str
    goal: str  # "retain", "serve" or "grow"
    value: float
    cost: float = 0.0
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    score: float
    why: str
    alternatives: tuple[tuple[str, float], ...]
    excluded: Mapping[str, str]


CATALOG: tuple[Action, ...] = (
    Action(
        "resolve_complaint",
        "Resolve the open complaint first",
        "I can see you have an open complaint with us. Let me take ownership of it now and "
        "make sure it is fixed before we finish this call.",
        goal="serve",
        value=60.0,
        when=(Condition("complaints_open", ">=", 1),),
    ),
    Action(
        "payment_help",
        "Help fix the failed payment",
        "I noticed a recent payment did not go through. Shall we update your payment details "
        "together so nothing is interrupted?",
        goal="serve",
        value=45.0,
        when=(Condition("payment_failures_30d", ">=", 1),),
    ),
    Action(
        "retention_offer",
        "Offer the loyalty discount (3 months at 20% off)",
        "You have been with us a while and we value that. I can offer you 20% off for the next "
        "three months, starting today.",
        goal="retain",
        value=80.0,
        cost=15.0,
        when=(Condition("churn_probability", ">=", 0.5),),
    ),
    Action(
        "service_recovery_credit",
        "Apologise and apply a goodwill credit",
        "I am sorry about the trouble you have had recently. I have added a goodwill credit to "
        "your account.",
        goal="retain",
        value=50.0,
        cost=10.0,
        when=(Condition("complaints_total", ">=", 1), Condition("churn_probability", ">=", 0.3)),
    ),
    Action(
        "upsell_upgrade",
        "Suggest the premium plan",
        "Based on how you use our service, the premium plan would give you more for a small "
        "difference. Would you like to hear about it?",
        goal="grow",
        value=40.0,
        cost=2.0,
        when=(Condition("complaints_open", "==", 0), Condition("churn_probability", "<", 0.3)),
    ),
    Action(
        "thank_and_listen",
        "Thank the customer and ask how we can help",
        "Thank you for being with us. Is there anything else I can do for you today?",
        goal="serve",
        value=5.0,
    ),
)


def _relevance(goal: str, churn_probability: float) -> float:
    if goal == "retain":
        return churn_probability
    if goal == "grow":
        return 1.0 - churn_probability
    return 1.0


def select_one(
    features: Mapping[str, float],
    churn_probability: float,
    catalog: tuple[Action, ...] = CATALOG,
) -> Decision:
    """Rank the eligible actions of ``catalog`` for this moment; return the best."""
    x = {**features, "churn_probability": churn_probability}
    scored: list[tuple[float, Action]] = []
    excluded: dict[str, str] = {}
    for action in catalog:
        failed = next((c for c in action.when if not c.holds(x)), None)
        if failed is not None:
            excluded[action.action_id] = f"needs {failed}"
            continue
        score = action.value * _relevance(action.goal, churn_probability) - action.cost
        scored.append((score, action))
    if not scored:
        raise ValueError("no action is eligible: the catalog needs an unconditional fallback")
    scored.sort(key=lambda s: s[0], reverse=True)
    best_score, best = scored[0]
    relevance = _relevance(best.goal, churn_probability)
    met = ", ".join(str(c) for c in best.when) or "always eligible"
    why = (
        f"value {best.value:g} x {best.goal} relevance {relevance:.2f} - cost {best.cost:g} "
        f"= {best_score:.1f}; eligible: {met}"
    )
    alternatives = tuple((a.action_id, round(s, 2)) for s, a in scored[1:4])
    return Decision(best, round(best_score, 2), why, alternatives, excluded)
