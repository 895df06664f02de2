"""The plain values that travel between the steps of the flow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from operators.events import Event

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """A contact moment: score this customer now (features as of the event)."""

    customer_id: str
    event: Event
    features: dict[str, float]
    previous: dict[str, float] | None  # features at the previous scored moment, if pending
    journey: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Example:
    """A matured training example: features of a past snapshot and its label."""

    customer_id: str
    features: dict[str, float]
    label: int
    snapshot_ts: int
    label_ts: int


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """Fields of the customer's 360 profile to overwrite (values JSON-ready)."""

    customer_id: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """A model shard's version and prequential metrics."""

    shard: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert for the agents (``payload`` follows the alert contract)."""

    alert_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """An answer to a recommendation (agent's outcome or a channel's offer_response)."""

    customer_id: str
    alert_id: str
    action_id: str
    response: str
    ts: int


CustomerOut = ScoreRequest | Example | ProfileUpdate | Outcome
DecideIn = ScoreRequest | Example | Outcome
DecideOut = Alert | ModelStatus | ProfileUpdate


def model_input(item: CustomerOut) -> DecideIn | None:
    """What the model shard needs from the customer step (not profile updates)."""
    return item if isinstance(item, ScoreRequest | Example | Outcome) else None


def only(cls: type[T]) -> Callable[[object], T | None]:
    """A selector keeping the items of one type (for ``filter_map`` steps).

    >>> only(int)(3), only(int)("3")
    (3, None)
    """

    def pick(item: object) -> T | None:
        return item if isinstance(item, cls) else None

    return pick
