"""Reason codes: model contributions turned into words an agent understands.

>>> phrase("contacts_7d", 3.0)
'3rd contact in 7 days'
>>> phrase("payment_failures_30d", 2.0)
'payment failed twice in 30 days'
>>> phrase("sentiment", 0.4) is None
True
>>> top_reasons({"complaints_open": 1.0, "sentiment": -0.6}, None)
['1 open complaint', 'sentiment negative (-0.60)']
>>> explain({"complaints_open": 1.0, "purchases": 9.0},
...         {"complaints_open": 0.4, "purchases": -0.9})
(['1 open complaint'], ['9 purchases so far'])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import itemgetter
from typing import Final

# (a static: compiled code would look ``math.log1p`` up by name at every call)
_log1p: Final = math.log1p

REASON_COUNT: Final = 3


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# name -> phrase for a notable value, else None.  Order = severity when the model is cold.
_PHRASES: Final[dict[str, Callable[[float], str | None]]] = {
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
    "gap_ratio_log": lambda v: (
        f"gap {math.expm1(v):.1f}x their usual before this" if v >= _log1p(2.0) else None
    ),
    "activity_trend": lambda v: "less active than usual" if v <= -0.5 else None,
}
# What holds a risk down, when the model says so (its contribution is negative).
_HOLDING: Final[dict[str, Callable[[float], str | None]]] = {
    "purchases": lambda v: f"{int(v)} purchases so far" if v >= 2 else None,
    "n_events_log": lambda v: (
        f"{math.expm1(v):.0f} interactions so far" if math.expm1(v) >= 5 else None
    ),
    "tenure_days": lambda v: f"customer for {v:.0f} days" if v >= 90 else None,
    "sentiment": lambda v: f"sentiment positive ({v:.2f})" if v >= 0.2 else None,
    "nps": lambda v: f"NPS {v:.0f} (promoter)" if v >= 9 else None,
    "csat": lambda v: f"CSAT {v:.0f} of 5" if v >= 4 else None,
    "offers_accepted": lambda v: f"accepted {_plural(int(v), 'offer')}" if v >= 1 else None,
    "activity_trend": lambda v: "more active than usual" if v >= 0.3 else None,
    "gap_ratio_log": lambda v: "back sooner than usual" if v <= _log1p(0.5) else None,
    "complaints_open": lambda v: "no open complaint" if v == 0 else None,
    "payment_failures_30d": lambda v: "no failed payment in 30 days" if v == 0 else None,
}
_KNOWN_FLAG: Final = {
    "nps": "nps_known",
    "csat": "csat_known",
    "sentiment": "sentiment_known",
    "sentiment_trend": "sentiment_known",
}


def phrase(name: str, value: float) -> str | None:
    """The words for one feature's value, or None when it is not worth saying."""
    describe = _PHRASES.get(name)
    return describe(value) if describe is not None else None


def top_reasons(features: dict[str, float], contributions: dict[str, float] | None) -> list[str]:
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


def explain(
    features: dict[str, float], contributions: dict[str, float]
) -> tuple[list[str], list[str]]:
    """``(raising, holding_down)``: up to three reasons each, strongest first.

    The contributions are the model's, against the average customer (log-odds).  A
    feature that pushes the risk up is said with its risk words, one that holds it
    down with its reassuring words; what has nothing worth saying is left out.  A
    card that reads "LOW 13%" so shows why it is low.
    """
    up: list[tuple[float, Callable[[float], str | None], float]] = []
    down: list[tuple[float, Callable[[float], str | None], float]] = []
    for name, value in features.items():
        weight = contributions.get(name, 0.0)
        if weight == 0.0:
            continue
        flag = _KNOWN_FLAG.get(name)
        if flag is not None and features.get(flag) == 0.0:
            continue
        describe = (_PHRASES if weight > 0.0 else _HOLDING).get(name)
        if describe is not None:
            (up if weight > 0.0 else down).append((abs(weight), describe, value))
    # strongest first (in the features' order between equals); the words of the first
    # few only, as many as say something (most features' words would be thrown away)
    up.sort(key=itemgetter(0), reverse=True)
    down.sort(key=itemgetter(0), reverse=True)
    return _first_said(up), _first_said(down)


def _first_said(ranked: list[tuple[float, Callable[[float], str | None], float]]) -> list[str]:
    said: list[str] = []
    for _, describe, value in ranked:
        text = describe(value)
        if text is not None:
            said.append(text)
            if len(said) == REASON_COUNT:
                break
    return said
