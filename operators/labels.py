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

``release="horizon"`` (fixed observation window) decides a label as soon as it
is known but hands the example over only once snapshot + H has passed, for
positives and negatives alike.  Otherwise positives (a cancel comes early) would
reach the model long before the negatives of the same moment, and an online
model learns that bias ("delayed feedback").  ``release="immediate"`` hands a
decided example over at once.

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

import bisect
from typing import Final, Generic, NamedTuple, TypeVar

V = TypeVar("V")
_AFTER_EVERY_HORIZON: Final = 2**62


class Matured(NamedTuple, Generic[V]):
    """A labelled snapshot: ``values`` is what was kept at the snapshot (its features).
    (A named tuple: a generic dataclass does not build as a compiled class.)"""

    snapshot_ts: int
    label_ts: int
    label: int
    values: V


class PendingExamples(Generic[V]):
    """Scored snapshots of one customer waiting for their label."""

    __slots__ = ("_decided", "_items", "cap", "dropped", "horizon_ms", "mode", "release")

    def __init__(
        self,
        *,
        mode: str,
        horizon_ms: int,
        cap: int = 4,
        items: tuple[tuple[int, V], ...] = (),
        dropped: int = 0,
        release: str = "immediate",
        decided: tuple[tuple[int, int, int], ...] = (),
    ) -> None:
        if mode not in ("cancel", "inactivity"):
            raise ValueError(f"label mode {mode!r}: use cancel or inactivity")
        if release not in ("immediate", "horizon"):
            raise ValueError(f"release {release!r}: use immediate or horizon")
        self.release = release
        # snapshot ts -> (label, label_ts) for decided labels held until the horizon
        self._decided: dict[int, tuple[int, int]] = (
            {t: (y, lt) for t, y, lt in decided} if decided else _NOTHING_DECIDED
        )
        self.mode = mode
        self.horizon_ms = horizon_ms
        self.cap = cap
        self._items: list[tuple[int, V]] = sorted(items, key=_snapshot_ts)
        self.dropped = dropped

    def __len__(self) -> int:
        return len(self._items)

    def add(self, ts: int, values: V) -> None:
        bisect.insort(self._items, (ts, values), key=_snapshot_ts)  # kept in event-time order
        if len(self._items) > self.cap:
            old_ts, _ = self._items.pop(0)
            self._decided.pop(old_ts, None)
            self.dropped += 1

    def observe(self, ts: int, event_type: str) -> list[Matured[V]]:
        """Label what this later event (at event time ``ts``) decides."""
        return self.observe_decisions(ts, event_type)[0]

    def observe_decisions(
        self, ts: int, event_type: str
    ) -> tuple[list[Matured[V]], list[tuple[int, int, int]]]:
        """:meth:`observe`, and the labels this event decided that are held until
        their horizon (``release="horizon"``), as ``(snapshot ts, label, label ts)``:
        what a model may learn from before the example is handed over.

        >>> p = PendingExamples(mode="inactivity", horizon_ms=10, release="horizon")
        >>> p.add(100, "x")
        >>> p.observe_decisions(104, "page_view")
        ([], [(100, 0, 104)])
        """
        items = self._items
        if not items:
            return [], []
        if (
            self.mode == "cancel"
            and event_type != "cancel"
            and not self._decided
            and ts <= items[0][0] + self.horizon_ms
        ):
            return [], []  # the common case: nothing pending has matured or been decided
        decided: list[tuple[int, V, int, int]] = []  # (snapshot ts, values, label, label ts)
        keep: list[tuple[int, V]] = []
        h = self.horizon_ms
        for snap_ts, values in self._items:
            if ts <= snap_ts:  # not after the snapshot: it says nothing about it
                keep.append((snap_ts, values))
                continue
            expired = ts > snap_ts + h
            known = self._decided.get(snap_ts)
            if known is not None:
                label, label_ts = known
            elif self.mode == "cancel" and event_type == "cancel" and not expired:
                label, label_ts = 1, ts
            elif expired:
                label, label_ts = (0 if self.mode == "cancel" else 1), snap_ts + h
            elif self.mode == "inactivity":
                label, label_ts = 0, ts
            else:
                keep.append((snap_ts, values))
                continue
            decided.append((snap_ts, values, label, label_ts))
        out: list[Matured[V]] = []
        held: list[tuple[int, int, int]] = []
        for snap_ts, values, label, label_ts in decided:
            if self.release == "immediate" or ts > snap_ts + h:
                self._decided.pop(snap_ts, None)
                out.append(Matured(snap_ts, label_ts, label, values))
            else:  # known now, handed over when the window closes
                if self._decided is _NOTHING_DECIDED:
                    self._decided = {}
                if snap_ts not in self._decided:
                    held.append((snap_ts, label, label_ts))
                self._decided[snap_ts] = (label, label_ts)
                keep.append((snap_ts, values))
        keep.sort(key=lambda item: item[0])
        self._items = keep
        return out, held

    def advance(self, now_ts: int) -> list[Matured[V]]:
        """Event time reached ``now_ts`` with no event of this customer: label what expired.

        In cancel mode an expired snapshot saw no cancel (negative); in
        inactivity mode it saw no activity (positive).
        """
        default = 0 if self.mode == "cancel" else 1
        h = self.horizon_ms
        out = []
        for t, v in self._items:
            if now_ts > t + h:
                label, label_ts = self._decided.pop(t, (default, t + h))
                out.append(Matured(t, label_ts, label, v))
        if out:
            self._items = [(t, v) for t, v in self._items if now_ts <= t + h]
        return out

    def next_deadline(self) -> int | None:
        """The event time after which the oldest pending snapshot expires."""
        return self._items[0][0] + self.horizon_ms if self._items else None  # kept in order

    def expire(self) -> list[Matured[V]]:
        """Label everything pending when the customer's state expires unseen."""
        return self.advance(_AFTER_EVERY_HORIZON)

    def clear(self) -> None:
        """Drop everything pending, unlabelled (the customer was erased)."""
        self._items = []
        self._decided = _NOTHING_DECIDED

    def times(self) -> list[int]:
        """The event times of the snapshots pending, oldest first."""
        return [t for t, _ in self._items] if self._items else []

    def latest(self) -> tuple[int, V] | None:
        return self._items[-1] if self._items else None

    def snapshot(
        self,
    ) -> tuple[tuple[tuple[int, V], ...], int, tuple[tuple[int, int, int], ...]]:
        decided = tuple((t, y, lt) for t, (y, lt) in sorted(self._decided.items()))
        return tuple(self._items), self.dropped, decided


_NOTHING_DECIDED: Final[dict[int, tuple[int, int]]] = {}  # shared until a first label is held


def _snapshot_ts(item: tuple[int, object]) -> int:
    return item[0]
