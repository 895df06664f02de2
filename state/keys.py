"""Redis key names, in one place.

>>> events_stream(3), profile_key("c1"), model_key("m0")
('cx:events:3', 'cx:profile:c1', 'cx:model:m0')

On a Redis Cluster (``CX_REDIS_CLUSTER``) the names carry a hash tag, the
event shard, so that a shard's stream and the profiles of its customers live
in one slot (one node):

>>> names = KeyNames(shards=4, tagged=True)
>>> names.events(3), names.profile("c1"), names.events_of("c1")
('cx:events:{3}', 'cx:profile:{1}:c1', 'cx:events:{1}')
>>> KeyNames(shards=4).profile("c1")
'cx:profile:c1'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cxstream.settings import Settings, parse_alert_groups
from operators.events import shard_of

ALERTS = "cx:alerts"  # stream: alerts (trimmed to about CX_ALERTS_MAXLEN)
# With CX_ALERT_GROUPS: a queue group's alerts, "{cx:alerts}:0", ..., "{cx:alerts}:other"
ALERT_GROUP_PREFIX = "{cx:alerts}:"
ALERT_LAST = "{cx:alerts}:last"  # string: the last id given to an alert of any group
ALERT_STREAMS = "{cx:alerts}:streams"  # set: every group stream ever written (for erasure)
ALL_QUEUES = "*"  # in a token's queues: every queue
DLQ = "cx:dlq"  # stream: dead letters
DLQ_MAXLEN = 100_000  # dead letters kept (about: trimmed with ~)
EVENTS_PREFIX = "cx:events:"  # + shard: stream of events
EVENTS_MAXLEN = 10_000_000  # events kept a shard (about: trimmed with ~), whoever writes
PROFILE_PREFIX = "cx:profile:"  # + customer: hash, the customer's profile
ANSWERS = "cx:nba:answers"  # hash: "action|<id>|<response>" and "agent|<id>|<response>" -> count
ANSWERED_PREFIX = "cx:answered:"  # + a digest of (alert id, agent id): its answer counted
ANSWERED_TTL_S = 7 * 86_400
FORGOTTEN = "cx:forgotten"  # set: digests of erased customers (the suppression list)
ERASURES = "cx:erasures"  # hash: digest -> what an erasure found (counts, no ids)
FLOW = "cx:flow"  # hash: shard stream -> how far the flow has read it (JSON: id, at, events)
GAPS = "cx:gaps"  # hash: stream -> how many times it was found trimmed past a resume point
OUTBOUND = (
    "cx:outbound"  # stream: proactive actions for the channel systems (see docs/proactive.md)
)
OUTBOUND_MAXLEN = 1_000_000  # outbound entries kept (about: trimmed with ~)
AUDIT = "cx:audit"  # stream: consent changes, erasures, exports (customer as keyed digest)
# hash: flow process (its model suffix, or "main") -> its live experience counts (JSON)
EXPERIENCE = "cx:experience"


def written_key(stream: str, alert_id: str) -> str:
    """The marker that ``alert_id`` was written to ``stream`` (a replay writes it
    once): hash-tagged with the stream's own name, so both live in one cluster slot.

    >>> written_key("cx:outbound", "al_1")
    '{cx:outbound}:written:al_1'
    """
    return f"{{{stream}}}:written:{alert_id}"


def events_stream(shard: int) -> str:
    return f"{EVENTS_PREFIX}{shard}"


def profile_key(customer_id: str) -> str:
    return f"{PROFILE_PREFIX}{customer_id}"


def model_key(shard: str) -> str:
    return f"cx:model:{shard}"


@dataclass(frozen=True, slots=True)
class AlertGroups:
    """Which alert stream a queue's alerts go to (``CX_ALERT_GROUPS``).

    No groups: every alert to ``cx:alerts``.  With groups, each group of queues has
    its own stream, and the queues of no group, and alerts of no queue, go to
    ``{cx:alerts}:other``; the ids of all of them are one sequence
    (:func:`state.commands.xadd_alert`), so a client's resume point holds across them.
    A name ending in ``*`` is a prefix (``emea-*``: every queue starting ``emea-``);
    a queue named in full goes to that group, else to the group of its longest prefix.

    >>> groups = AlertGroups.parse("care, billing; sales, emea-*")
    >>> groups.stream_of("billing"), groups.stream_of("emea-vip"), groups.stream_of(None)
    ('{cx:alerts}:0', '{cx:alerts}:1', '{cx:alerts}:other')
    >>> sorted(groups.streams_for(["sales", "fraud"]))
    ['{cx:alerts}:1', '{cx:alerts}:other']
    >>> AlertGroups.parse("").streams, AlertGroups.parse("").stream_of("care")
    (('cx:alerts',), 'cx:alerts')
    """

    groups: tuple[tuple[str, ...], ...] = ()
    # queue -> stream: the names in full, then each queue met (up to MAX_QUEUES_KEPT)
    _by_queue: dict[str, str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_queue: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        for i, group in enumerate(self.groups):
            for name in group:
                if name.endswith(ALL_QUEUES):
                    prefixes.append((name[:-1], f"{ALERT_GROUP_PREFIX}{i}"))
                else:
                    by_queue[name] = f"{ALERT_GROUP_PREFIX}{i}"
        prefixes.sort(key=lambda p: -len(p[0]))  # the longest prefix first
        object.__setattr__(self, "_by_queue", by_queue)
        object.__setattr__(self, "_prefixes", tuple(prefixes))

    @classmethod
    def parse(cls, text: str) -> AlertGroups:
        """``care,billing;sales,emea-*``: groups split by ``;``, their queues by ``,``."""
        return cls(parse_alert_groups(text))

    @property
    def split(self) -> bool:
        return bool(self.groups)

    @property
    def streams(self) -> tuple[str, ...]:
        """Every alert stream, in the groups' order (``other`` last)."""
        if not self.groups:
            return (ALERTS,)
        return (*(f"{ALERT_GROUP_PREFIX}{i}" for i in range(len(self.groups))), self.other)

    @property
    def other(self) -> str:
        return f"{ALERT_GROUP_PREFIX}other" if self.groups else ALERTS

    def stream_of(self, queue: object) -> str:
        """The stream of an alert of ``queue`` (None or not a string: of no queue)."""
        if not isinstance(queue, str):
            return self.other
        found = self._by_queue.get(queue)
        if found is None:
            found = next((s for p, s in self._prefixes if queue.startswith(p)), self.other)
            if len(self._by_queue) < MAX_QUEUES_KEPT:
                self._by_queue[queue] = found
        return found

    def streams_for(self, queues: Iterable[str], *, no_queue: bool = False) -> frozenset[str]:
        """The streams holding the alerts of ``queues`` (every stream for ``*``), and
        with ``no_queue`` those of no queue (supervisors' proactive and trend alerts)."""
        queues = set(queues)
        if ALL_QUEUES in queues:
            return frozenset(self.streams)
        found = {self.stream_of(q) for q in queues}
        if no_queue:
            found.add(self.other)
        return frozenset(found)


MAX_QUEUES_KEPT = 100_000  # queues whose stream AlertGroups remembers


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyNames:
    """The per-shard and per-customer names, plain or hash-tagged for a cluster."""

    shards: int
    tagged: bool = False
    alerts: AlertGroups = AlertGroups()

    @classmethod
    def of(cls, settings: Settings) -> KeyNames:
        return cls(
            shards=settings.shards,
            tagged=settings.redis_cluster,
            alerts=AlertGroups(settings.alert_groups),
        )

    def events(self, shard: int) -> str:
        return f"{EVENTS_PREFIX}{{{shard}}}" if self.tagged else events_stream(shard)

    def events_of(self, key: str) -> str:
        """The event stream of a customer key (customer_id, else anonymous_id)."""
        return self.events(shard_of(key, self.shards))

    def profile(self, customer_id: str) -> str:
        if not self.tagged:
            return profile_key(customer_id)
        return f"{PROFILE_PREFIX}{{{shard_of(customer_id, self.shards)}}}:{customer_id}"


# The fields of ANSWERS: the counters one agent's answer increments.


def answer_fields(
    action_id: str, agent_id: str, response: str, queue: str | None = None
) -> tuple[str, ...]:
    """The counters one answer increments in ``cx:nba:answers``: over all queues, and
    (for an alert of a queue) of its queue.

    >>> answer_fields("offer", "a1", "accepted", "care|vip")[2:]
    ('qaction|care%7Cvip|offer|accepted', 'qagent|care%7Cvip|a1|accepted')
    """
    fields: tuple[str, ...] = (f"action|{action_id}|{response}", f"agent|{agent_id}|{response}")
    if queue:
        q = escape_queue(queue)
        fields += (f"qaction|{q}|{action_id}|{response}", f"qagent|{q}|{agent_id}|{response}")
    return fields


def escape_queue(queue: str) -> str:
    """A queue as it is written inside a field name (``|`` and ``%`` escaped)."""
    return queue.replace("%", "%25").replace("|", "%7C")


def unescape_queue(queue: str) -> str:
    """The queue of a field name, as :func:`escape_queue` wrote it."""
    return queue.replace("%7C", "|").replace("%25", "%")
