"""The journey dataflow: shard streams in; alerts, profiles and dead letters out.

Nothing is built at import: ``cxstream run`` and ``python -m bytewax.run
"cxstream.launch:get_flow()"`` build it with :func:`build_flow`, prepared the same
way (see :mod:`cxstream.launch`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import KeyedStream
from bytewax.outputs import Sink

from cxstream.components import (
    consent_policy,
    customer_config,
    experience_config,
    model_factory,
    proactive_config,
    trend_config,
)
from cxstream.settings import Settings
from flows.adapters import batched, stateful, stateful_batch
from operators.customer import (
    CustomerBucket,
    CustomerLogic,
    CustomerSnapshot,
    Watermark,
    bucketed,
)
from operators.decide import (
    DecideLogic,
    alerts_of,
    stamped,
    statuses_of,
    store_writes_of,
    tallies_of,
)
from operators.erasure import Forgotten
from operators.errors import ConfigError
from operators.events import Rejected, Suppressed, is_keyed, is_rejected, parse_batch
from operators.experience import LiveExperience, LiveSnapshot, TallyBuffer
from operators.identity import (
    IdentityLogic,
    IdentitySnapshot,
    by_anonymous_id,
    needs_identity,
    stitched_event,
)
from operators.records import (
    Alert,
    CustomerOut,
    ExperienceStatus,
    ModelStatus,
    Proactive,
    ProfileUpdate,
    Signal,
    StoreWrite,
    is_signal_or_tally,
    is_tally,
    is_to_model,
    only,
    route_batch,
)
from operators.trends import TrendLogic, TrendSnapshot, trend_keys_batch
from operators.worker import (
    ALERTS,
    EXPERIENCE,
    REJECTED,
    STATUSES,
    STORE_WRITES,
    WorkerLogic,
    WorkerOut,
    picked,
)
from state.catalog import load_catalog
from state.erasure import forgotten_from
from state.lexicon import text_enricher
from state.sinks import (
    alert_sink,
    dead_letter_sink,
    experience_sink,
    model_status_sink,
    profile_sink,
)
from state.source import RedisStreamSource


def _pick(kinds: tuple[type, ...]) -> Callable[[list[list[WorkerOut]]], list[Any]]:
    return lambda batches: picked(batches, kinds)


@dataclass(frozen=True, slots=True)
class Sinks:
    alerts: Sink[Alert | Proactive]  # and cx:outbound entries, once per alert id
    dead_letters: Sink[Rejected]
    profiles: Sink[StoreWrite]  # profile updates, erasures, suppressed entries
    models: Sink[ModelStatus]
    experience: Sink[ExperienceStatus] | None = None  # None: the live counts are not kept


def redis_sinks(settings: Settings, forgotten: Forgotten) -> Sinks:
    return Sinks(
        alerts=alert_sink(settings),
        dead_letters=dead_letter_sink(settings),
        profiles=profile_sink(settings, forgotten),
        models=model_status_sink(settings),
        experience=experience_sink(settings),
    )


def worker_tallies() -> Callable[[], TallyBuffer]:
    """One :class:`TallyBuffer` per worker thread (a customer stays on its worker).

    By thread id, not ``threading.local``: Bytewax's worker threads are its own, and
    a Python thread state (which holds ``threading.local`` data) does not outlive the
    call that acquired it there."""
    buffers: dict[int, TallyBuffer] = {}

    def tally() -> TallyBuffer:
        thread = threading.get_ident()
        buffer = buffers.get(thread)
        if buffer is None:
            buffer = buffers.setdefault(thread, TallyBuffer())
        return buffer

    return tally


def build_flow(
    settings: Settings,
    *,
    source: Source[Any] | None = None,  # of Read (the Redis source) or Entry (tests)
    sinks: Sinks | None = None,
    clock: Callable[[], float] = time.time,
    forgotten: Forgotten | None = None,
    one_worker: bool = False,
) -> Dataflow:
    """The dataflow; tests pass a TestingSource, TestingSinks and a fake clock.

    ``forgotten`` is the suppression list of erased customers, shared by this
    process's steps; by default it is read from Redis when first needed (and
    the Redis source keeps it up to date while the flow runs).

    ``one_worker``: the flow runs as one worker of one process, without recovery
    (``cxstream run`` says so when it does): the keyed steps run in one step, in place
    (:class:`operators.worker.WorkerLogic`), since that worker owns every key.
    """
    if forgotten is None:
        forgotten = forgotten_from(settings) if sinks is None else Forgotten()
    sinks = sinks or redis_sinks(settings, forgotten)
    catalog = load_catalog(settings.catalog_path)  # validated at start: errors stop here
    config = customer_config(settings, catalog)
    proactive = proactive_config(settings, catalog)
    consent = consent_policy(settings)  # what holds before a customer's consent statement
    watermark = Watermark()  # event time seen by this process's workers
    n_models = settings.model_shards
    recovery = settings.recovery_dir is not None
    enrich = text_enricher(settings.topics_path)  # sentiment and topic of free text
    topics = frozenset(name for name, _ in enrich.topics)  # the topics that name trend series
    trends = trend_config(settings)
    experience = experience_config(settings)
    tally = worker_tallies() if settings.experience else lambda: None

    new_model = model_factory(settings)
    name = settings.model_suffix.lstrip("@") or "main"

    # each keyed logic as its step (or the one step) builds it
    def new_identity(resume: IdentitySnapshot | None = None) -> IdentityLogic:
        return IdentityLogic(
            resume,
            clock=clock,
            retention_s=config.retention_s,
            keep_snapshots=recovery,
            forgotten=forgotten,
        )

    def new_customer(resume: CustomerSnapshot | None = None) -> CustomerLogic:
        # (the worker's tally: what its customers did for the experience view, if kept)
        return CustomerLogic(
            resume,
            config=config,
            clock=clock,
            watermark=watermark,
            keep_snapshots=recovery,
            forgotten=forgotten,
            tally=tally(),
        )

    def new_shard(resume: bytes | None = None) -> DecideLogic:
        return DecideLogic(
            resume,
            clock=clock,
            model=new_model,
            keep_snapshots=recovery,
            catalog=catalog,
            forgotten=forgotten,
            proactive=proactive,
            consent=consent,
        )

    def new_trend(resume: TrendSnapshot | None = None) -> TrendLogic:
        return TrendLogic(resume, config=trends, clock=clock, keep_snapshots=recovery)

    def new_live(resume: LiveSnapshot | None = None) -> LiveExperience:
        return LiveExperience(
            resume, name=name, config=experience, clock=clock, keep_snapshots=recovery
        )

    flow = Dataflow("cxstream_journey")
    entries = op.input("events_in", flow, source or RedisStreamSource(settings, forgotten))
    if one_worker:
        if recovery:
            raise ConfigError("one_worker: the flow in one step keeps no recovery snapshots")

        def new_worker(_resume: object) -> WorkerLogic:  # (built afresh for each run)
            return WorkerLogic(
                parse=lambda batch: parse_batch(batch, forgotten, enrich),
                customers=CustomerBucket(new=new_customer, clock=clock),
                identity=new_identity,
                model=new_shard,
                trend=new_trend,
                experience=new_live(),
                model_shards=n_models,
                suffix=settings.model_suffix,
                topics=topics,
                wake=time.time,
            )

        batches = op.flat_map_batch("one_batch", entries, lambda batch: [("worker", batch)])
        # ("worker", [Read | Entry])   [what one activation of the source brought, whole]
        done = stateful_batch("worker", batches, new_worker)
        # ("worker", [Rejected | Suppressed | Alert | Proactive | ProfileUpdate | Erase
        #   | ConsentChange | ModelStatus | ExperienceStatus])   [parse, identity, customers,
        #   trends, model shards, live experience: the steps below, in one]
        outs = op.map("unkey_worker", done, lambda item: item[1])
        # [WorkerOut]   [an activation's outputs, each sink picks its own]
        op.output(
            "dlq_out", op.flat_map_batch("dlq_only", outs, _pick(REJECTED)), sinks.dead_letters
        )
        op.output("alerts_out", op.flat_map_batch("alerts_only", outs, _pick(ALERTS)), sinks.alerts)
        op.output(
            "profiles_out",
            op.flat_map_batch("profiles_only", outs, _pick(STORE_WRITES)),
            sinks.profiles,
        )
        op.output(
            "models_out", op.flat_map_batch("models_only", outs, _pick(STATUSES)), sinks.models
        )
        if sinks.experience is not None:
            statuses = op.flat_map_batch("experience_only", outs, _pick(EXPERIENCE))
            op.output("experience_out", statuses, sinks.experience)
        return flow
    # Read(stream, entries: what one read of a stream brought) | Entry(stream, entry_id, data)
    parsed = op.flat_map_batch(
        "parse", entries, lambda batch: parse_batch(batch, forgotten, enrich)
    )
    # (customer key, Event) | Rejected | Suppressed   [one call per batch; text -> sentiment, topic]
    split = op.branch("split_rejected", parsed, is_keyed)
    unkeyed = op.branch("split_suppressed", split.falses, is_rejected)
    # Rejected(source, entry_id, raw, reason, detail)
    op.output("dlq_out", unkeyed.trues, sinks.dead_letters)
    suppressed = cast(Stream[Suppressed], unkeyed.falses)
    # Suppressed(source, entry_id): an erased customer's event, deleted unread
    keyed = split.trues
    # (customer key, Event)
    anonymous = op.branch("split_anonymous", keyed, needs_identity)
    # trues: anonymous-only events and identify events; falses: the rest
    stitched = stateful(
        "identity",
        op.map("key_by_anonymous_id", anonymous.trues, by_anonymous_id),
        new_identity,
    )
    # (anonymous_id, (customer key or anonymous_id, Event))   [linked ids go to the customer]
    by_customer = op.merge("stitched", anonymous.falses, op.map("unkey", stitched, stitched_event))
    # (customer key, Event)

    journey: KeyedStream[CustomerOut]
    if recovery:  # one key per customer: an epoch's snapshots hold the customers it touched
        journey = stateful("journey", by_customer, new_customer)
    else:  # customers in buckets, their timers in the bucket's heap (see CustomerBucket)
        in_buckets = op.flat_map_batch("by_bucket", by_customer, bucketed)
        # (bucket "b<i>", (customer key, Event))
        journey = stateful_batch(
            "journey", in_buckets, lambda _: CustomerBucket(new=new_customer, clock=clock)
        )
    # (customer key or bucket, ScoreRequest | Example | Decided | Watched | ProfileUpdate
    #  | Outcome | Erase | Signal | ConsentChange | Tally | Rated)
    #   [dedupe, journey, labels, rules, consent, erasure; a worker's tally each quarter second]
    suffix = settings.model_suffix
    routed = op.flat_map_batch("route", journey, lambda items: route_batch(items, n_models, suffix))
    # (model shard "m<i>", ScoreRequest | Example | Decided | Watched | Outcome | Erase
    #   | ConsentChange | Rated) | ProfileUpdate | Signal | Tally
    to_model = op.branch("split_profiles", routed, is_to_model)
    by_model = to_model.trues
    # (model shard "m<i>", ScoreRequest | Example | Decided | Watched | Outcome | Erase
    #   | ConsentChange | Rated)
    not_model = op.branch("split_signals", to_model.falses, is_signal_or_tally)
    journey_profiles = cast(Stream[ProfileUpdate], not_model.falses)
    # ProfileUpdate(customer_id, fields)
    counted = op.branch("split_tallies", not_model.trues, is_tally)
    tallies = counted.trues
    # Tally(steps, sentiment, ratings, periods, touched, took)   [a worker's quarter second:
    #   no customer id; labelled periods counted by touchpoint and by step]
    signals = cast(Stream[Signal], counted.falses)
    # Signal(metric, ts, event_id, channel, queue, topic, sentiment): a complaint or a contact
    series = op.flat_map_batch("trend_keys", signals, lambda b: trend_keys_batch(b, topics))
    # (series "complaints|topic=outage", (series, Signal))   [one per channel, queue, topic]
    trend_alerts = stateful(
        "trends",
        series,
        new_trend,
    )
    # (series, Alert)   [kind trend: a spike in the series' sliding window]
    decided = batched(
        "decide",
        by_model,
        new_shard,
    )
    # (model shard, Alert | ProfileUpdate | ModelStatus | Erase | Proactive | ConsentChange
    #   | Tally)   [Outcome teaches the arbiter; contacts first, examples learned after;
    #   Watched counts for the uplift; an objection to profiling drops the customer's
    #   backlog; a batch's Rated answers counted by persona, one Tally]
    outputs = op.flat_map_batch("stamp_shard", decided, stamped)
    # Alert | ProfileUpdate | ModelStatus | Erase | Proactive | ConsentChange | Tally
    by_persona = op.flat_map_batch("persona_tallies", outputs, tallies_of)
    # Tally(personas)   [a model shard's batch of answers, counted by persona]
    tallies = op.merge("all_tallies", tallies, by_persona)
    # Tally   [the workers' quarter seconds and the model shards' batches]
    live = stateful(
        "experience",
        op.key_on("one_experience", tallies, lambda _: "experience"),
        new_live,
    )
    # ("experience", Alert | ExperienceStatus)   [KPI windows, drops as trend alerts; the
    #   journey map; churn by touchpoint; its counts every 2 s]
    live_out = op.map("unkey_experience", live, lambda item: item[1])
    # Alert | ExperienceStatus
    alerts: Stream[Alert | Proactive] = op.merge(
        "alerts",
        op.flat_map_batch("alerts_only", outputs, alerts_of),
        op.map("unkey_trends", trend_alerts, lambda item: item[1]),
        op.filter_map("experience_alerts", live_out, only(Alert)),
    )
    # Alert(alert_id, payload) | Proactive(alert_id, customer_id, trigger, action_id, control,
    #                                      alert, outbound)   [contact, trend, proactive]
    op.output("alerts_out", alerts, sinks.alerts)
    # -> XADD cx:alerts; a proactive decision's alert (not the hold-out's) and its action
    #    (XADD cx:outbound), each once per alert_id
    profiles: Stream[StoreWrite] = op.merge(
        "profiles",
        journey_profiles,
        op.flat_map_batch("risk_profiles_and_erasures", outputs, store_writes_of),
        suppressed,
    )
    # ProfileUpdate(customer_id, fields) | Erase(customer_id) | Suppressed(source, entry_id)
    #   | ConsentChange(customer_id, event_id, ts, purpose, channel, granted, source, objected)
    op.output("profiles_out", profiles, sinks.profiles)
    # -> HSET cx:profile:<customer>; erase the customer everywhere; XDEL the entry;
    #    XADD cx:audit (a consent change, once per event)
    op.output("models_out", op.flat_map_batch("models_only", outputs, statuses_of), sinks.models)
    # ModelStatus(shard, fields) -> HSET cx:model:<shard>
    if sinks.experience is not None:
        statuses = op.filter_map("experience_only", live_out, only(ExperienceStatus))
        op.output("experience_out", statuses, sinks.experience)
        # ExperienceStatus(name, counts) -> HSET cx:experience <name>
    return flow
