"""The supervisor view, sans I/O: what the ``stats`` frame tells supervisors.

The server feeds a :class:`SupervisorView` every alert it reads from
``cx:alerts`` (``observe``) and, every few seconds, the agents' answer
counts from ``cx:nba:answers`` (``answers``); ``frame`` builds the ``stats``
frame sent to supervisors:

- ``risk``: the churn risk of the contacts of the last hour (by the time their
  alerts were written; the server reads the last hour back when it starts):
  counts by band and a histogram of ten bins;
- ``acceptance``: per action and per agent, answers (accepted, declined,
  not_relevant) and the acceptance rate, accepted over answered;
- ``trends``: the latest trend alerts (a supervisor who signs in late sees
  what is going on).

Every server reads the whole alert stream and the answers live in Redis, so
supervisors on any server see the same figures.

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

from collections import deque
from typing import Any

from operators.alerts import band
from operators.events import RESPONSES

RISK_WINDOW_S = 3600.0
RISK_KEEP = 100_000  # contacts kept for the risk window (the oldest go first)
RECENT_TRENDS = 10
ANSWERS = "cx:nba:answers"  # hash: "action|<id>|<response>" and "agent|<id>|<response>" -> count
ANSWERED_PREFIX = "cx:answered:"  # + the answer's event id: counted already (expires)
ANSWERED_TTL_S = 7 * 86_400


def answer_fields(action_id: str, agent_id: str, response: str) -> tuple[str, str]:
    """The two counters one answer increments in ``cx:nba:answers``."""
    return f"action|{action_id}|{response}", f"agent|{agent_id}|{response}"


class SupervisorView:
    def __init__(self, *, window_s: float = RISK_WINDOW_S) -> None:
        self.window_s = window_s
        # (read at, histogram bin, band) of each contact in the window, oldest first; the
        # counts below follow it, so a frame costs nothing per contact.
        self.risks: deque[tuple[float, int, str]] = deque()
        self.histogram = [0] * 10
        self.bands = {"low": 0, "medium": 0, "high": 0}
        self.trends: deque[dict[str, Any]] = deque(maxlen=RECENT_TRENDS)
        self.by_action: dict[str, dict[str, int]] = {}
        self.by_agent: dict[str, dict[str, int]] = {}

    def observe(self, alert: dict[str, Any], *, now: float) -> None:
        kind = alert.get("kind")
        if kind == "trend":
            self.trends.append(alert)
            return
        risk = alert.get("risk")
        p = risk.get("churn_probability") if isinstance(risk, dict) else None
        if isinstance(p, int | float) and 0.0 <= p <= 1.0:
            if len(self.risks) >= RISK_KEEP:
                self._drop_oldest()
            entry = (now, min(9, int(p * 10)), band(p))
            self.risks.append(entry)
            self.histogram[entry[1]] += 1
            self.bands[entry[2]] += 1

    def _drop_oldest(self) -> None:
        _, tenth, named = self.risks.popleft()
        self.histogram[tenth] -= 1
        self.bands[named] -= 1

    def answers(self, counts: dict[bytes, bytes]) -> None:
        """Replace the answer counts with ``cx:nba:answers`` as read (bad fields skipped)."""
        by_action: dict[str, dict[str, int]] = {}
        by_agent: dict[str, dict[str, int]] = {}
        for raw_field, raw_count in counts.items():
            try:
                scope, _, rest = raw_field.decode().partition("|")
                name, _, response = rest.rpartition("|")
                n = int(raw_count)
            except (UnicodeDecodeError, ValueError):
                continue
            table = by_action if scope == "action" else by_agent if scope == "agent" else None
            if table is None or not name or response not in RESPONSES:
                continue
            table.setdefault(name, {})[response] = n
        self.by_action, self.by_agent = by_action, by_agent

    def frame(self, *, now: float) -> dict[str, Any]:
        while self.risks and self.risks[0][0] < now - self.window_s:
            self._drop_oldest()
        return {
            "type": "stats",
            "at": int(now * 1000),
            "risk": {
                "window_s": self.window_s,
                "contacts": len(self.risks),
                "bands": dict(self.bands),
                "histogram": list(self.histogram),
            },
            "acceptance": {
                "by_action": _rates(self.by_action),
                "by_agent": _rates(self.by_agent),
            },
            "trends": list(self.trends),
        }


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
