"""Reason codes: model contributions turned into words an agent understands.

>>> phrase("contacts_7d", 3.0)
'3rd contact in 7 days'
>>> phrase("payment_failures_30d", 2.0)
'payment failed twice in 30 days'
>>> phrase("sentiment", 0.4) is None
True
>>> top_reasons({"complaints_open": 1.0, "sentiment": -0.6}, None)
['1 open complaint', 'sentiment negative (-0.60)']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

REASON_COUNT = 3


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# name -> phrase for a notable value, else None.  Order = severity when the model is cold.
_PHRASES: dict[str, Callable[[float], str | None]] = {
    "complaints_open": lambda v: _plural(int(v), "open complaint") if v >= 1 else None,
    "payment_failures_30d": lambda v: (
        f"payment failed {_times(int(v))} in 30 days" if v >= 1 else None
    ),
    "contacts_7d": lambda v: f"{_ordinal(int(v))} contact in 7 days" if v >= 2 else None,
    "sentiment": lambda v: f"sentiment negative ({v:.2f})" if v <= -0.2 else None,
    "sentiment_trend": lambda v: "sentiment falling" if v <= -0.15 else None,
    "nps": lambda v: f"NPS {v:.0f} (detractor)" if v <= 6 else None,
    "csat": lambda v: f"CSAT {v:.0f} of 5" if v <= 2 else None,
    "offers_declined": lambda v: f"declined {_plural(int(v), 'offer')}" if v >= 1 else None,
    "channel_switches_24h": lambda v: (
        f"switched channels {_times(int(v))} in 24 h" if v >= 2 else None
    ),
    "days_since_last": lambda v: f"quiet for {v:.0f} days before this" if v >= 30 else None,
    "cart_abandons": lambda v: f"abandoned {_plural(int(v), 'cart')}" if v >= 2 else None,
    "complaints_total": lambda v: f"{_plural(int(v), 'complaint')} so far" if v >= 2 else None,
    "tenure_days": lambda v: f"new customer ({v:.0f} days)" if v < 30 else None,
}
_KNOWN_FLAG = {
    "nps": "nps_known",
    "csat": "csat_known",
    "sentiment": "sentiment_known",
    "sentiment_trend": "sentiment_known",
}


def phrase(name: str, value: float) -> str | None:
    """The words for one feature's value, or None when it is not worth saying."""
    describe = _PHRASES.get(name)
    return describe(value) if describe is not None else None


def top_reasons(
    features: Mapping[str, float], contributions: Mapping[str, float] | None
) -> list[str]:
    """Up to three reasons, strongest first.

    With ``contributions`` (a trained model), the features that push the risk up
    the most and have something to say; without (a cold model), the notable
    journey signals in order of severity.
    """
    candidates: list[tuple[float, str]] = []
    for rank, name in enumerate(_PHRASES):
        flag = _KNOWN_FLAG.get(name)
        if name not in features or (flag is not None and features.get(flag) == 0.0):
            continue
        text = phrase(name, features[name])
        if text is None:
            continue
        if contributions is None:
            candidates.append((-rank, text))
        else:
            weight = contributions.get(name, 0.0)
            if weight > 0.0:
                candidates.append((weight, text))
    candidates.sort(key=lambda c: c[0], reverse=True)
    return [text for _, text in candidates[:REASON_COUNT]]
