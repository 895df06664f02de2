"""Identity stitching: an anonymous visitor becomes a known customer.

Events that carry only an ``anonymous_id`` (a cookie, a device, a phone number
before identification) and ``identify`` events (which carry both ids) go
through an :class:`IdentityLogic` per anonymous id before the journey step.

- Before a link, an anonymous event keeps its anonymous key (the anonymous
  journey), and the logic remembers it (the last :data:`KEPT` of them).
- An ``identify`` links the anonymous id to its ``customer_id``: the
  remembered events go on to the customer, as the customer's (the journey
  folds them in by their own event time), then the ``identify`` itself.
- After the link, every anonymous event of that id goes to the customer.
- Merging is idempotent: the remembered events are handed over once, at the
  link; a repeated ``identify`` only sends itself (the customer's dedupe, by
  ``event_id``, drops it).
- Conflicts: an anonymous id claimed by a second customer stays with the first
  (first claim wins: a shared device or a recycled number must not move one
  customer's history to another).  The second ``identify`` goes to its own
  customer as a plain event, and the conflict is counted.
- Erasure: a link to an erased customer (on the process's :class:`Forgotten`
  list) is dropped at the next event of the anonymous id or on resume; the
  anonymous id is anonymous again.

Plain values in and out, in Bytewax's ``on_item``/``on_notify``/``snapshot``
shape; the state expires ``retention_s`` after its last event (injected clock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from operators.erasure import Forgotten
from operators.events import Event
from operators.logic import DISCARD, RETAIN, Logic

KEPT = 32  # anonymous events remembered before a link (the customer's dedupe window)

Keyed = tuple[str, Event]
IdentitySnapshot = tuple[Any, ...]  # (owner, kept events, conflicts, dropped, touched_at)


def needs_identity(item: Keyed) -> bool:
    """Whether an event goes through the identity step: anonymous-only, or an identify."""
    _, e = item
    return e.anonymous_id is not None and (e.customer_id is None or e.type == "identify")


def by_anonymous_id(item: Keyed) -> Keyed:
    _, e = item
    assert e.anonymous_id is not None
    return e.anonymous_id, e


def stitched_event(item: tuple[str, Keyed]) -> Keyed:
    """The identity step's output without its anonymous key: (customer key, event)."""
    return item[1]


class IdentityLogic(Logic[Event, Keyed, IdentitySnapshot]):
    """One anonymous id: its owner once identified, and its events until then.

    >>> logic = IdentityLogic(None, clock=lambda: 0.0, retention_s=3600.0)
    >>> web = Event("e1", None, "ck-9", 1, "web", "page_view", {})
    >>> [k for k, _ in logic.on_item(web)[0]]
    ['ck-9']
    >>> call = Event("e2", "c1", "ck-9", 2, "voice", "identify", {})
    >>> [(k, e.event_id) for k, e in logic.on_item(call)[0]]
    [('c1', 'e1'), ('c1', 'e2')]
    >>> [k for k, _ in logic.on_item(Event("e3", None, "ck-9", 3, "web", "search", {}))[0]]
    ['c1']
    """

    def __init__(
        self,
        resume: IdentitySnapshot | None,
        *,
        clock: Callable[[], float],
        retention_s: float,
        keep_snapshots: bool = True,
        forgotten: Forgotten | None = None,
    ) -> None:
        self.clock = clock
        self.forgotten = forgotten
        self.retention_s = retention_s
        self.keep_snapshots = keep_snapshots
        self.owner: str | None = None
        self.kept: list[Event] = []
        self.conflicts = 0
        self.dropped = 0  # anonymous events beyond KEPT, not merged
        self.touched_at = clock()
        if resume:
            owner, kept, self.conflicts, self.dropped, self.touched_at = resume
            self.owner, self.kept = owner, list(kept)
            self._unlink_erased()

    def _unlink_erased(self) -> None:
        if self.owner is not None and self.forgotten is not None and self.owner in self.forgotten:
            self.owner = None

    def on_item(self, value: Event) -> tuple[Iterable[Keyed], bool]:
        e = value
        self.touched_at = self.clock()
        self._unlink_erased()
        if e.type == "forget":  # the anonymous id is erased: its journey step erases it
            return [(e.key, e)], DISCARD
        if e.type == "identify" and e.customer_id is not None:
            if self.owner is None:
                self.owner = e.customer_id
            elif self.owner != e.customer_id:
                self.conflicts += 1  # first claim wins; the identify stays with its sender
                return [(e.customer_id, e)], RETAIN
            owner = self.owner
            merged = [(owner, replace(k, customer_id=owner)) for k in self.kept]
            self.kept = []  # handed over: the customer's journey has them now
            return [*merged, (owner, e)], RETAIN
        if self.owner is not None:
            return [(self.owner, replace(e, customer_id=self.owner))], RETAIN
        self.kept.append(e)
        if len(self.kept) > KEPT:
            del self.kept[0]
            self.dropped += 1
        return [(e.key, e)], RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.touched_at + self.retention_s, tz=UTC)

    def on_notify(self) -> tuple[Iterable[Keyed], bool]:
        if self.clock() >= self.touched_at + self.retention_s:
            return [], DISCARD
        return [], RETAIN

    def snapshot(self) -> IdentitySnapshot:
        if not self.keep_snapshots:
            return ()  # nothing resumes without recovery
        return (self.owner, tuple(self.kept), self.conflicts, self.dropped, self.touched_at)
