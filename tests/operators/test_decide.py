from __future__ import annotations

import itertools
import pickle
import random

from operators.decide import WARMUP_EXAMPLES, DecideLogic, with_shard
from operators.erasure import Forgotten
from operators.journey import FEATURE_NAMES
from operators.records import (
    Alert,
    DecideIn,
    Erase,
    Example,
    ModelStatus,
    Outcome,
    ProfileUpdate,
    ScoreRequest,
    model_shard,
)
from state.catalog import default_catalog
from tests.conftest import T0, ev

CATALOG = default_catalog()


def x(**values: float) -> dict[str, float]:
    base = dict.fromkeys(FEATURE_NAMES, 0.0)
    base.update(values)
    return base


def request(**values: float) -> ScoreRequest:
    e = ev(9, "contact_start", channel="voice", agent_id="a1", queue="care", contact_id="ct9")
    return ScoreRequest(
        "c1", e, x(**values), None, {"open_complaints": int(values.get("complaints_open", 0))}
    )


def test_model_status_is_reported_at_most_once_per_interval() -> None:
    now = [0.0]
    d = DecideLogic(
        None, catalog=CATALOG, clock=lambda: now[0], status_every=10, status_interval_s=1.0
    )
    statuses = 0
    for i in range(200):
        now[0] = i * 0.05  # 20 examples per second of wall time
        out, _ = d.on_item(Example("c", x(complaints_open=float(i % 3)), i % 2, T0, T0))
        statuses += sum(isinstance(o, ModelStatus) for o in out)
    assert statuses == 10  # every 10 examples would be 20; once per second is 10


def test_score_request_becomes_an_alert_with_reasons_and_an_action() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    out, _ = d.on_item(request(complaints_open=1.0, contacts_7d=3.0))
    [alert] = [o for o in out if isinstance(o, Alert)]
    payload = alert.payload
    assert payload["emitted_at"] == 1500
    # the prior's contributions: 3 contacts x 0.2 outweigh 1 open complaint x 0.35
    assert payload["risk"]["reasons"][:2] == ["3rd contact in 7 days", "1 open complaint"]
    assert payload["risk"]["model"].endswith("(prior)")  # no evidence yet: the prior speaks
    assert payload["next_best_action"]["action_id"] == "resolve_complaint"
    assert any(isinstance(o, ProfileUpdate) for o in out)
    assert any(isinstance(o, ModelStatus) for o in out)  # first score reports the model


def test_learning_moves_scores_and_explanations_follow_the_model() -> None:
    ticks = itertools.count()
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: float(next(ticks)), status_every=100)
    rng = random.Random(1)
    statuses = []
    for _ in range(1000):
        complaints = float(rng.randint(0, 3))
        y = int(rng.random() < 0.1 + 0.25 * complaints)
        out, _ = d.on_item(Example("c", x(complaints_open=complaints), y, T0, T0))
        statuses += [o for o in out if isinstance(o, ModelStatus)]
    assert len(statuses) == 10
    assert statuses[-1].fields["n_learned"] == 1000
    assert statuses[-1].fields["roc_auc"] > 0.6
    out, _ = d.on_item(request(complaints_open=3.0, contacts_7d=3.0))
    [alert] = [o for o in out if isinstance(o, Alert)]
    risk = alert.payload["risk"]
    assert risk["churn_probability"] > 0.5
    assert "warming up" not in risk["model"]
    assert risk["reasons"][0] == "3 open complaints"
    assert WARMUP_EXAMPLES <= 1000


def test_snapshot_restores_the_model() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    for i in range(60):
        d.on_item(Example("c", x(complaints_open=float(i % 2)), i % 2, T0, T0))
    clone = DecideLogic(d.snapshot(), catalog=CATALOG, clock=lambda: 0.0)
    req = request(complaints_open=1.0)
    assert clone.on_item(req)[0] == d.on_item(req)[0]


def test_shard_helpers() -> None:
    assert model_shard("anyone", 1) == "m0"
    assert {model_shard(f"c{i}", 4) for i in range(100)} == {"m0", "m1", "m2", "m3"}
    status = with_shard(("m3", ModelStatus("", {"version": "v"})))
    assert isinstance(status, ModelStatus)
    assert status.shard == "m3"


def test_without_recovery_the_snapshot_is_empty_and_cheap() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, keep_snapshots=False)
    d.on_item(Example("c", x(complaints_open=1.0), 1, T0, T0))
    assert d.snapshot() == b""
    fresh = DecideLogic(b"", catalog=CATALOG, clock=lambda: 0.0)
    assert fresh.model.n_learned == 0


def test_erase_drops_the_customer_from_the_arbiter_and_goes_on_to_the_store() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    out, _ = d.on_item(request(complaints_open=1.0, contacts_7d=3.0))
    [alert] = [o for o in out if isinstance(o, Alert)]
    assert "c1" in d.arbiter.customers()
    out, _ = d.on_item(Erase("c1"))
    assert list(out) == [Erase("c1")]
    assert "c1" not in d.arbiter.customers()
    assert b"c1" not in pickle.dumps(d.arbiter.history) + pickle.dumps(d.arbiter.pending)
    # The open recommendation still teaches the acceptance model when answered.
    action = alert.payload["next_best_action"]["action_id"]
    out, _ = d.on_item(Outcome("c1", alert.alert_id, action, "declined", T0))
    assert any(isinstance(o, ModelStatus) for o in out)
    assert d.arbiter.customers() == set()


def test_a_model_snapshot_from_before_an_erasure_forgets_on_resume() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    d.on_item(request(complaints_open=1.0, contacts_7d=3.0))
    snap = d.snapshot()
    forgotten = Forgotten()
    forgotten.add("c1")
    resumed = DecideLogic(snap, catalog=CATALOG, clock=lambda: 1.5, forgotten=forgotten)
    assert resumed.arbiter.customers() == set()
    assert DecideLogic(snap, catalog=CATALOG, clock=lambda: 1.5).arbiter.customers() == {"c1"}


def examples(n: int) -> list[DecideIn]:
    return [Example("c", x(complaints_open=float(i % 2)), i % 2, T0, T0) for i in range(n)]


def test_learning_waits_for_an_activation_without_contacts_and_is_bounded() -> None:
    from operators.decide import LEARN_PER_BATCH

    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0, warmup=0)
    batch: list[DecideIn] = [*examples(30), request(complaints_open=1.0), *examples(10)]
    out, _ = d.on_batch(batch)
    assert any(isinstance(o, Alert) for o in out)
    assert d.model.n_learned == 0  # the alert goes out before any learning
    assert d.notify_at() is not None  # learning is asked for at once...
    d.on_notify()  # ...but not in the activation that scored the contact
    assert d.model.n_learned == 0
    d.on_notify()  # the next activation
    assert d.model.n_learned == LEARN_PER_BATCH
    d.on_batch(examples(2))  # a batch without contacts learns too
    assert d.model.n_learned == 2 * LEARN_PER_BATCH
    d.on_eof()
    assert d.model.n_learned == 42
    assert not d.backlog
    assert d.notify_at() is None


def test_a_backlog_past_its_bound_is_learned_even_in_batches_with_contacts() -> None:
    from operators.decide import BACKLOG_SOFT

    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    d.on_batch([*examples(BACKLOG_SOFT + 100), request(complaints_open=1.0)])
    assert d.model.n_learned == (BACKLOG_SOFT + 100) // 4


def test_a_backlog_is_learned_a_quarter_at_a_time_so_it_cannot_grow_without_bound() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    for _ in range(20):
        d.on_batch(examples(400))
    assert len(d.backlog) < 400 * 4  # settles: a quarter of 1,600 is 400 a batch
    assert d.model.n_learned + len(d.backlog) == 8000


def test_the_backlog_survives_a_snapshot() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 0.0)
    d.on_batch(examples(40))
    clone = DecideLogic(d.snapshot(), catalog=CATALOG, clock=lambda: 0.0)
    assert len(clone.backlog) == len(d.backlog) > 0


def test_a_silence_updates_the_profiles_risk_and_alerts_nobody() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    e = ev(9, "silence", channel="app")
    req = ScoreRequest("c1", e, x(complaints_open=1.0), None, {}, "silence")
    out, _ = d.on_batch([req])
    [profile] = out
    assert isinstance(profile, ProfileUpdate)
    risk = profile.fields["risk"]
    assert risk["moment"] == "silence"
    assert risk["scored_at_event_ts"] == e.ts
    assert risk["reasons"] == ["1 open complaint"]
    assert 0.0 < risk["churn_probability"] < 1.0
    assert not d.held  # nothing for an agent: learning need not wait
    assert len(d.model.champion) == 1  # type: ignore[arg-type]  # in the refit window
    assert d.n_scored == 0  # the contacts scored


def test_a_silence_waits_for_the_contacts_of_its_batch() -> None:
    d = DecideLogic(None, catalog=CATALOG, clock=lambda: 1.5)
    silence = ScoreRequest("c1", ev(9, "silence"), x(), None, {}, "silence")
    contact = ScoreRequest("c2", ev(10, "contact_start", customer="c2"), x(), None, {})
    out, _ = d.on_batch([silence, contact])
    assert sum(isinstance(o, Alert) for o in out) == 1
    assert [o.customer_id for o in out if isinstance(o, ProfileUpdate)] == ["c2"]
    assert d.held
    assert len(d.backlog) == 1
    assert list(d.on_notify()[0]) == []  # the activation that scored the contact
    [later] = d.on_notify()[0]
    assert isinstance(later, ProfileUpdate)
    assert later.customer_id == "c1"
    assert later.fields["risk"]["moment"] == "silence"
