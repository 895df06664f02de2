"""Personas: online clusters of journey features, named by their traits."""

from __future__ import annotations

import math
import pickle
import statistics
from collections import defaultdict

import pytest
from river import cluster, preprocessing

from operators.customer import CustomerConfig, CustomerLogic
from operators.personas import HALFLIFE, NAMES, TRAITS, K, Personas, persona_features
from operators.records import ScoreRequest
from operators.simulate import SimConfig, Simulator


def contact_moments(events: int, customers: int) -> tuple[list[ScoreRequest], Simulator]:
    sim = Simulator(SimConfig(customers=customers, seed=9))
    logics: dict[str, CustomerLogic] = {}
    out: list[ScoreRequest] = []
    for _ in range(events):
        e = sim.next_event()
        logic = logics.get(e.key)
        if logic is None:
            logic = logics[e.key] = CustomerLogic(
                None, config=CustomerConfig(), clock=lambda: 0.0, keep_snapshots=False
            )
        for item in logic.on_item(e)[0]:
            if isinstance(item, ScoreRequest):
                out.append(item)
    return out, sim


def test_no_persona_while_warming_up_then_an_id_and_a_name_of_traits() -> None:
    personas = Personas(warmup=5)
    x = {"value_log": 4.0, "channel:voice": 1.0, "complaints_total": 3.0}
    assert [personas.learn_predict_one(x) for _ in range(4)] == [None] * 4
    persona = personas.learn_predict_one(x)
    assert persona is not None
    assert persona.persona_id in {f"p{c}" for c in range(K)}
    words = set(TRAITS.values())
    assert all(part in words for part in persona.name.split(", "))
    assert persona.as_dict() == {"id": persona.persona_id, "name": persona.name}
    restored = pickle.loads(pickle.dumps(personas))
    assert restored.predict_one(x) == personas.predict_one(x)


def test_features_are_bounded_shares_and_counts() -> None:
    f = persona_features({"channel:app": 2.0, "channel:web": 2.0, "purchases": 0.0})
    assert f["digital"] == 1.0
    assert f["voice"] == 0.0
    assert f["purchases"] == 0.0
    assert persona_features({})["digital"] == 0.0  # no channel yet: no share


def test_personas_on_simulated_journeys_differ_in_churn_propensity() -> None:
    """The simulator's latent churn propensity is not a feature, yet the clusters it
    drives (complaints, contacts, sentiment, purchases) should tell customers apart."""
    moments, sim = contact_moments(80_000, 1000)
    personas = Personas()
    latent: dict[str, list[float]] = defaultdict(list)
    names: dict[str, set[str]] = defaultdict(set)
    for req in moments:
        persona = personas.learn_predict_one(req.features)
        p = sim.propensity(req.customer_id)
        if persona is not None and p is not None:
            latent[persona.persona_id].append(p)
            names[persona.persona_id].add(persona.name)
    used = {pid: statistics.mean(ps) for pid, ps in latent.items() if len(ps) >= 100}
    assert len(used) >= 3
    assert max(used.values()) - min(used.values()) > 0.1
    assert len(personas.stats()["personas"]) == K  # type: ignore[arg-type]


def _river() -> tuple[preprocessing.StandardScaler, cluster.KMeans]:
    """River's scaler and k-means as Personas used them (the reference)."""
    kmeans = cluster.KMeans(n_clusters=K, halflife=HALFLIFE, sigma=1.0, seed=1)
    return preprocessing.StandardScaler(), kmeans


def _river_step(
    scaler: preprocessing.StandardScaler, kmeans: cluster.KMeans, x: dict[str, float]
) -> int:
    """One contact moment through River's two: the cluster it joins."""
    z = persona_features(x)
    scaler.learn_one(z)
    return int(kmeans.learn_predict_one(scaler.transform_one(z)))


def test_the_personas_cluster_as_rivers_scaler_and_k_means_do() -> None:
    requests, _ = contact_moments(6000, 300)
    personas = Personas(warmup=1)
    scaler, kmeans = _river()
    for c, centre in enumerate(personas.centers):  # the same starting centres
        kmeans.centers[c].update(zip(NAMES, centre, strict=True))
    for req in requests:
        expected = _river_step(scaler, kmeans, req.features)
        got = personas.learn_predict_one(req.features)
        assert got is not None
        assert got.persona_id == f"p{expected}"
    for c, centre in enumerate(personas.centers):
        assert centre == [pytest.approx(kmeans.centers[c][n], abs=1e-9) for n in NAMES]


def test_each_persona_feature_reads_its_own_journey_feature() -> None:
    x = {
        "value_log": 1.5,
        "tenure_log": 2.5,
        "contacts_7d": 3.0,
        "complaints_total": 4.0,
        "sentiment": -0.5,
        "purchases": 6.0,
        "page_views_log": 7.5,
        "payment_failures_30d": 2.0,
        "channel:web": 1.0,
        "channel:app": 2.0,
        "channel:voice": 3.0,
        "channel:store": 4.0,
    }
    assert persona_features(x) == {
        "value": 1.5,
        "tenure": 2.5,
        "contacts": 3.0,
        "complaints": math.log1p(4.0),
        "sentiment": -0.5,
        "purchases": math.log1p(6.0),
        "browsing": 7.5,
        "payment_failures": 2.0,
        "digital": 0.3,
        "voice": 0.3,
    }
    assert tuple(persona_features({})) == NAMES
    assert {name for name, _ in TRAITS} == set(NAMES)
