"""The per-model-shard step: score, explain, choose the action, learn.

A :class:`DecideLogic` holds one shard's churn model.  A :class:`ScoreRequest`
becomes an :class:`Alert` (probability, trend, reasons, persona, next best action) and
a profile update; an :class:`Example` teaches the model; an :class:`Erase`
drops the customer's open recommendations and goes on to the store sink.  Every
``status_every`` examples (at most once per ``status_interval_s`` of wall time)
it reports the model's prequential metrics.
"""

from __future__ import annotations

import math
import pickle
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from operators.alerts import HIGH, alert_id, build_alert, risk_of
from operators.churn import ChurnModel
from operators.consent import ConsentPolicy, Consents
from operators.erasure import Forgotten
from operators.logic import RETAIN, BatchLogic
from operators.nba import Action, Arbiter, Catalog, Decision, Refusal
from operators.personas import Persona, Personas
from operators.proactive import (
    HOUR_MS,
    MODEL_TRIGGER_WORDS,
    OutboundPolicy,
    ProactiveConfig,
    Uplift,
    in_holdout,
    model_trigger,
    quiet_until,
)
from operators.reasons import explain
from operators.records import (
    Alert,
    ConsentChange,
    Decided,
    DecideIn,
    DecideOut,
    Erase,
    Example,
    ModelStatus,
    Outcome,
    Proactive,
    ProfileUpdate,
    Rated,
    ScoreRequest,
    Tally,
    Watched,
)

WARMUP_EXAMPLES: Final = 50
# Matured examples learned per batch (more while a backlog builds: a quarter of it)
LEARN_PER_BATCH: Final = 16
BACKLOG_SOFT: Final = 64  # past this many, a batch that scored contacts learns too
# customers whose persona at their latest contact a model shard keeps, for their answers
# (about 100 bytes each)
MAX_PERSONAS_KEPT: Final = 200_000
_NOW: Final = datetime(1970, 1, 1, tzinfo=UTC)  # "notify me at once"
# Scored moments between contacts (a silence, a rule that fired): their proactive
# decision follows the contacts of the batch, in the next activation (milliseconds later)
_BETWEEN_CONTACTS: Final = frozenset(("silence", "trigger"))
OBJECTED_NOTE: Final = (
    "The customer objected to profiling: no churn score; the suggested action is a "
    "service action picked by the catalog's rules, not by the model."
)


def consent_notes(decision: Decision) -> list[str]:
    """A sentence for the agent when the customer's consent held actions back (each
    action's reason is in ``excluded``, under the card's details).

    >>> from operators.nba import Decision
    >>> why = "no marketing consent (withdrawn 2026-12-01 via email)"
    >>> consent_notes(Decision(None, 0, 0, "", (), {"a": why, "b": why}, ""))
    ['Sales offers held back: no marketing consent (withdrawn 2026-12-01 via email).']
    """
    reasons = sorted(set(decision.excluded.values()))
    out = [f"Sales offers held back: {why}." for why in reasons if why.startswith("no marketing")]
    out += [f"Channel left out: {why}." for why in reasons if why.startswith("no contact")]
    return out[:3]


@dataclass(frozen=True, slots=True)
class Scored:
    """A moment's score: the churn probability, the previous moment's, the model's name
    and the reasons (what raises it, what holds it down)."""

    p: float
    previous: float | None
    model: str
    reasons: list[str]
    holding: list[str]


def _proactive_reason(n_options: int) -> str:
    """Why this action, in words (it is chosen on a draw of the uplifts: see proactive)."""
    if n_options <= 1:
        return "It is the only action that can go out now."
    return (
        f"Of the {n_options} actions that can go out now, it is the one expected to keep "
        "this customer best (the program keeps measuring which works)."
    )


def with_shard(item: tuple[str, DecideOut]) -> DecideOut:
    """Drop the shard key, stamping it on a model status and on the personas of a tally
    (``p2`` of shard ``m0`` is ``m0/p2``: each shard clusters its own customers)."""
    shard, out = item
    if type(out) is Tally:
        personas = tuple((h, f"{shard}/{p}", name, c) for h, p, name, c in out.personas)
        return replace(out, personas=personas)
    return replace(out, shard=shard) if isinstance(out, ModelStatus) else out


def stamped(items: list[tuple[str, DecideOut]]) -> list[DecideOut]:
    """:func:`with_shard` over a batch of the model step's outputs, in one call (the
    flow's ``map`` would run a Python shim per item)."""
    return [with_shard(item) for item in items]


def alerts_of(items: list[DecideOut]) -> list[Alert | Proactive]:
    """The alerts and proactive decisions of a batch of outputs (the alert sink's).

    >>> alerts_of([Alert("a1", {}), ProfileUpdate("c1", {})])
    [Alert(alert_id='a1', payload={})]
    """
    return [i for i in items if type(i) is Alert or type(i) is Proactive]


def store_writes_of(items: list[DecideOut]) -> list[ProfileUpdate | Erase | ConsentChange]:
    """What the customer-store sink writes: profile updates, erasures, consent changes."""
    return [
        i for i in items if type(i) is ProfileUpdate or type(i) is Erase or type(i) is ConsentChange
    ]


def statuses_of(items: list[DecideOut]) -> list[ModelStatus]:
    return [i for i in items if type(i) is ModelStatus]


def tallies_of(items: list[DecideOut]) -> list[Tally]:
    return [i for i in items if type(i) is Tally]


class DecideLogic(BatchLogic[DecideIn, DecideOut, bytes]):
    """One model shard: churn model + next-best-action, in Bytewax's shape.

    :meth:`on_item` handles one item at once.  The flow calls :meth:`on_batch`:
    matured examples, silence moments and fired rules (no agent is on the line) go into a
    backlog, taken :data:`LEARN_PER_BATCH` (or a quarter of the backlog) at a time in
    an activation that scored no contact: a later batch without one, or the
    notification asked for at once.  Bytewax
    runs the steps after this one (the alert sink) only when this one is done
    with its activation, so a contact's alert waits for the scoring of its batch
    and not for learning (labels mature in bursts, and the forest challenger
    learns in milliseconds).  Past :data:`BACKLOG_SOFT` examples a batch with
    contacts learns too (at rates where every batch has contacts), so the backlog
    stays bounded and learning spread over the batches.
    """

    def __init__(
        self,
        resume: bytes | None,
        *,
        clock: Callable[[], float],
        catalog: Catalog,
        status_every: int = 25,
        status_interval_s: float = 1.0,
        warmup: int = WARMUP_EXAMPLES,
        model: Callable[[], ChurnModel] = ChurnModel,
        keep_snapshots: bool = True,
        forgotten: Forgotten | None = None,
        proactive: ProactiveConfig | None = None,
        consent: ConsentPolicy | None = None,
    ) -> None:
        # Bytewax asks for a snapshot at every epoch even without recovery; pickling a
        # model with its replay buffer (and a forest) costs tens to hundreds of ms, so
        # when nothing will ever resume from it, an empty snapshot is returned instead.
        self.keep_snapshots = keep_snapshots
        self.clock = clock
        self.status_every = status_every
        # Metrics are exact (sorting a window of scores): reported every status_every
        # examples, but not more often than once per status_interval_s of wall time.
        self.status_interval_s = status_interval_s
        self.status_at = -math.inf
        self.warmup = warmup
        # matured examples not learned yet, and silences not scored yet (no agent waits)
        self.backlog: deque[Example | ScoreRequest] = deque()
        self.held = False  # this activation scored contacts: its learning waits
        # each customer's persona (its id) at their latest contact, for their answers
        # (the latest MAX_PERSONAS_KEPT customers; not in the snapshot: after a restart
        # a customer's answers count by persona again from their next contact)
        self.persona_of: dict[str, str] = {}
        self.proactive = proactive or ProactiveConfig(enabled=False)
        self.consent = consent or ConsentPolicy()
        if not resume:
            self.model = model()
            self.n_scored = 0
            self.arbiter = Arbiter(catalog)
            self.personas = Personas()
            self.outbound = OutboundPolicy(self.proactive)
            self.uplift = Uplift()
            self.funnel: Counter[str] = Counter()
        else:
            state = pickle.loads(resume)  # noqa: S301 (ours)
            self.model, self.n_scored, self.arbiter, self.status_at, self.personas = state[:5]
            self.backlog.extend(state[5])
            if len(state) > 6:  # proactive state (older snapshots have none)
                self.outbound, self.uplift, self.funnel = state[6], state[7], Counter(state[8])
                self.outbound.config = self.proactive
            else:
                self.outbound, self.uplift, self.funnel = (
                    OutboundPolicy(self.proactive),
                    Uplift(),
                    Counter(),
                )
            self.arbiter.catalog = catalog  # a changed catalog applies after a restart
            if forgotten is not None and len(forgotten):
                # A snapshot from before an erasure: the erased keep nothing here either.
                self.model.forget_scores(forgotten)  # (their scores at moments, by id)
                held = self.arbiter.customers() | self.outbound.customers()
                for customer_id in held | self.uplift.customers():
                    if customer_id in forgotten:
                        self.arbiter.forget(customer_id)
                        self.outbound.forget(customer_id)
                        self.uplift.forget(customer_id)

    def on_item(self, value: DecideIn) -> tuple[Iterable[DecideOut], bool]:
        if isinstance(value, Rated):
            rated: dict[tuple[int, str], list[float]] = {}
            self._rate(value, rated)
            return self._persona_tally(rated), RETAIN
        if isinstance(value, Outcome):
            response = value.response
            if response in ("delivered", "opened", "clicked"):  # a channel system's report
                self.funnel[response] += 1
                if response != "clicked":  # not an answer
                    return [], RETAIN
                response = "accepted"  # a click: the policy learns it as an acceptance
            learned = self.arbiter.outcome_one(value.alert_id, value.action_id, response, value.ts)
            return ([self.status()] if learned else []), RETAIN
        if isinstance(value, Erase):
            self.persona_of.pop(value.customer_id, None)
            self.arbiter.forget(value.customer_id)
            self.model.forget(value.customer_id)
            self.outbound.forget(value.customer_id)
            self.uplift.forget(value.customer_id)
            return [value], RETAIN
        if isinstance(value, Watched):
            self.uplift.labelled(value.customer_id, value.snapshot_ts, value.label)
            return [], RETAIN
        if isinstance(value, ConsentChange):
            if not value.objected:
                return [value], RETAIN  # to the store: the audit trail
            self._unprofile(value.customer_id)
            # (after any score of this customer decided before: the profile keeps none)
            cleared = ProfileUpdate(value.customer_id, {"risk": None, "persona": None})
            return [value, cleared], RETAIN
        if isinstance(value, Decided):
            self.model.observe_decision(
                value.customer_id, value.snapshot_ts, value.label_ts, value.label
            )
            return [], RETAIN
        if isinstance(value, Example):
            if self.uplift.open:  # a silence or an event that acted: its outcome, for the uplift
                self.uplift.labelled(value.customer_id, value.snapshot_ts, value.label)
            self.model.learn_one(
                value.features,
                value.label,
                key=value.customer_id,
                snapshot_ts=value.snapshot_ts,
                label_ts=value.label_ts,
            )
            if self.model.n_learned % self.status_every == 0:
                now = self.clock()
                if now - self.status_at >= self.status_interval_s:
                    self.status_at = now
                    return [self.status()], RETAIN
            return [], RETAIN
        return self._decide(value), RETAIN

    def on_batch(self, values: list[DecideIn]) -> tuple[Iterable[DecideOut], bool]:
        out: list[DecideOut] = []
        scored = False
        rated: dict[tuple[int, str], list[float]] = {}
        for value in values:
            if type(value) is Rated:
                self._rate(value, rated)
            elif isinstance(value, Example) or (
                isinstance(value, ScoreRequest) and value.moment in _BETWEEN_CONTACTS
            ):  # no agent waits on the line for these: after the contacts, with the learning
                self.backlog.append(value)
            else:
                scored = scored or isinstance(value, ScoreRequest)
                out.extend(self.on_item(value)[0])
        self.held = scored
        if not scored or len(self.backlog) > BACKLOG_SOFT:
            out.extend(self._learn())
        out.extend(self._persona_tally(rated))  # the batch's answers by persona: one record
        return out, RETAIN

    def _persona_tally(self, rated: dict[tuple[int, str], list[float]]) -> list[DecideOut]:
        """Answers counted by (hour, persona id), as one tally for the experience step,
        with the personas' names now (the flow stamps the shard on the ids)."""
        if not rated:
            return []
        personas = tuple(
            (hour, persona_id, self.personas.name_of(persona_id), tuple(counts))
            for (hour, persona_id), counts in rated.items()
        )
        return [Tally((), (), personas=personas)]

    def _rate(self, value: Rated, rated: dict[tuple[int, str], list[float]]) -> None:
        """Count the answers by the persona the customer got at their latest contact
        (none before one, or while the personas warmed up: not counted by persona)."""
        persona = self.persona_of.get(value.customer_id)
        if persona is None:
            return
        entry = rated.get((value.hour, persona))
        if entry is None:
            rated[(value.hour, persona)] = list(value.counts)
        else:
            entry[:] = [a + b for a, b in zip(entry, value.counts, strict=True)]

    def on_notify(self) -> tuple[Iterable[DecideOut], bool]:
        if self.held:  # right after a batch that scored contacts, in its activation
            self.held = False
            return [], RETAIN
        return self._learn(), RETAIN

    def on_eof(self) -> tuple[Iterable[DecideOut], bool]:
        return self._learn(len(self.backlog)), RETAIN

    def notify_at(self) -> datetime | None:
        return _NOW if self.backlog or self.model.due() else None

    def _learn(self, n: int | None = None) -> list[DecideOut]:
        backlog = self.backlog
        n = max(LEARN_PER_BATCH, len(backlog) // 4) if n is None else n
        out: list[DecideOut] = []
        for _ in range(min(n, len(backlog))):
            out.extend(self.on_item(backlog.popleft())[0])
        # a step of a refit that is due, one step at a time (a contact arriving meanwhile
        # waits a ms or two, not a whole refit).  Past BACKLOG_SOFT this runs in an
        # activation with contacts too: at rates where every activation has some, it is
        # how a refit goes on (else it would wait until STALE_FITS refits overdue, and
        # then run whole, in a contact's activation)
        self.model.maintain(whole=False)
        return out

    def _remember(self, customer_id: str, persona: Persona | None) -> None:
        """The customer's persona at this contact, for their answers (kept in order of
        the latest contact: the oldest goes first past :data:`MAX_PERSONAS_KEPT`)."""
        kept = self.persona_of
        kept.pop(customer_id, None)
        if persona is None:
            return
        kept[customer_id] = sys.intern(persona.persona_id)  # (one string a persona)
        if len(kept) > MAX_PERSONAS_KEPT:
            del kept[next(iter(kept))]

    def _unprofile(self, customer_id: str) -> None:
        """The customer objects to profiling: nothing of theirs waits to be learned or
        scored here (the matured examples and silences in the backlog, the model's
        snapshots for its refit, the uplift's open decisions, their persona)."""
        self.persona_of.pop(customer_id, None)
        self.backlog = deque(v for v in self.backlog if v.customer_id != customer_id)
        self.model.forget(customer_id)
        self.uplift.forget(customer_id)

    def _refusal(self, consents: Consents | None, channel: str) -> Refusal | None:
        """What the customer's consent forbids on ``channel`` (None: nothing can be)."""
        policy = self.consent
        if consents is None and policy.all_granted:
            return None

        def refuse(action: Action) -> str | None:
            if action.purpose is None:
                return None
            return policy.refusal(consents, action.purpose, channel)

        return refuse

    def _outbound_channels(
        self, consents: Consents | None, action: Action
    ) -> tuple[tuple[str, ...], str | None]:
        """The action's outbound channels the customer's consent allows (contact, and
        its purpose), and why none is, if none is."""
        policy = self.consent
        if consents is None and policy.all_granted:
            return action.outbound, None
        allowed: list[str] = []
        why: str | None = None
        for channel in action.outbound:
            refused = policy.refusal(consents, "contact", channel)
            if refused is None and action.purpose is not None:
                refused = policy.refusal(consents, action.purpose, channel)
            if refused is None:
                allowed.append(channel)
            elif why is None:
                why = refused
        return tuple(allowed), None if allowed else why

    def _unscored(self, req: ScoreRequest) -> list[DecideOut]:
        """A contact of a customer who objects to profiling: the alert without a score,
        a service action chosen without the model, and nothing to learn from."""
        now_ms = req.event.ts
        customer, channel = req.customer_id, req.event.channel
        self.outbound.contacted(customer, now_ms)
        self.arbiter.expire(now_ms)
        refuse = self._refusal(req.consent, channel)
        decision = self.arbiter.select_without_model(
            customer, req.features, channel, now_ms=now_ms, refuse=refuse
        )
        payload = build_alert(
            kind="contact",
            event=req.event,
            churn_probability=None,
            previous_probability=None,
            model="",
            reasons=[],
            journey=req.journey,
            decision=decision,
            emitted_at=int(self.clock() * 1000),
            policy_version="service fallback",
            consent=self.consent.view(req.consent, channel),
            notes=[OBJECTED_NOTE, *consent_notes(decision)],
        )
        self.arbiter.offered(customer, payload["alert_id"], decision, now_ms, learn=False)
        self.n_scored += 1
        return [
            Alert(payload["alert_id"], payload),
            ProfileUpdate(
                customer, {"risk": None, "last_alert_id": payload["alert_id"], "persona": None}
            ),
        ]

    def _decide(self, req: ScoreRequest) -> list[DecideOut]:
        # (the request's fields read once: each read is a Python attribute lookup)
        customer, moment, x = req.customer_id, req.moment, req.features
        ts, channel = req.event.ts, req.event.channel
        if self.consent.objected(req.consent):
            # (the customer step sends only contacts of such a customer)
            return self._unscored(req) if moment == "contact" else []
        if moment == "trigger" and self._held_back(customer, ts):
            return []  # a rule fired, and the contact policy holds it back: nothing to score
        model = self.model
        p = model.predict_proba_one(x)
        previous = None if req.previous is None else model.predict_proba_one(req.previous)
        stage = model.stage
        reasons, holding = explain(x, model.contributions(x))
        version = f"{model.version} ({stage})"
        scored = Scored(p, previous, version, reasons, holding)
        if moment in _BETWEEN_CONTACTS:  # no contact: the profile's risk, kept fresh
            if moment == "silence":  # a pending example (a rule's moment is not)
                model.observe_snapshot(customer, ts, x, p)
            silent = risk_of(p, previous, model=version, reasons=reasons, holding_down=holding)
            silent.update(scored_at_event_ts=ts, moment=moment)
            out: list[DecideOut] = [ProfileUpdate(customer, {"risk": silent})]
            if self.proactive.enabled:
                out.extend(self._proactive(req, scored))
            return out
        persona = self.personas.learn_predict_one(x)
        self._remember(customer, persona)
        now_ms = ts
        if moment == "contact":
            self.outbound.contacted(customer, now_ms)
        self.arbiter.expire(now_ms)
        refuse = self._refusal(req.consent, channel)
        decision = self.arbiter.select_one(customer, x, p, channel, now_ms=now_ms, refuse=refuse)
        payload = self._alert("contact", req, scored, decision, persona, channel)
        if refuse is not None:
            payload["notes"] = consent_notes(decision)
        self.arbiter.offered(customer, payload["alert_id"], decision, now_ms)
        model.observe_snapshot(customer, now_ms, x, p)
        self.n_scored += 1
        risk: dict[str, Any] = {
            **payload["risk"],
            "scored_at_event_ts": ts,
            "moment": moment,
        }
        out = [
            Alert(payload["alert_id"], payload),
            ProfileUpdate(
                customer,
                {"risk": risk, "last_alert_id": payload["alert_id"], "persona": payload["persona"]},
            ),
        ]
        if self.n_scored == 1:
            out.append(self.status())
        if moment == "event" and self.proactive.enabled:
            out.extend(self._proactive(req, scored))
        return out

    def _proactive(self, req: ScoreRequest, scored: Scored) -> list[DecideOut]:
        """A moment between contacts: if a rule fired or the risk calls for it, and the
        contact policy allows, the action worth most (or none, or the hold-out)."""
        cfg = self.proactive
        customer, ts = req.customer_id, req.event.ts
        p, previous = scored.p, scored.previous
        if req.trigger is not None:
            kind, (name, words) = "rule", req.trigger
        else:
            fired = model_trigger(p, previous, step=cfg.risk_step, high=HIGH)
            if fired is None or not cfg.model_triggers:
                return []
            kind, name, words = "model", fired, MODEL_TRIGGER_WORDS[fired]
        if req.moment != "trigger" and self._held_back(customer, ts):  # (a rule's was checked)
            return []
        value = float(req.journey.get("value") or 0.0) or cfg.default_value
        eligible, excluded = self.arbiter.candidates(
            customer, req.features, p, None, now_ms=ts, outbound=True
        )
        options = []
        for action in eligible:
            channels, refused = self._outbound_channels(req.consent, action)
            if refused is not None:
                excluded[action.action_id] = refused
                continue
            channel = self.outbound.channel(customer, channels, ts)
            if channel is None:
                excluded[action.action_id] = "its channels' weekly caps are reached"
                continue
            uplift = self.uplift.draw(
                action.action_id, name, prior=action.uplift, prior_sd=cfg.uplift_prior_sd
            )
            options.append((p * value * uplift - action.cost, uplift, action, channel))
        options.sort(key=lambda o: o[0], reverse=True)
        trigger = {"kind": kind, "name": name, "event_id": req.event.event_id, "why": words}
        aid = alert_id("proactive", req.event.event_id)
        ids = tuple(a.action_id for a in eligible)
        # A rule is the business asking to act: the best action goes, whatever its
        # expected value.  The model's own triggers act only where it pays.
        if not options or (kind == "model" and options[0][0] <= 0):
            self.funnel["skipped"] += 1
            ev = round(options[0][0], 2) if options else 0.0
            return [Proactive(aid, customer, trigger, ts, None, False, ev, None, None, ids)]
        _, uplift, action, channel = options[0]
        # what is shown and written: the expected value at the uplift's posterior mean
        # (the draw that chose the action varies while few outcomes are known)
        mean, _ = self.uplift.posterior(
            action.action_id, name, prior=action.uplift, prior_sd=cfg.uplift_prior_sd
        )
        ev = p * value * mean - action.cost
        control = in_holdout(customer, cfg.holdout)
        not_before = quiet_until(ts, req.tz, cfg.quiet_hours)
        expires_at = (not_before or ts) + int(cfg.expires_hours * HOUR_MS)
        outbound = {
            "alert_id": aid,
            "customer_id": customer,
            "action_id": action.action_id,
            "channel": channel,
            "template": action.template or action.action_id,
            "expires_at": expires_at,
            "not_before": not_before,
            "control": control,
            "trigger": name,
            "expected_value": round(ev, 2),
        }
        self.outbound.acted(customer, None if control else channel, ts)
        self.uplift.opened(customer, ts, action.action_id, name, control)
        self.funnel["control" if control else "acted"] += 1
        if control:
            return [
                Proactive(
                    aid, customer, trigger, ts, action.action_id, True, ev, None, outbound, ids
                )
            ]
        decision = Decision(
            action,
            round(ev, 2),
            round(self.arbiter.model.mean(action.action_id, "proactive"), 4),
            (
                f"churn {p:.2f} x value {value:g} x uplift {mean:.3f} - cost {action.cost:g} "
                f"= {ev:.1f} (chosen on an uplift draw of {uplift:.3f}); trigger {name}"
            ),
            tuple((a.action_id, round(e, 2)) for e, _, a, _ in options[1:4]),
            excluded,
            "proactive",
            reason=f"{words[0].upper()}{words[1:]}. {_proactive_reason(len(options))}",
            alternative_titles=tuple(a.title for _, _, a, _ in options[1:4]),
        )
        payload = self._alert("proactive", req, scored, decision, None, channel)
        if req.consent is not None or not self.consent.all_granted:
            payload["notes"] = consent_notes(decision)
        payload.update(
            alert_id=aid,
            contact_id=None,
            agent_id=None,
            queue=cfg.queue,
            channel=channel,
            trigger=trigger,
            expected_value=round(ev, 2),
            not_before=not_before,
            expires_at=expires_at,
        )
        self.arbiter.offered(customer, aid, decision, ts)
        return [
            Proactive(
                aid, customer, trigger, ts, action.action_id, False, ev, payload, outbound, ids
            )
        ]

    def _alert(
        self,
        kind: str,
        req: ScoreRequest,
        scored: Scored,
        decision: Decision,
        persona: Persona | None,
        channel: str,
    ) -> dict[str, Any]:
        return build_alert(
            kind=kind,
            event=req.event,
            churn_probability=scored.p,
            previous_probability=scored.previous,
            model=scored.model,
            reasons=scored.reasons,
            holding_down=scored.holding,
            journey=req.journey,
            decision=decision,
            emitted_at=int(self.clock() * 1000),
            policy_version=self.arbiter.version,
            persona=None if persona is None else persona.as_dict(),
            consent=self.consent.view(req.consent, channel),
        )

    def _held_back(self, customer_id: str, ts: int) -> bool:
        """A trigger fired: whether the contact policy holds it back (counted either way)."""
        self.funnel["triggered"] += 1
        blocked = self.outbound.block(customer_id, ts)
        if blocked is None:
            return False
        self.outbound.refuse(blocked)
        return True

    def status(self) -> ModelStatus:
        fields: dict[str, Any] = {"version": self.model.version, "n_scored": self.n_scored}
        fields.update(self.model.metrics())
        fields.update(self.arbiter.stats())
        fields.update(self.personas.stats())
        if self.proactive.enabled:
            fields["proactive"] = {
                **self.uplift.counts(),
                "funnel": dict(sorted(self.funnel.items())),
                "blocked": dict(sorted(self.outbound.blocked.items())),
            }
        return ModelStatus("", fields)  # the flow stamps the shard (with_shard)

    def snapshot(self) -> bytes:
        if not self.keep_snapshots:
            return b""
        return pickle.dumps(
            (
                self.model,
                self.n_scored,
                self.arbiter,
                self.status_at,
                self.personas,
                tuple(self.backlog),
                self.outbound,
                self.uplift,
                self.funnel,
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
