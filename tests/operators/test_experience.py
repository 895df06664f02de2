from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.customer import CustomerConfig, CustomerLogic, Watermark
from operators.evaluate import Row
from operators.events import Event
from operators.experience import (
    MAX_SERIES,
    MAX_TRANSITIONS,
    ExperienceReport,
    Kpis,
    LiveConfig,
    LiveExperience,
    TallyBuffer,
    ces_figure,
    csat_figure,
    live_view,
    nps_figure,
)
from operators.journey import features, summary
from operators.records import Alert, Rated, Rating, Tally
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
    # (rounded to 2 decimals: off by at most half a hundredth, plus float's own error)
    exact = 100 * (promoters - detractors) / len(scores)
    assert f["value"] == pytest.approx(exact, abs=0.005 + 1e-9)
    assert -100 <= f["ci"][0] <= f["value"] <= f["ci"][1] <= 100
    assert len(dataclasses.fields(k)) == 8  # the same size for 1 or a million answers
    assert not hasattr(k, "__dict__")


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
    assert set(kpis["by_channel"]) == {"voice"}  # the channel rated, not the survey's
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
    assert min(ces, key=lambda k: ces[k]) == "app·checkout_error"  # the hardest (7: easy)


def test_without_a_planted_touchpoint_the_simulated_stream_is_unchanged() -> None:
    from operators.simulate import SimConfig, Simulator

    plain = Simulator(SimConfig(customers=50, seed=5)).take(2000)
    assert not any(e.type == "checkout_error" or "ces" in e.attrs for e in plain)
    planted = Simulator(SimConfig(customers=50, seed=5, bad_touchpoint=("app", "checkout_error")))
    again = planted.take(2000)
    # the same customers' first steps, until the first planted one changes a hazard
    first = next(i for i, e in enumerate(again) if e.type == "checkout_error")
    assert [e.event_id for e in again[:first]] == [e.event_id for e in plain[:first]]


# ---------------------------------------------------------------- live, in event time

HOUR = 3_600_000
H0 = T0 - T0 % (24 * HOUR)  # a midnight


def rating(i: int, ts: int, *, ces: float | None = None, nps: float | None = None) -> Rating:
    return Rating(ts, f"r{i}", "app", "app·checkout", "care", nps, None, ces)


def live(**config: float) -> LiveExperience:
    cfg = LiveConfig(every_s=0.0, **config)  # type: ignore[arg-type]
    return LiveExperience(None, config=cfg, clock=lambda: 0.0, keep_snapshots=True)


def test_live_kpis_in_day_windows_by_hand_and_a_drop_raises_one_trend_alert() -> None:
    """Two days of CES answers: 5 and 6 on the first (mean 5.5), 3 and 4 on the second
    (3.5); the day after closes the second day's last hour: one alert, for the day
    window, with the figures computed by hand."""
    exp = live(z=3.0, min_n=30)
    alerts = []
    for i in range(48):  # day 1: two an hour
        alerts += exp.rate(rating(i, H0 + (i // 2) * HOUR, ces=5 + i % 2))
    for i in range(48):  # day 2
        alerts += exp.rate(rating(100 + i, H0 + (24 + i // 2) * HOUR, ces=3 + i % 2))
    assert alerts == []  # a window is tested when an hour closes, the last is still open
    alerts = exp.rate(rating(999, H0 + 48 * HOUR, nps=10))
    assert len(alerts) == 4  # ces: overall, by channel, touchpoint and queue
    [overall] = [a for a in alerts if a.payload["trend"]["dimension"] == "overall"]
    trend = overall.payload["trend"]
    assert (trend["metric"], trend["window"], trend["value"]) == ("ces", "day", None)
    assert trend["current"]["value"] == 3.5
    assert trend["previous"]["value"] == 5.5
    assert trend["current"]["n"] == trend["previous"]["n"] == 48
    # each day: variance of 24 a and 24 b (one apart) = 0.25 * 48/47; se of the difference
    se = math.sqrt(2 * 0.25 * 48 / 47 / 48)
    assert trend["deviation"] == pytest.approx(se, abs=0.001)
    assert trend["z"] == pytest.approx(2.0 / se, abs=0.1)
    assert trend["window_start"] == H0 + 24 * HOUR
    assert {a.payload["trend"]["dimension"] for a in alerts} == {
        "overall",
        "channel",
        "touchpoint",
        "queue",
    }
    # the same drop, still there at the next hour, does not alert again
    assert exp.rate(rating(1000, H0 + 49 * HOUR, nps=10)) == []
    view = live_view([exp.counts()])
    assert view is not None
    day = view["kpis"]["overall"]["day"]["ces"]
    # the day window now holds hours 26-49: 44 answers of day 2 (mean 3.5)
    assert (day["value"], day["n"]) == (3.5, 44)
    assert day["previous"]["n"] == 48  # hours 2-25: 44 of day 1 (5.5) and 4 of day 2
    assert day["change"] == pytest.approx(3.5 - (44 * 5.5 + 4 * 3.5) / 48, abs=0.01)
    assert set(view["kpis"]["by_queue"]) == {"care"}
    assert view["kpis"]["by_touchpoint"]["app·checkout"]["day"]["ces"]["n"] == 44


def test_no_alert_while_event_time_has_not_covered_two_windows() -> None:
    exp = live(z=1.0, min_n=2)
    alerts = []
    for i in range(30):  # a drop within the first day: no window before it to compare
        alerts += exp.rate(rating(i, H0 + i * HOUR // 2, ces=7 if i < 14 else 1))
    assert alerts == []


def test_a_rise_is_no_alert_and_answers_older_than_the_windows_are_late() -> None:
    exp = live(z=2.0, min_n=10)
    alerts = []
    for i in range(96):
        alerts += exp.rate(rating(i, H0 + (i // 2) * HOUR, ces=2 if i < 48 else 6))
    alerts += exp.rate(rating(500, H0 + 48 * HOUR, ces=6))
    assert alerts == []  # better is never a trend alert
    assert exp.rate(rating(501, H0 + 48 * HOUR - 336 * HOUR, ces=1)) == []
    assert exp.counters["late"] == 1
    assert exp.counters["ratings"] == 97


def test_hours_without_answers_empty_the_windows() -> None:
    exp = live()
    exp.rate(rating(1, H0, ces=3))
    exp.rate(rating(2, H0 + 3 * 7 * 24 * HOUR, nps=9))  # three weeks later
    view = live_view([exp.counts()])
    assert view is not None
    assert view["kpis"]["overall"]["week"]["ces"]["n"] == 0
    assert view["kpis"]["overall"]["week"]["ces"]["previous"]["n"] == 0
    assert view["kpis"]["overall"]["day"]["nps"]["n"] == 1


def test_journey_map_churn_and_touchpoint_lift_from_labelled_periods_by_hand() -> None:
    """Four periods: A->B churned, A->B retained, A retained, C churned."""
    exp = live()
    a, b, c = "web·page_view", "app·checkout", "voice·contact_start"
    exp.tally(labelled([((a, b), ((a, b),), 1), ((a, b), ((a, b),), 0)]))
    exp.tally(labelled([((a,), (), 0), ((c,), (), 1)]))
    exp.tally(Tally((((a, b), 3, (60_000, 120_000, 180_000)),), ((b, 2, -0.5),)))
    exp.tally(Tally((((a, b), 1, (240_000,)),), ()))
    view = live_view([exp.counts()], min_periods=1)
    assert view is not None
    m = view["journey_map"]
    assert (m["periods"], m["churn_rate"]) == (4, 0.5)
    [step] = m["transitions"]
    assert (step["from"], step["to"], step["count"], step["median_gap_s"]) == (a, b, 4, 150.0)
    assert (step["periods"], step["churn_rate"]) == (2, 0.5)
    impact = {t["touchpoint"]: t for t in view["touchpoints"]}
    # C: 1 of 1 churned against 1 of 3: lift 2/3
    assert impact[c]["churn_lift"] == pytest.approx(2 / 3, abs=0.001)
    assert (impact[c]["n"], impact[c]["churn_with"]) == (1, 1.0)
    # B: 1 of 2 against 1 of 2; A: 1 of 3 against 1 of 1
    assert impact[b]["churn_lift"] == 0.0
    assert impact[a]["churn_lift"] == pytest.approx(1 / 3 - 1, abs=0.001)
    assert [t["touchpoint"] for t in view["touchpoints"]] == [c, b, a]
    assert impact[b]["sentiment_change"] == {"value": -0.25, "n": 2}


def test_the_counts_of_several_processes_add_up_to_those_of_one() -> None:
    one, left, right = live(), live(), live()
    for i in range(200):
        r = Rating(
            H0 + i * 997_000,
            f"e{i}",
            ("app", "web")[i % 2],
            ("app·checkout", "web·search", "voice·contact_start")[i % 3],
            ("care", None)[i % 2],
            float(i % 11),
            float(1 + i % 5),
            float(1 + i % 7),
        )
        one.rate(r)
        (left if i % 3 else right).rate(r)
        period = labelled([((r.touchpoint,), (), int(i % 4 == 0))])
        one.tally(period)
        (left if i % 2 else right).tally(period)
    # both processes have seen the same newest hour (as the flow's watermark makes them)
    for i, part in enumerate((left, right)):
        last = Rating(H0 + 200 * 997_000, f"last{i}", "app", "app·checkout", None, None, None, 4.0)
        one.rate(last)
        part.rate(last)
    together = live_view([one.counts()])
    apart = live_view([left.counts(), right.counts()])
    assert together == apart


def customer_logic(mode: str = "cancel", horizon_days: int = 10) -> CustomerLogic:
    config = CustomerConfig(label_mode=mode, horizon_ms=horizon_days * DAY)
    return CustomerLogic(None, config=config, clock=lambda: 0.0, tally=TallyBuffer(every_s=1e9))


def ev_(i: int, day: float, channel: str, type_: str, **attrs: object) -> Event:
    return Event(f"e{i}", "c1", None, T0 + int(day * DAY), channel, type_, attrs)


Period = tuple[tuple[str, ...], tuple[tuple[str, str], ...], int]  # touchpoints, steps, churned


def labelled(periods: Sequence[Period]) -> Tally:
    """A tally of labelled customer-periods (as a worker's hands them over: counted by
    touchpoint and by step)."""
    touched: Counter[str] = Counter()
    touched_churned: Counter[str] = Counter()
    took: Counter[tuple[str, str]] = Counter()
    took_churned: Counter[tuple[str, str]] = Counter()
    for touchpoints, steps, churned in periods:
        touched.update(touchpoints)
        took.update(steps)
        if churned:
            touched_churned.update(touchpoints)
            took_churned.update(steps)
    return Tally(
        (),
        (),
        (),
        (len(periods), sum(p[2] for p in periods)),
        tuple((k, n, touched_churned[k]) for k, n in touched.items()),
        tuple((k, n, took_churned[k]) for k, n in took.items()),
    )


@dataclass
class Counted:
    """What a customer's events put in the worker's tallies, together."""

    steps: list[tuple[tuple[str, str], int, tuple[int, ...]]]
    sentiment: list[tuple[str, int, float]]
    ratings: list[tuple[int, str, str, str | None, tuple[float, ...], int, float]]
    periods: tuple[int, int]  # labelled, churned
    touched: dict[str, tuple[int, int]]  # touchpoint -> periods, churned
    took: dict[tuple[str, str], tuple[int, int]]  # step -> periods, churned


def counted(logic: CustomerLogic, events: Iterable[Event] = (), *, until: int = 0) -> Counted:
    """What the customer's events (then event time reaching ``until``) put in the
    worker's tally: the tallies handed over, and what is left, together."""
    assert logic.tally is not None
    tallies = [o for e in events for o in logic.on_item(e)[0] if isinstance(o, Tally)]
    if until:
        logic.advance(until)
    left = logic.tally.take(0.0, force=True)
    tallies += [left] if left is not None else []
    touched: dict[str, tuple[int, int]] = {}
    took: dict[tuple[str, str], tuple[int, int]] = {}
    for t in tallies:
        for name, n, churned in t.touched:
            a, b = touched.get(name, (0, 0))
            touched[name] = (a + n, b + churned)
        for step, n, churned in t.took:
            a, b = took.get(step, (0, 0))
            took[step] = (a + n, b + churned)
    return Counted(
        [x for t in tallies for x in t.steps],
        [x for t in tallies for x in t.sentiment],
        [x for t in tallies for x in t.ratings],
        (sum(t.periods[0] for t in tallies), sum(t.periods[1] for t in tallies)),
        touched,
        took,
    )


NONE = (0, 0)  # no labelled period


def test_a_cancel_in_the_second_half_labels_the_period_churned_at_its_end() -> None:
    logic = customer_logic()
    t = counted(
        logic,
        [
            ev_(1, 0, "web", "page_view"),
            ev_(2, 1, "app", "checkout"),
            ev_(3, 2, "survey", "survey", ces=2, nps=3),
            ev_(4, 6, "web", "page_view"),  # the second half: not a touchpoint of the period
            ev_(5, 7, "web", "cancel"),
        ],
    )
    assert t.periods == NONE  # labelled at its end, not at the cancel
    [(hour, channel, touchpoint, queue, counts, ces_n, _)] = t.ratings
    assert (hour, channel, touchpoint, queue) == (
        (T0 + 2 * DAY) // HOUR,
        "app",
        "app·checkout",
        None,
    )
    assert counts == (1, 0, 1, 0, 0, 1, 2.0, 4.0)  # NPS 3 (a detractor), CES 2
    assert ces_n == 0  # no CES before
    t = counted(logic, until=T0 + 10 * DAY)
    assert t.periods == (1, 1)  # one period, churned
    assert t.touched == {"web·page_view": (1, 1), "app·checkout": (1, 1)}
    assert t.took == {("web·page_view", "app·checkout"): (1, 1)}  # a survey is no step


def test_a_cancel_in_the_first_half_drops_the_period_and_no_cancel_is_retention() -> None:
    early = customer_logic()
    t = counted(early, [ev_(1, 0, "web", "page_view"), ev_(2, 2, "web", "cancel")])
    assert t.periods == NONE
    assert counted(early, until=T0 + 30 * DAY).periods == NONE
    stays = customer_logic()
    t = counted(stays, [ev_(1, 0, "web", "page_view"), ev_(2, 11, "app", "search")])
    assert (t.periods, t.touched) == ((1, 0), {"web·page_view": (1, 0)})
    assert stays.cx is not None
    assert stays.cx.opened == T0 + 11 * DAY


def test_inactivity_mode_labels_by_activity_in_the_second_half() -> None:
    active = customer_logic("inactivity")
    t = counted(
        active,
        [ev_(1, 0, "web", "page_view"), ev_(2, 6, "app", "search"), ev_(3, 10, "web", "search")],
    )
    assert t.periods == (1, 0)
    silent = customer_logic("inactivity")
    counted(silent, [ev_(1, 0, "web", "page_view"), ev_(2, 3, "app", "search")])
    assert silent.next_deadline() == T0 + 10 * DAY
    t = counted(silent, until=T0 + 10 * DAY)
    assert (t.periods, t.took) == ((1, 1), {("web·page_view", "app·search"): (1, 1)})


def late_customer(mode: str) -> tuple[CustomerLogic, Watermark]:
    """A customer of a 10-day horizon whose worker's event time another customer moved
    on to day 100: the customer's own events come far behind it."""
    watermark = Watermark()
    config = CustomerConfig(label_mode=mode, horizon_ms=10 * DAY)
    logic = CustomerLogic(
        None, config=config, clock=lambda: 0.0, watermark=watermark, tally=TallyBuffer()
    )
    watermark.observe(T0 + 100 * DAY)
    return logic, watermark


@pytest.mark.parametrize("mode", ["cancel", "inactivity"])
def test_an_event_a_horizon_behind_event_time_opens_no_period(mode: str) -> None:
    logic, _ = late_customer(mode)
    t = counted(logic, [ev_(1, 0, "web", "page_view"), ev_(2, 1, "app", "checkout")])
    assert logic.cx is not None
    assert logic.cx.opened < 0
    assert t.periods == NONE  # no period the stream had ended before it was seen
    assert [step[:2] for step in t.steps] == [(("web·page_view", "app·checkout"), 1)]
    assert counted(logic, until=T0 + 200 * DAY).periods == NONE
    # nothing of the period is due: no wake-up a second later for each late event
    assert logic.next_deadline() != T0 + 10 * DAY


@pytest.mark.parametrize("mode", ["cancel", "inactivity"])
def test_a_period_event_time_has_ended_closes_at_the_next_event_as_at_a_wake_up(
    mode: str,
) -> None:
    """The label the customer's next event closes it with is the one the wake-up due at
    its end would have given; the event then opens the next period."""
    woken, _ = late_customer(mode)
    at_event, watermark = late_customer(mode)
    for logic in (woken, at_event):
        logic.watermark.now = T0  # (each its own worker)
        counted(logic, [ev_(1, 0, "web", "page_view"), ev_(2, 6, "app", "search")])
    woken.watermark.observe(T0 + 10 * DAY)
    by_wake_up = counted(woken, until=T0 + 10 * DAY)
    watermark.observe(T0 + 10 * DAY)  # another customer's event; no wake-up came yet
    # its own time is still in the period, but the stream has passed its end
    by_event = counted(at_event, [ev_(3, 9, "chat", "chat_message")])
    assert (by_event.periods, by_event.touched) == (by_wake_up.periods, by_wake_up.touched)
    # active after the landmark (day 5), no cancel: not churned
    assert (by_event.periods, by_event.touched) == ((1, 0), {"web·page_view": (1, 0)})
    assert at_event.cx is not None
    assert at_event.cx.opened == T0 + 9 * DAY


def test_an_objection_to_profiling_drops_the_period_but_answers_still_count() -> None:
    logic = customer_logic()
    t = counted(
        logic,
        [
            ev_(1, 0, "web", "page_view"),
            ev_(2, 1, "app", "consent", purpose="profiling", granted=False),
            ev_(3, 2, "chat", "chat_message", csat=2),
        ],
    )
    assert len(t.ratings) == 1
    assert logic.cx is not None
    assert logic.cx.opened < 0
    assert counted(logic, until=T0 + 30 * DAY).periods == NONE


def test_the_workers_tally_counts_steps_and_sentiment_changes_and_hands_them_over() -> None:
    tally = TallyBuffer(every_s=5.0)
    clock = [0.0]
    logic = CustomerLogic(None, config=CustomerConfig(), clock=lambda: clock[0], tally=tally)
    out = [*logic.on_item(ev_(1, 0, "chat", "chat_message", sentiment=0.5))[0]]
    out += logic.on_item(ev_(2, 0.1, "web", "page_view"))[0]  # the first step: handed over
    [first] = [o for o in out if isinstance(o, Tally)]
    assert first.steps == ((("chat·chat_message", "web·page_view"), 1, (int(0.1 * DAY),)),)
    out = [*logic.on_item(ev_(3, 0.2, "email", "complaint", sentiment=-0.5))[0]]
    out += logic.on_item(ev_(4, 0.3, "web", "page_view"))[0]
    assert not any(isinstance(o, Tally) for o in out)  # within 5 s of the last
    clock[0] = 10.0
    [t] = [o for o in logic.on_notify()[0] if isinstance(o, Tally)]
    assert {k: c for k, c, _ in t.steps} == {
        ("web·page_view", "email·complaint"): 1,
        ("email·complaint", "web·page_view"): 1,
    }
    assert t.sentiment == (("web·page_view", 1, -1.0),)  # -0.5 after a sentiment of 0.5
    assert logic.on_eof()[0] == []  # nothing left at the end of the input


def test_ces_is_kept_in_the_journey_and_is_a_feature() -> None:
    logic = customer_logic()
    logic.on_item(ev_(1, 0, "survey", "survey", ces=7))
    x = features(logic.journey, T0 + DAY)
    assert (x["ces"], x["ces_known"]) == (1.0, 1.0)
    assert summary(logic.journey, T0)["ces"] == 7.0
    t = counted(
        logic, [ev_(2, 1, "voice", "contact_start"), ev_(3, 1.1, "survey", "survey", ces=3)]
    )
    rated = [r for r in t.ratings if r[2] == "voice·contact_start"]
    assert [(r[5], r[6]) for r in rated] == [(1, -4.0)]  # one CES change: 3 after 7
    assert "ces" not in features(customer_logic().journey, T0)  # sparse: only when known


def test_live_state_is_bounded_whatever_the_number_of_series_and_steps() -> None:
    exp = live()
    for i in range(2 * MAX_SERIES):
        exp.rate(Rating(H0, f"e{i}", f"ch{i}", f"ch{i}·t", None, 9.0, None, None))
    assert len(exp.rings) == MAX_SERIES
    assert exp.counters["series_dropped"] > 0
    exp.tally(Tally(tuple(((f"a{i}", "b"), 1, (1,)) for i in range(MAX_TRANSITIONS + 10)), ()))
    assert len(exp.transitions) == MAX_TRANSITIONS
    assert exp.counters["dropped"] == 10


def live_run(
    seed: int, share: float, *, onset_day: float, days: float
) -> tuple[list[Alert], dict[str, Any]]:
    """A simulated stream through the customer step (a shared tally and watermark, as a
    worker has) into the live experience; the trend alerts and the view at the end."""
    from operators.simulate import SimConfig, Simulator

    start = T0
    sim = Simulator(
        SimConfig(
            customers=5000,
            seed=seed,
            start_ms=start,
            bad_touchpoint=("app", "checkout_error"),
            bad_share=share,
            bad_from_ms=start + int(onset_day * DAY),
        )
    )
    tally, watermark = TallyBuffer(every_s=0.0), Watermark()
    logics: dict[str, CustomerLogic] = {}
    exp = LiveExperience(None, config=LiveConfig(every_s=1e9), clock=lambda: 0.0)
    alerts: list[Alert] = []

    def feed(outs: Iterable[object]) -> None:
        for o in outs:
            if isinstance(o, Tally):
                alerts.extend(a for a in exp.on_item(o)[0] if isinstance(a, Alert))

    end = start + int(days * DAY)
    while True:
        batch = sim.take(5000)
        for e in batch:
            logic = logics.get(e.key)
            if logic is None:
                logic = logics[e.key] = CustomerLogic(
                    None,
                    config=CustomerConfig(),
                    clock=lambda: 0.0,
                    tally=tally,
                    watermark=watermark,
                )
            feed(logic.on_item(e)[0])
        for logic in logics.values():
            feed(logic.on_notify()[0])
        if batch[-1].ts >= end:
            break
    view = live_view([exp.counts()])
    assert view is not None
    return alerts, view


@pytest.mark.parametrize("seed", [3, 11])
def test_a_planted_bad_touchpoint_shows_as_a_ces_drop_and_a_trend_alert_within_a_day(
    seed: int,
) -> None:
    """From day 7 a tenth of the digital steps fail (``app·checkout_error``: more churn,
    more effort).  Within a day of the onset the live view's CES falls and a ``ces``
    trend alert is raised; the same stream without the failures raises none then."""
    onset = T0 + 7 * DAY
    alerts, view = live_run(seed, 0.1, onset_day=7, days=8.1)
    ces = [a.payload for a in alerts if a.payload["trend"]["metric"] == "ces"]
    after = [a for a in ces if a["event_ts"] >= onset]
    assert after, "no ces trend alert after the onset"
    first = after[0]
    assert first["event_ts"] < onset + DAY + HOUR  # within one window (the hour it closes)
    assert first["trend"]["drop"] > 0
    assert view["kpis"]["overall"]["day"]["ces"]["change"] < 0
    assert view["kpis"]["by_channel"]["app"]["day"]["ces"]["change"] < 0
    control, _ = live_run(seed, 0.0, onset_day=7, days=8.1)
    assert not [
        a
        for a in control
        if a.payload["trend"]["metric"] == "ces" and a.payload["event_ts"] >= onset
    ]


def test_answers_by_persona_count_in_their_own_series_only() -> None:
    """A model shard's answers by persona open ``persona=`` series, shown by the
    persona's latest name; the same answers, counted by the workers, are the overall
    figures (not counted twice)."""
    exp = live()
    exp.rate(rating(1, H0, nps=9))
    exp.rate(rating(2, H0, nps=3))
    exp.rate(rating(3, H0, nps=10))
    hour = H0 // HOUR
    exp.tally(
        Tally(
            (),
            (),
            personas=(
                (hour, "m0/p1", "high value", (2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
                (hour, "m0/p4", "complainer", (1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
            ),
        )
    )
    promoter = (1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the cluster renamed since
    exp.tally(Tally((), (), personas=((hour, "m0/p1", "high value, regular buyer", promoter),)))
    view = live_view([exp.counts()])
    assert view is not None
    kpis = view["kpis"]
    assert kpis["overall"]["day"]["nps"]["n"] == 3  # 2 promoters, 1 detractor: 33.3
    assert kpis["overall"]["day"]["nps"]["value"] == pytest.approx(100 / 3, abs=0.01)
    by_persona = kpis["by_persona"]
    assert set(by_persona) == {"high value, regular buyer (m0/p1)", "complainer (m0/p4)"}
    assert by_persona["high value, regular buyer (m0/p1)"]["day"]["nps"]["n"] == 3
    assert by_persona["high value, regular buyer (m0/p1)"]["day"]["nps"]["value"] == 100.0
    assert by_persona["complainer (m0/p4)"]["day"]["nps"]["value"] == -100.0


def test_the_customer_step_sends_answers_to_the_model_shard_for_the_persona() -> None:
    logic = customer_logic()
    out = logic.on_item(ev_(1, 0, "voice", "contact_start", queue="care"))[0]
    out = logic.on_item(ev_(2, 0.1, "survey", "survey", nps=9, ces=6))[0]
    [rated] = [o for o in out if isinstance(o, Rated)]
    assert (rated.customer_id, rated.hour) == ("c1", (T0 + int(0.1 * DAY)) // HOUR)
    assert rated.counts == (1, 1, 0, 0, 0, 1, 6.0, 36.0)
    objected = customer_logic()
    objected.on_item(ev_(1, 0, "app", "consent", purpose="profiling", granted=False))
    out = objected.on_item(ev_(2, 0.1, "survey", "survey", nps=9))[0]
    assert not any(isinstance(o, Rated) for o in out)  # no persona without profiling
    off = CustomerLogic(None, config=CustomerConfig(), clock=lambda: 0.0)  # no experience
    assert not any(
        isinstance(o, Rated) for o in off.on_item(ev_(1, 0, "survey", "survey", nps=9))[0]
    )
