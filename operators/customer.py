"""The per-customer step: dedupe, journey, delayed labels, contact moments.

A :class:`CustomerLogic` lives for one customer key.  For each event it drops a
duplicate ``event_id``; folds the event into the journey; labels pending
snapshots the event decides; at a ``contact_start`` emits a
:class:`ScoreRequest` and keeps the snapshot pending; and emits the profile.
It expires ``retention`` after its last event (wall time from the injected
clock), labelling what is still pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bytewax.operators import StatefulLogic

from operators.dedupe import RecentIds
from operators.events import Event
from operators.journey import DAY_MS, FEATURE_NAMES, JourneyState, features, summary
from operators.labels import Matured, PendingExamples
from operators.records import CustomerOut, Example, ProfileUpdate, ScoreRequest

SCORE_TYPES = frozenset(("contact_start",))

CustomerSnapshot = tuple[Any, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerConfig:
    retention_s: float = 90 * 86_400.0
    horizon_ms: int = 30 * DAY_MS
    label_mode: str = "cancel"
    dedupe_size: int = 32
    pending_cap: int = 4


class CustomerLogic(StatefulLogic[Event, CustomerOut, CustomerSnapshot]):
    """Journey state of one customer, in Bytewax's ``on_item``/``snapshot`` shape."""

    def __init__(
        self,
        resume: CustomerSnapshot | None,
        *,
        config: CustomerConfig,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.clock = clock
        if resume is None:
            self.key = ""
            self.journey = JourneyState()
            self.seen = RecentIds(size=config.dedupe_size)
            self.pending = PendingExamples(
                mode=config.label_mode, horizon_ms=config.horizon_ms, cap=config.pending_cap
            )
            self.duplicates = 0
            self.touched_at = clock()
        else:
            key, journey, seen, (items, dropped), duplicates, touched_at = resume
            self.key = key
            self.journey = JourneyState.restore(journey)
            self.seen = RecentIds(size=config.dedupe_size, digests=seen)
            self.pending = PendingExamples(
                mode=config.label_mode,
                horizon_ms=config.horizon_ms,
                cap=config.pending_cap,
                items=items,
                dropped=dropped,
            )
            self.duplicates = duplicates
            self.touched_at = touched_at

    def on_item(self, value: Event) -> tuple[Iterable[CustomerOut], bool]:
        event = value
        if not self.seen.add(event.event_id):
            self.duplicates += 1
            return [], StatefulLogic.RETAIN
        self.key = event.key
        self.touched_at = self.clock()
        out: list[CustomerOut] = [
            self._example(m) for m in self.pending.observe(event.ts, event.type)
        ]
        self.journey.update_one(event)
        if event.type in SCORE_TYPES:
            x = features(self.journey, event.ts)
            latest = self.pending.latest()
            previous = dict(zip(FEATURE_NAMES, latest[1], strict=True)) if latest else None
            self.pending.add(event.ts, tuple(x[name] for name in FEATURE_NAMES))
            out.append(ScoreRequest(self.key, event, x, previous, summary(self.journey, event.ts)))
        out.append(self._profile(event.ts))
        return out, StatefulLogic.RETAIN

    def _example(self, m: Matured) -> Example:
        return Example(self.key, m.features(), m.label, m.snapshot_ts, m.label_ts)

    def _profile(self, now_ms: int) -> ProfileUpdate:
        return ProfileUpdate(
            self.key,
            {
                "journey": summary(self.journey, now_ms),
                "last_event_ts": self.journey.last_ts,
                "pending_examples": len(self.pending),
                "duplicates": self.duplicates,
            },
        )

    def expires_at(self) -> float:
        return self.touched_at + self.config.retention_s

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.expires_at(), tz=UTC)

    def on_notify(self) -> tuple[Iterable[CustomerOut], bool]:
        if self.clock() < self.expires_at():
            return [], StatefulLogic.RETAIN
        return [self._example(m) for m in self.pending.expire()], StatefulLogic.DISCARD

    def snapshot(self) -> CustomerSnapshot:
        return (
            self.key,
            self.journey.snapshot(),
            self.seen.snapshot(),
            self.pending.snapshot(),
            self.duplicates,
            self.touched_at,
        )
