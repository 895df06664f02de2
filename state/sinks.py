"""Bytewax sinks writing to Redis: alerts, dead letters, profiles (and erasures),
model status.

Each worker writes a whole batch in one write, and reads its replies before the
next batch goes (:class:`state.redis.PipelinedWriter`): the flow does not wait
for Redis's answer, and a batch not confirmed is sent again.  Profile updates of
one customer inside a batch are merged first, so a burst of events costs one
write per customer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import orjson
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from cxstream.settings import Settings
from operators.audit import audit_digest, consent_entry, event_ref
from operators.erasure import Forgotten
from operators.errors import StoreError
from operators.events import Rejected, Suppressed
from operators.records import (
    Alert,
    ConsentChange,
    Erase,
    ExperienceStatus,
    ModelStatus,
    Proactive,
    ProfileUpdate,
    StoreWrite,
)
from operators.store import hset, profile_commands
from state.audit import audit_command, secret_key
from state.commands import dead_letter, xadd_alert, xadd_once
from state.erasure import erase
from state.keys import (
    ALERTS,
    EXPERIENCE,
    OUTBOUND,
    OUTBOUND_MAXLEN,
    KeyNames,
    model_key,
    written_key,
)
from state.recovery import RecoveryScrubber
from state.redis import Backoff, Command, PipelinedWriter, connect, is_outage

X = TypeVar("X")
Writer = Callable[[list[X]], list[Command]]


class _WriterPartition(StatelessSinkPartition[X]):
    """A sink partition writing through one :class:`PipelinedWriter`, waiting out
    Redis outages (:func:`retrying`)."""

    def __init__(self, client: redis.Redis, what: str) -> None:
        self.client = client
        self.backoff = Backoff(what)
        self.writer = PipelinedWriter(client, what)

    def send(self, commands: list[Command]) -> None:
        retrying(lambda: self.writer.send(commands), self.backoff)

    def sync(self) -> None:
        """Everything sent so far is written (confirmed by Redis)."""
        retrying(self.writer.sync, self.backoff)

    def close(self) -> None:
        self.sync()  # everything written before the end
        self.writer.close()
        self.client.close()


class _PipelinePartition(_WriterPartition[X]):
    def __init__(self, client: redis.Redis, write: Writer[X], what: str) -> None:
        super().__init__(client, f"writing {what}")
        self.write = write

    def write_batch(self, items: list[X]) -> None:
        self.send(self.write(items))


class _RedisSink(DynamicSink[X]):
    def __init__(self, settings: Settings, write: Writer[X], what: str) -> None:
        self.settings = settings
        self.write = write
        self.what = what

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PipelinePartition[X]:
        return _PipelinePartition(connect(self.settings), self.write, self.what)


def retrying(attempt: Callable[[], object], backoff: Backoff) -> None:
    """Run ``attempt`` until it succeeds, waiting out a Redis outage with ``backoff``.

    Nothing is dropped while Redis is away: the worker waits, and the flow with it
    (the source stops reading too).  A batch half-written before the outage is
    written again: alerts may then repeat, with the same ``alert_id``.  An error
    reply (not an outage) is raised.
    """
    while True:
        try:
            attempt()
        except StoreError as exc:
            if not is_outage(exc):
                raise
            backoff.failed(exc)
        else:
            backoff.succeeded()
            return


def alert_sink(settings: Settings) -> DynamicSink[Alert | Proactive]:
    """XADD each alert to ``cx:alerts`` (field ``data``), trimmed to CX_ALERTS_MAXLEN;
    with CX_ALERT_GROUPS, to its queue group's stream (:func:`state.commands.xadd_alert`).

    A proactive decision: its alert to the alerts (not for the hold-out) and its
    action to ``cx:outbound`` (field ``data``, and ``alert_id``), each at most once per
    ``alert_id`` (a marker kept CX_RETENTION_DAYS): a replay, a restart that reads
    events again or a retried batch writes nothing new.  Decisions without an action
    are not written.  (One sink for both: a step of its own would cost every output of
    the model step a pass.)
    """
    ttl = int(settings.retention_days * 86_400)
    maxlen = settings.alerts_maxlen
    groups = KeyNames.of(settings).alerts

    def write(items: list[Alert | Proactive]) -> list[Command]:
        commands: list[Command] = []
        for p in items:
            if type(p) is Alert:
                data = orjson.dumps(p.payload)
                queue = p.payload.get("queue")
                commands.append(
                    xadd_alert(groups, queue, maxlen, "data", data, "alert_id", p.alert_id)
                )
                continue
            assert isinstance(p, Proactive)
            if p.alert is not None:
                data = orjson.dumps(p.alert)
                marker = written_key(ALERTS, p.alert_id)
                commands.append(
                    xadd_alert(
                        groups,
                        p.alert.get("queue"),
                        maxlen,
                        "data",
                        data,
                        "alert_id",
                        p.alert_id,
                        marker=marker,
                        ttl_s=ttl,
                    )
                )
            if p.outbound is not None:
                data = orjson.dumps(p.outbound)
                marker = written_key(OUTBOUND, p.alert_id)
                commands.append(
                    xadd_once(
                        OUTBOUND, marker, ttl, OUTBOUND_MAXLEN, "data", data, "alert_id", p.alert_id
                    )
                )
        return commands

    return _RedisSink(settings, write, "alerts")


def dead_letter_sink(settings: Settings) -> DynamicSink[Rejected]:
    """XADD rejected input to ``cx:dlq``: a bounded excerpt of the raw bytes, the
    reason, the time and the ids it names (:func:`operators.events.dead_letter_fields`)."""

    def write(items: list[Rejected]) -> list[Command]:
        at = int(time.time() * 1000)
        return [dead_letter(r, at_ms=at) for r in items]

    return _RedisSink(settings, write, "dead letters")


def profile_sink(settings: Settings, forgotten: Forgotten | None = None) -> DynamicSink[StoreWrite]:
    """The customer store: HSET ``cx:profile:<customer>`` (JSON values), expiring after
    CX_RETENTION_DAYS (pushed back when an update asks for it: the customer step
    does, hourly); erase customers (:func:`state.erasure.erase`) and delete the
    entries of erased customers the parse step suppressed; append consent changes to
    the audit trail ``cx:audit`` (once per event, the customer as a keyed digest).

    Erasures run after the batch's profile writes, and updates of an erased
    customer (in ``forgotten``, this process's suppression list) are dropped, so
    a risk update that trails the erasure cannot bring the profile back.  With
    CX_RECOVERY_DIR, the recovery partitions are scrubbed of the customer a
    few epochs later (:class:`state.recovery.RecoveryScrubber`).
    """
    scrubber = RecoveryScrubber(settings.recovery_dir) if settings.recovery_dir else None
    return _StoreSink(settings, forgotten if forgotten is not None else Forgotten(), scrubber)


class _StoreSink(DynamicSink[StoreWrite]):
    def __init__(
        self, settings: Settings, forgotten: Forgotten, scrubber: RecoveryScrubber | None
    ) -> None:
        self.settings = settings
        self.forgotten = forgotten
        self.scrubber = scrubber

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        return _StorePartition(connect(self.settings), self.settings, self.forgotten, self.scrubber)


class _StorePartition(_WriterPartition[StoreWrite]):
    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        forgotten: Forgotten,
        scrubber: RecoveryScrubber | None,
    ) -> None:
        super().__init__(client, "writing profiles")
        self.names = KeyNames.of(settings)
        self.ttl = int(settings.retention_days * 86_400)
        self.forgotten = forgotten
        self.scrubber = scrubber
        self.audit_days = settings.audit_retention_days
        self.audit_key = secret_key(settings)

    def write_batch(self, items: list[StoreWrite]) -> None:
        erasures: dict[str, list[str]] = {}
        for i in items:
            if type(i) is Erase:
                erasures.setdefault(i.customer_id, []).extend(i.linked)
                for key in (i.customer_id, *i.linked):
                    self.forgotten.add(key)
        commands = self.profile_commands([i for i in items if type(i) is ProfileUpdate])
        commands += [("XDEL", i.source, i.entry_id) for i in items if type(i) is Suppressed]
        commands += self.audit_commands([i for i in items if type(i) is ConsentChange])
        self.send(commands)
        if erasures:  # the profile writes before an erasure are known written first
            self.sync()
        erased: list[str] = []
        for key, linked in erasures.items():  # each step is idempotent: retried whole
            retrying(
                partial(
                    erase,
                    self.client,
                    key,
                    shards=self.names,
                    forgotten=self.forgotten,
                    linked=linked,
                    audit=(self.audit_key, self.audit_days),
                ),
                self.backoff,
            )
            # ids found only in the stored events reach the scrubber by their own forget
            erased += (key, *linked)
        if self.scrubber is not None:
            self.scrubber.erased(list(dict.fromkeys(erased)))

    def audit_commands(self, changes: list[ConsentChange]) -> list[Command]:
        """A consent change of a customer not erased: one entry in the trail, once."""
        now = int(time.time() * 1000)
        commands: list[Command] = []
        for change in changes:
            if change.customer_id in self.forgotten:
                continue
            digest = audit_digest(self.audit_key, change.customer_id)
            ref = event_ref(self.audit_key, change.event_id)
            entry = consent_entry(change, digest, ref, at_ms=now)
            commands.append(
                audit_command(entry, retention_days=self.audit_days, now_ms=now, once=ref)
            )
        return commands

    def profile_commands(self, items: list[ProfileUpdate]) -> list[Command]:
        """The batch's profile updates, one write a customer (:func:`profile_commands`)."""
        forgotten = self.forgotten
        return profile_commands(
            items,
            key_of=self.names.profile,
            now_ms=int(time.time() * 1000),
            ttl_s=self.ttl,
            skip=forgotten if len(forgotten) else (),  # (none erased: no call a customer)
        )


def experience_sink(settings: Settings) -> DynamicSink[ExperienceStatus]:
    """HSET ``cx:experience`` field <process> with the live experience's counts (JSON):
    the supervisors' view reads them (see ``operators.experience.live_view``)."""

    def write(items: list[ExperienceStatus]) -> list[Command]:
        latest = {s.name: s.counts for s in items}  # the newest of each process
        return [hset(EXPERIENCE, latest)]

    return _RedisSink(settings, write, "experience")


def model_status_sink(settings: Settings) -> DynamicSink[ModelStatus]:
    """HSET ``cx:model:<shard>`` with the model's version and prequential metrics."""

    def write(items: list[ModelStatus]) -> list[Command]:
        now = orjson.dumps(int(time.time() * 1000))
        return [hset(model_key(s.shard), s.fields, "updated_at", now) for s in items]

    return _RedisSink(settings, write, "model status")
