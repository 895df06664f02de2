"""Delayed labels in event time.

When a customer is scored, the feature vector of that moment is kept as a
*pending example*.  It is labelled later, only from what happens after it:

- ``cancel`` mode (contractual churn, the default): positive when a ``cancel``
  event arrives within the horizon H after the snapshot, negative once the
  customer's event time passes snapshot + H without one.
- ``inactivity`` mode (non-contractual churn): positive when the customer's
  next event comes more than H after the snapshot (or never, until expiry),
  negative when any event arrives within H.

The features were computed at the snapshot and are never recomputed, so nothing
from after the snapshot leaks into them.  At most ``cap`` examples are pending
per customer; when more are taken the oldest is dropped and counted.

>>> p = PendingExamples(mode="cancel", horizon_ms=10, cap=4)
>>> p.add(100, (1.0, 2.0))
>>> p.add(105, (3.0, 4.0))
>>> p.observe(108, "page_view")
[]
>>> [(e.snapshot_ts, e.label) for e in p.observe(112, "cancel")]
[(100, 0), (105, 1)]
>>> len(p)
0
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.journey import FEATURE_NAMES


@dataclass(frozen=True, slots=True)
class Matured:
    """A labelled snapshot: ``values`` follow ``FEATURE_NAMES``."""

    snapshot_ts: int
    label_ts: int
    label: int
    values: tuple[float, ...]

    def features(self) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, self.values, strict=True))


class PendingExamples:
    """Scored snapshots of one customer waiting for their label."""

    __slots__ = ("_items", "cap", "dropped", "horizon_ms", "mode")

    def __init__(
        self,
        *,
        mode: str,
        horizon_ms: int,
        cap: int = 4,
        items: tuple[tuple[int, tuple[float, ...]], ...] = (),
        dropped: int = 0,
    ) -> None:
        if mode not in ("cancel", "inactivity"):
            raise ValueError(f"label mode {mode!r}: use cancel or inactivity")
        self.mode = mode
        self.horizon_ms = horizon_ms
        self.cap = cap
        self._items: list[tuple[int, tuple[float, ...]]] = list(items)
        self.dropped = dropped

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ts: int, values: tuple[float, ...]) -> None:
        self._items.append((ts, values))
        if len(self._items) > self.cap:
            del self._items[0]
            self.dropped += 1

    def observe(self, ts: int, event_type: str) -> list[Matured]:
        """Label what this later event (at event time ``ts``) decides."""
        out: list[Matured] = []
        keep: list[tuple[int, tuple[float, ...]]] = []
        h = self.horizon_ms
        for snap_ts, values in self._items:
            if ts <= snap_ts:  # not after the snapshot: it says nothing about it
                keep.append((snap_ts, values))
                continue
            expired = ts > snap_ts + h
            if self.mode == "cancel":
                if event_type == "cancel" and not expired:
                    out.append(Matured(snap_ts, ts, 1, values))
                elif expired:
                    out.append(Matured(snap_ts, snap_ts + h, 0, values))
                else:
                    keep.append((snap_ts, values))
            else:
                label = 1 if expired else 0
                out.append(Matured(snap_ts, snap_ts + h if expired else ts, label, values))
        self._items = keep
        return out

    def expire(self) -> list[Matured]:
        """Label everything pending when the customer's state expires unseen."""
        label = 0 if self.mode == "cancel" else 1
        out = [Matured(ts, ts + self.horizon_ms, label, v) for ts, v in self._items]
        self._items = []
        return out

    def latest(self) -> tuple[int, tuple[float, ...]] | None:
        return self._items[-1] if self._items else None

    def snapshot(self) -> tuple[tuple[tuple[int, tuple[float, ...]], ...], int]:
        return tuple(self._items), self.dropped
