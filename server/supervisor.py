"""The supervisor view, sans I/O: what the ``stats`` frame tells supervisors.

The server feeds a :class:`SupervisorView` every alert it reads from
``cx:alerts`` (``observe``) and, every few seconds, the agents' answer
counts from ``cx:nba:answers`` (``answers``); ``frame`` builds the ``stats``
frame sent to supervisors:

- ``risk``: the churn risk of the contacts of the last hour (by the time their
  alerts were written; the server reads the last hour back when it starts):
  counts by band and a histogram of ten bins, and ``unscored``: the contacts of
  customers who object to profiling (no risk: counted in ``contacts``, not in a band);
- ``acceptance``: per action and per agent, answers (accepted, declined,
  not_relevant) and the acceptance rate, accepted over answered;
- ``trends``: the latest trend alerts (a supervisor who signs in late sees
  what is going on);
- ``proactive``: the proactive program's proof, from the model shards' status
  (``cx:model:<shard>`` field ``proactive``, fed with ``programs``): uplift overall,
  per action and per trigger with its 95% interval, and the funnel (triggered,
  blocked by the contact policy, skipped, acted, held out, delivered, opened,
  clicked).  Proactive alerts do not count as contacts in ``risk``;
- ``experience``: the live experience, from the flow's counts (``cx:experience``, fed
  with ``experience``): NPS, CSAT and CES with their intervals over the last day and
  week against the window before, overall, by channel, touchpoint and queue; the
  journey map; the touchpoints ranked by churn lift (see
  :func:`operators.experience.live_view`).  A supervisor of some queues sees the
  ``by_queue`` figures of those queues only.

Every server reads the alerts of its supervisors' queues (every alert, without
``CX_ALERT_GROUPS``) and the answers live in Redis, so supervisors on any server
see the same figures.  (With groups, a server that starts reading a group again
reads its missed contacts back, not its trends: the latest trends are those it
read.)  A supervisor sees the figures of the queues of its token
(``frame(queues=...)``): the contacts of those queues, the answers to alerts of
those queues, and the trends of no queue or of those queues (their example
signals of other queues left out); a token whose queues hold ``*`` sees
everything.

>>> view = SupervisorView()
>>> view.observe({"kind": "contact", "risk": {"churn_probability": 0.72}}, now=10.0)
>>> view.answers({b"action|resolve_complaint|accepted": b"3", b"agent|a1|declined": b"1"})
>>> f = view.frame(now=11.0)
>>> f["risk"]["bands"], f["risk"]["histogram"][7]
({'low': 0, 'medium': 0, 'high': 1}, 1)
>>> f["acceptance"]["by_action"]["resolve_complaint"]
{'answered': 3, 'accepted': 3, 'rate': 1.0}
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import orjson

from operators.alerts import band
from operators.events import RESPONSES
from operators.experience import live_view
from operators.proactive import merge_counts, uplift_report
from state.keys import unescape_queue

log = logging.getLogger(__name__)

RISK_WINDOW_S = 3600.0
RISK_KEEP = 100_000  # contacts kept for the risk window (the oldest go first)
RECENT_TRENDS = 10


Table = dict[str, dict[str, int]]
RiskEntry = tuple[float, int, str, str | None]  # read at, histogram bin (-1: unscored), band, queue


def _risk_entry(alert: dict[str, Any], now: float) -> RiskEntry | None:
    """What a contact's alert adds to the risk window (None: not a contact's)."""
    kind = alert.get("kind")
    if kind in ("trend", "proactive"):
        return None
    risk = alert.get("risk")
    p = risk.get("churn_probability") if isinstance(risk, dict) else None
    queue = alert.get("queue")
    queue = queue if isinstance(queue, str) else None
    if isinstance(p, int | float) and 0.0 <= p <= 1.0:
        return (now, min(9, int(p * 10)), band(p), queue)
    if risk is None and kind == "contact":  # not scored: profiling objected
        return (now, -1, "", queue)
    return None


class SupervisorView:
    def __init__(self, *, window_s: float = RISK_WINDOW_S) -> None:
        self.window_s = window_s
        # (read at, histogram bin, band) of each contact in the window, oldest first; the
        # counts below follow it, so a frame costs nothing per contact.
        self.risks: deque[RiskEntry] = deque()
        self.histogram = [0] * 10
        self.bands = {"low": 0, "medium": 0, "high": 0}
        # the same per queue (None: contacts of no queue), for supervisors of some queues
        self.queue_histogram: dict[str | None, list[int]] = {}
        self.queue_bands: dict[str | None, dict[str, int]] = {}
        self.unscored = 0  # contacts without a risk (profiling objected), in the window
        self.queue_unscored: dict[str | None, int] = {}
        self.trends: deque[dict[str, Any]] = deque(maxlen=RECENT_TRENDS)
        self.by_action: Table = {}
        self.by_agent: Table = {}
        self.queue_action: dict[str, Table] = {}
        self.queue_agent: dict[str, Table] = {}
        self.proactive: dict[str, Any] | None = None
        self.live: dict[str, Any] | None = None  # the experience figures

    def observe(self, alert: dict[str, Any], *, now: float) -> None:
        if alert.get("kind") == "trend":
            self.trends.append(alert)
            return
        entry = _risk_entry(alert, now)
        if entry is None:
            return
        if len(self.risks) >= RISK_KEEP:
            self._drop_oldest()
        self.risks.append(entry)
        self._count(entry, 1)

    def observe_past(self, alerts: list[tuple[float, dict[str, Any]]]) -> None:
        """Contacts read back late, each with when it was written (a queue group the
        server starts reading again, with ``CX_ALERT_GROUPS``): counted among the
        others in time order.  Their trends are not: the latest stay the latest read.

        >>> view = SupervisorView()
        >>> view.observe({"kind": "contact", "risk": {"churn_probability": 0.9}}, now=20.0)
        >>> view.observe_past([(10.0, {"kind": "contact", "risk": {"churn_probability": 0.1}})])
        >>> [(at, named) for at, _, named, _ in view.risks], view.bands["low"]
        ([(10.0, 'low'), (20.0, 'high')], 1)
        """
        entries = [e for at, alert in alerts if (e := _risk_entry(alert, at)) is not None]
        if not entries:
            return
        for entry in self.risks:
            self._count(entry, -1)
        merged = sorted([*self.risks, *entries], key=lambda e: e[0])[-RISK_KEEP:]
        self.risks = deque(merged)
        for entry in merged:
            self._count(entry, 1)

    def _count(self, entry: RiskEntry, step: int) -> None:
        _, tenth, named, queue = entry
        if tenth < 0:  # a contact not scored
            self.unscored += step
            left = self.queue_unscored.get(queue, 0) + step
            if left:
                self.queue_unscored[queue] = left
            else:
                self.queue_unscored.pop(queue, None)
            return
        self.histogram[tenth] += step
        self.bands[named] += step
        histogram = self.queue_histogram.setdefault(queue, [0] * 10)
        bands = self.queue_bands.setdefault(queue, {"low": 0, "medium": 0, "high": 0})
        histogram[tenth] += step
        bands[named] += step
        if not any(histogram):
            del self.queue_histogram[queue], self.queue_bands[queue]

    def _drop_oldest(self) -> None:
        self._count(self.risks.popleft(), -1)

    def programs(self, shards: list[bytes | None]) -> None:
        """The ``proactive`` field of each model shard's status (JSON; absent or broken
        ones skipped): summed, then uplift with its interval (see operators.proactive)."""
        parts: list[dict[str, Any]] = []
        for raw in shards:
            try:
                part = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(part, dict):
                parts.append(part)
        if not parts:
            self.proactive = None
            return
        merged = merge_counts(parts)
        self.proactive = {
            **uplift_report(merged),
            "funnel": merged["funnel"],
            "blocked": merged["blocked"],
        }

    def experience(self, parts: list[bytes]) -> None:
        """The flow processes' experience counts (``cx:experience``, JSON; broken ones
        skipped), as figures."""
        counts: list[dict[str, Any]] = []
        for raw in parts:
            try:
                part = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(part, dict):
                counts.append(part)
        try:
            self.live = live_view(counts)
        except (TypeError, ValueError, KeyError) as exc:  # counts of another version
            log.warning("experience counts not understood (%s); the last figures are sent", exc)

    def answers(self, counts: dict[bytes, bytes]) -> None:
        """Replace the answer counts with ``cx:nba:answers`` as read (bad fields skipped)."""
        by_action: Table = {}
        by_agent: Table = {}
        queue_action: dict[str, Table] = {}
        queue_agent: dict[str, Table] = {}
        for raw_field, raw_count in counts.items():
            try:
                scope, _, rest = raw_field.decode().partition("|")
                n = int(raw_count)
            except (UnicodeDecodeError, ValueError):
                continue
            table: Table | None = None
            if scope in ("qaction", "qagent"):
                queue, _, rest = rest.partition("|")
                tables = queue_action if scope == "qaction" else queue_agent
                table = tables.setdefault(unescape_queue(queue), {})
            elif scope in ("action", "agent"):
                table = by_action if scope == "action" else by_agent
            name, _, response = rest.rpartition("|")
            if table is None or not name or response not in RESPONSES:
                continue
            table.setdefault(name, {})[response] = n
        self.by_action, self.by_agent = by_action, by_agent
        self.queue_action, self.queue_agent = queue_action, queue_agent

    def frame(self, *, now: float, queues: frozenset[str] | None = None) -> dict[str, Any]:
        """The ``stats`` frame: of every queue, or (``queues``) of those queues only."""
        while self.risks and self.risks[0][0] < now - self.window_s:
            self._drop_oldest()
        if queues is None:
            histogram, bands = list(self.histogram), dict(self.bands)
            unscored = self.unscored
            by_action, by_agent = self.by_action, self.by_agent
            trends = list(self.trends)
        else:
            histogram, bands = [0] * 10, {"low": 0, "medium": 0, "high": 0}
            unscored = sum(self.queue_unscored.get(q, 0) for q in queues)
            for queue in queues & self.queue_histogram.keys():
                histogram = [
                    a + b for a, b in zip(histogram, self.queue_histogram[queue], strict=True)
                ]
                for name, n in self.queue_bands[queue].items():
                    bands[name] += n
            by_action = _merged(self.queue_action, queues)
            by_agent = _merged(self.queue_agent, queues)
            trends = [t for t in map(_trend_of(queues), self.trends) if t is not None]
        return {
            "type": "stats",
            "at": int(now * 1000),
            "risk": {
                "window_s": self.window_s,
                "contacts": sum(bands.values()) + unscored,
                "bands": bands,
                "unscored": unscored,
                "histogram": histogram,
            },
            "acceptance": {"by_action": _rates(by_action), "by_agent": _rates(by_agent)},
            "trends": trends,
            "proactive": self.proactive,
            "experience": _experience_of(self.live, queues),
        }


def _experience_of(
    live: dict[str, Any] | None, queues: frozenset[str] | None
) -> dict[str, Any] | None:
    """The experience figures a supervisor of ``queues`` sees: the queues' own figures
    of theirs only (None: every queue)."""
    if live is None or queues is None:
        return live
    kpis = live["kpis"]
    by_queue = {q: f for q, f in kpis["by_queue"].items() if q in queues}
    return {**live, "kpis": {**kpis, "by_queue": by_queue}}


def _merged(tables: dict[str, Table], queues: frozenset[str]) -> Table:
    out: Table = {}
    for queue in queues & tables.keys():
        for name, counts in tables[queue].items():
            mine = out.setdefault(name, {})
            for response, n in counts.items():
                mine[response] = mine.get(response, 0) + n
    return out


def _trend_of(queues: frozenset[str]) -> Any:
    """A trend alert as a supervisor of ``queues`` sees it: None if it is about another
    queue; its example signals of other queues left out."""

    def seen(alert: dict[str, Any]) -> dict[str, Any] | None:
        trend = alert.get("trend")
        if not isinstance(trend, dict):
            return alert
        if trend.get("dimension") == "queue" and trend.get("value") not in queues:
            return None
        examples = trend.get("examples")
        if isinstance(examples, list):
            kept = [
                e
                for e in examples
                if not isinstance(e, dict) or e.get("queue") is None or e.get("queue") in queues
            ]
            return {**alert, "trend": {**trend, "examples": kept}}
        return alert

    return seen


def _rates(table: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, counts in sorted(table.items()):
        answered = sum(counts.values())
        accepted = counts.get("accepted", 0)
        out[name] = {
            "answered": answered,
            "accepted": accepted,
            "rate": round(accepted / answered, 3) if answered else None,
        }
    return out
