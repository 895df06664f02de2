"""The alert an agent receives, built from plain values.

>>> alert_id("contact", "evt-1") == alert_id("contact", "evt-1")
True
>>> band(0.72), band(0.4), band(0.1)
('high', 'medium', 'low')
>>> trend(0.5, None), trend(0.6, 0.4), trend(0.41, 0.4)
('new', 'rising', 'steady')
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from operators.events import Event
from operators.nba import Decision

HIGH: Final = 0.6
MEDIUM: Final = 0.3
TREND_STEP: Final = 0.05


def alert_id(kind: str, event_id: str) -> str:
    """Deterministic from the triggering event: a replay yields the same id."""
    digest = hashlib.blake2b(f"{kind}\x00{event_id}".encode(), digest_size=12).hexdigest()
    return f"al_{digest}"


def band(p: float) -> str:
    return "high" if p >= HIGH else "medium" if p >= MEDIUM else "low"


def trend(p: float, previous: float | None) -> str:
    if previous is None:
        return "new"
    if p - previous > TREND_STEP:
        return "rising"
    if previous - p > TREND_STEP:
        return "falling"
    return "steady"


def risk_of(
    churn_probability: float,
    previous_probability: float | None,
    *,
    model: str,
    reasons: list[str],
    holding_down: list[str] | None = None,
) -> dict[str, Any]:
    """The alert's ``risk`` object (also the profile's, at any scored moment)."""
    return {
        "churn_probability": round(churn_probability, 4),
        "band": band(churn_probability),
        "trend": trend(churn_probability, previous_probability),
        "model": model,
        "reasons": reasons,
        "holding_down": holding_down or [],
    }


def build_alert(
    *,
    kind: str,
    event: Event,
    churn_probability: float | None,
    previous_probability: float | None,
    model: str,
    reasons: list[str],
    journey: dict[str, Any],
    holding_down: list[str] | None = None,
    decision: Decision,
    emitted_at: int,
    policy_version: str = "",
    persona: dict[str, str] | None = None,
    consent: dict[str, dict[str, Any]] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The alert contract of DESIGN.md, as a JSON-ready dict (``churn_probability``
    None: not scored, the customer objects to profiling: ``risk`` is null)."""
    attrs = event.attrs
    alternative_titles = decision.alternative_titles or tuple(a for a, _ in decision.alternatives)
    return {
        "alert_id": alert_id(kind, event.event_id),
        "kind": kind,
        "customer_id": event.key,
        "contact_id": attrs.get("contact_id"),
        "agent_id": attrs.get("agent_id"),
        "queue": attrs.get("queue"),
        "channel": event.channel,
        "event_id": event.event_id,
        "event_ts": event.ts,
        "emitted_at": emitted_at,
        "risk": None
        if churn_probability is None
        else risk_of(
            churn_probability,
            previous_probability,
            model=model,
            reasons=reasons,
            holding_down=holding_down,
        ),
        "journey": journey,
        "persona": persona,
        "next_best_action": None
        if decision.action is None
        else {
            "action_id": decision.action.action_id,
            "title": decision.action.title,
            "script": decision.action.script,
            "score": decision.score,
            "p_accept": decision.p_accept,
            "why": decision.why,
            "reason": decision.reason,
            "alternatives": [
                {"action_id": a, "score": s, "title": t}
                for (a, s), t in zip(decision.alternatives, alternative_titles, strict=True)
            ],
            "excluded": dict(decision.excluded),
            "policy": policy_version,
        },
        "control": decision.control,
        "consent": consent,
        "notes": notes or [],
    }
