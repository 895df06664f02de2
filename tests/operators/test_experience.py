from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.evaluate import Row
from operators.events import Event
from operators.experience import (
    ExperienceReport,
    Kpis,
    ces_figure,
    csat_figure,
    nps_figure,
)
from tests.conftest import DAY, T0

MIN = 60_000


def row(customer: str, minute: int, channel: str, type_: str, **attrs: object) -> Row:
    e = Event(
        f"{customer}-{minute}-{type_}", customer, None, T0 + minute * MIN, channel, type_, attrs
    )
    return Row(e)


def test_nps_csat_and_ces_by_hand() -> None:
    k = Kpis()
    for nps in (10, 10, 9, 5):  # 3 promoters, 1 detractor
        k.add({"nps": nps})
    for csat in (5, 4, 3, 2):
        k.add({"csat": csat})
    for ces in (1, 2, 3, 6):
        k.add({"ces": ces})
    f = k.figures()
    assert (f["nps"]["value"], f["nps"]["n"]) == (50.0, 4)
    # scores +1, +1, +1, -1: mean 0.5, variance 1 - 0.25 = 0.75
    half = 1.959964 * math.sqrt(0.75 / 4)
    assert f["nps"]["ci"] == pytest.approx(
        [100 * (0.5 - half), 100 * min(1.0, 0.5 + half)], abs=0.01
    )
    assert (f["csat"]["value"], f["csat"]["n"]) == (50.0, 4)
    low, high = f["csat"]["ci"]
    assert low < 50.0 < high
    assert (f["ces"]["value"], f["ces"]["n"]) == (3.0, 4)
    sd = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + (6 - 3) ** 2) / 3)
    assert f["ces"]["ci"] == pytest.approx([3 - 1.959964 * sd / 2, 3 + 1.959964 * sd / 2], abs=0.01)


def test_no_answers_no_figures() -> None:
    assert nps_figure(0, 0, 0) == {"value": None, "n": 0, "ci": None}
    assert csat_figure(0, 0)["value"] is None
    assert ces_figure(1, 4.0, 16.0) == {"value": 4.0, "n": 1, "ci": None}
    assert not Kpis().add({"nps": True, "text": "x"})  # a bool is no score


@given(st.lists(st.integers(0, 10), min_size=1, max_size=300))
def test_nps_is_promoters_minus_detractors_and_its_interval_holds_it(scores: list[int]) -> None:
    k = Kpis()
    for s in scores:
        k.add({"nps": s})
    f = k.figures()["nps"]
    promoters = sum(s >= 9 for s in scores)
    detractors = sum(s <= 6 for s in scores)
    assert f["value"] == pytest.approx(100 * (promoters - detractors) / len(scores), abs=0.005)
    assert -100 <= f["ci"][0] <= f["value"] <= f["ci"][1] <= 100
    assert len(k.__slots__) == 8  # the same size for 1 or a million answers


def small_log() -> list[Row]:
    """Four customers: two take web -> voice (60 and 120 s apart), rate it, and one of
    them cancels; one complains by email then cancels; one only browses."""
    return [
        row("a", 0, "web", "page_view"),
        row("a", 1, "voice", "contact_start"),
        row("a", 2, "survey", "survey", nps=10, csat=5, ces=2),
        row("b", 0, "web", "page_view"),
        row("b", 2, "voice", "contact_start"),
        row("b", 3, "survey", "survey", nps=3, csat=2, ces=6),
        row("b", 10, "web", "cancel"),
        row("c", 0, "email", "complaint"),
        row("c", 5, "voice", "contact_end", csat=1),
        row("c", 6, "web", "cancel"),
        row("d", 0, "web", "page_view"),
    ]


def test_a_small_log_by_hand() -> None:
    r = ExperienceReport().observe_all(small_log()).result()
    assert (r["events"], r["customers"], r["churn_rate"]) == (11, 4, 0.5)
    kpis = r["kpis"]
    assert kpis["overall"]["nps"]["value"] == 0.0  # one promoter, one detractor
    assert kpis["overall"]["csat"]["n"] == 3
    assert kpis["overall"]["csat"]["value"] == pytest.approx(100 / 3, abs=0.01)
    # a survey rates the touchpoint before it; a csat on a contact_end rates that
    by_touchpoint = kpis["by_touchpoint"]
    assert set(by_touchpoint) == {"voice·contact_start", "voice·contact_end"}
    assert by_touchpoint["voice·contact_start"]["ces"]["value"] == 4.0
    assert by_touchpoint["voice·contact_end"]["csat"]["value"] == 0.0
    assert set(kpis["by_channel"]) == {"survey", "voice"}
    steps = {(t["from"], t["to"]): t for t in r["journey_map"]["transitions"]}
    web_voice = steps[("web·page_view", "voice·contact_start")]
    assert (web_voice["count"], web_voice["median_gap_s"], web_voice["churn_rate"]) == (
        2,
        90.0,
        0.5,
    )
    # the survey is no step of the journey; the step into the churn itself led nowhere
    into_churn = steps[("voice·contact_start", "web·cancel")]
    assert (into_churn["count"], into_churn["churn_rate"]) == (1, None)
    assert r["journey_map"]["to_churn"] == []  # no step taken by 20 customers
    impact = {t["touchpoint"]: t for t in r["touchpoints"]}
    # the complaint: 1 of 1 churned, against 1 of 3 without
    assert impact["email·complaint"]["churn_lift"] == pytest.approx(1 - 1 / 3, abs=1e-4)
    assert impact["email·complaint"]["n"] == 1
    # the cancel itself is no touchpoint before churn: only those who had it before churning
    assert "web·cancel" not in impact
    assert impact["web·page_view"]["churn_with"] == pytest.approx(1 / 3, abs=1e-4)
    assert r["touchpoints"][0]["touchpoint"] in ("email·complaint", "voice·contact_end")


def test_file_labels_say_who_churned_and_when() -> None:
    rows = [
        Row(Event("1", "x", None, T0, "web", "apply", {}), 1, T0 + DAY),
        Row(Event("2", "x", None, T0 + 2 * DAY, "web", "after", {}), 1, T0 + DAY),
        Row(Event("3", "y", None, T0, "web", "apply", {}), 0, T0 + DAY),
    ]
    r = ExperienceReport().observe_all(rows).result()
    assert r["churn_rate"] == 0.5
    impact = {t["touchpoint"]: t for t in r["touchpoints"]}
    assert impact["web·apply"]["n"] == 2
    assert "web·after" not in impact  # after the outcome: it cannot have led there


def test_the_gap_sample_stays_bounded_and_the_median_close() -> None:
    report = ExperienceReport()
    for i in range(5000):
        report.observe(row(f"c{i}", 0, "web", "page_view"))
        report.observe(row(f"c{i}", 1 + i % 9, "voice", "contact_start"))
    [t] = report.transitions.values()
    assert (t.count, len(t.gaps)) == (5000, 512)
    [step] = report.result()["journey_map"]["transitions"]
    assert 240 <= step["median_gap_s"] <= 360  # gaps of 1-9 minutes, median 5


@pytest.mark.parametrize("seed", [3, 11])
def test_a_planted_bad_touchpoint_ranks_first_by_churn_lift_and_by_effort(seed: int) -> None:
    """The simulator plants a step that truly raises churn and effort; the report finds it
    first among every touchpoint, complaints and failed payments included."""
    from operators.simulate import SimConfig, Simulator

    bad = ("app", "checkout_error")
    sim = Simulator(SimConfig(customers=2000, seed=seed, bad_touchpoint=bad))
    r = ExperienceReport().observe_all(Row(e) for e in sim.take(100_000)).result()
    first, second = r["touchpoints"][:2]
    assert first["touchpoint"] == "app·checkout_error"
    assert first["ci"][0] > 0  # its lift is clear of nothing
    assert first["churn_lift"] > second["churn_lift"]
    ces = {
        k: v["ces"]["value"] for k, v in r["kpis"]["by_touchpoint"].items() if v["ces"]["n"] >= 30
    }
    assert max(ces, key=lambda k: ces[k]) == "app·checkout_error"


def test_without_a_planted_touchpoint_the_simulated_stream_is_unchanged() -> None:
    from operators.simulate import SimConfig, Simulator

    plain = Simulator(SimConfig(customers=50, seed=5)).take(2000)
    assert not any(e.type == "checkout_error" or "ces" in e.attrs for e in plain)
    planted = Simulator(SimConfig(customers=50, seed=5, bad_touchpoint=("app", "checkout_error")))
    again = planted.take(2000)
    # the same customers' first steps, until the first planted one changes a hazard
    first = next(i for i, e in enumerate(again) if e.type == "checkout_error")
    assert [e.event_id for e in again[:first]] == [e.event_id for e in plain[:first]]
