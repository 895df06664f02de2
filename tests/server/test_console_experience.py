"""The supervisor's "Experience" panel in a real browser, and the KPI drop alerts.

The ``stats`` frame's ``experience`` (server/supervisor.py, from the flow's counts) has
NPS, CSAT and CES over the last day and week against the window before (higher is better
for all three), the journey map and the touchpoints ranked by churn lift; its ``trends``
now hold drops in NPS, CSAT or CES besides the spikes in complaints and contacts.  Each
test starts `cxstream serve` alone for the page and answers the page's WebSocket itself
(Playwright's ``route_web_socket``): a welcome as a supervisor, then ``stats`` frames
built from ``experience_frame.json`` (a real frame of the simulator's flow), so the page
is checked against exactly these figures.  The last test signs in on the real server,
which has no experience counts yet.  Saves artifacts/experience.png (1280 px wide), the
picture in docs/experience.png.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.server.test_console import (
    ARTIFACTS,
    BROWSER_ARGS,
    CHROMIUM,
    agent_url,
    console_page,
    need_chromium,
    serving,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page, WebSocketRoute

pytestmark = pytest.mark.timeout(180)

FRAME: dict[str, Any] = json.loads(
    (Path(__file__).with_name("experience_frame.json")).read_text(encoding="utf-8")
)
EXPERIENCE: dict[str, Any] = FRAME["experience"]
WELCOME = {
    "type": "welcome",
    "agent_id": "sup-1",
    "queues": ["care"],
    "role": "supervisor",
    "currency": "EUR",
}
NOT_SHOWN = ("NaN", "undefined", "null", "[object Object]", "Infinity")
MINUS = "\u2212"  # the figures' minus sign
NONE = "\u2013"  # an en dash: no figure
TIMES = "\u00d7"
MAP_SIZE = 12  # touchpoints on each side of the map (MAP_SIZE in console.html)

SPIKE = {
    "alert_id": "tr_spike",
    "kind": "trend",
    "customer_id": None,
    "queue": None,
    "event_ts": 1770900000000,
    "trend": {
        "series": "complaints|topic=outage",
        "metric": "complaints",
        "dimension": "topic",
        "value": "outage",
        "count": 31,
        "window_ms": 3_600_000,
        "baseline": 2.4,
        "ratio": 12.9,
        "z": 18.1,
        "examples": [
            {
                "event_id": "e1",
                "ts": 1770899000000,
                "channel": "chat",
                "type": "complaint",
                "queue": None,
                "topic": "outage",
                "sentiment": -0.6,
            }
        ],
    },
}


def kpi_drop(
    alert_id: str,
    metric: str,
    dimension: str,
    value: str | None,
    window: str,
    before: float,
    now: float,
    n: int,
    *,
    z: float = 3.0,
) -> dict[str, Any]:
    """A KPI drop alert as operators/experience.py writes it."""
    return {
        "alert_id": alert_id,
        "kind": "trend",
        "customer_id": None,
        "contact_id": None,
        "agent_id": None,
        "queue": value if dimension == "queue" else None,
        "channel": None,
        "event_id": f"ev-{alert_id}",
        "event_ts": 1770899500000,
        "risk": None,
        "journey": None,
        "next_best_action": None,
        "trend": {
            "series": f"{metric}|{dimension if value is None else f'{dimension}={value}'}|{window}",
            "metric": metric,
            "dimension": dimension,
            "value": value,
            "count": n,
            "window": window,
            "window_ms": 86_400_000 if window == "day" else 604_800_000,
            "window_start": 1770813100000,
            "baseline": before,
            "current": {"value": now, "n": n, "ci": [now - 0.3, now + 0.3]},
            "previous": {"value": before, "n": n + 5, "ci": [before - 0.3, before + 0.3]},
            "drop": round(before - now, 2),
            "deviation": 0.2,
            "z": z,
            "ratio": None,
            "examples": [],
        },
    }


def frame(
    experience: Any = EXPERIENCE, trends: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A ``stats`` frame: the fixture's, with ``experience`` and ``trends`` replaced."""
    out = copy.deepcopy(FRAME)
    out["experience"] = copy.deepcopy(experience)
    if trends is not None:
        out["trends"] = trends
    return out


@contextlib.contextmanager
def supervisor_console(
    redis_url: str, folder: Path, first: dict[str, Any], *, width: int = 1280, height: int = 1000
) -> Iterator[tuple[Page, Callable[[dict[str, Any]], None], list[str]]]:
    """`cxstream serve` alone serves the page; its WebSocket is answered here: a welcome
    as a supervisor and ``first``.  Yields the page (live, ``first`` shown), a function
    that sends another frame, and the page errors seen."""
    from playwright.sync_api import sync_playwright

    need_chromium()
    sockets: list[WebSocketRoute] = []

    def on_socket(ws: WebSocketRoute) -> None:
        def on_message(message: str | bytes) -> None:
            m = json.loads(message)
            if m.get("type") == "auth":
                ws.send(json.dumps(WELCOME))
                ws.send(json.dumps(first))

        ws.on_message(on_message)
        sockets.append(ws)

    def send(m: dict[str, Any]) -> None:
        sockets[-1].send(json.dumps(m))

    errors: list[str] = []
    with serving(redis_url, folder) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(
                viewport={"width": width, "height": height}, locale="en-GB", timezone_id="UTC"
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route_web_socket("**/ws", on_socket)
            page.goto(agent_url(port, "sup-1", role="supervisor"))
            page.wait_for_selector("#status.live", timeout=15_000)
            page.wait_for_selector("#supervisor:not([hidden])", timeout=5_000)
            yield page, send, errors
        finally:
            browser.close()


def texts(page: Page, selector: str) -> list[str]:
    found = page.eval_on_selector_all(selector, "(es) => es.map((e) => e.textContent)")
    return [str(x) for x in found]


def no_placeholders(page: Page, selector: str) -> None:
    text = page.inner_text(selector)
    for word in NOT_SHOWN:
        assert word not in text, (word, text)


def map_names(transitions: list[dict[str, Any]]) -> list[str]:
    """The touchpoints on the map's sides, as the console picks them: the most frequent."""
    weight: dict[str, int] = {}
    for t in transitions:
        for name in (t["from"], t["to"]):
            weight[name] = weight.get(name, 0) + t["count"]
    return [n for n, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))][:MAP_SIZE]


def test_the_kpi_tiles_show_the_day_its_interval_and_change_and_the_week(
    redis_url: str, tmp_path: Path
) -> None:
    """Overall NPS, CSAT and CES: the day's figure with its 95% interval and n, the change
    against the day before as an arrow coloured better (up) or worse (down), the week
    smaller; by channel, queue or touchpoint in the table below; fits at 1024 px."""
    day = EXPERIENCE["kpis"]["overall"]["day"]
    week = EXPERIENCE["kpis"]["overall"]["week"]
    assert day["ces"]["change"] < 0 < day["nps"]["change"]  # what the checks below rely on
    with supervisor_console(redis_url, tmp_path, frame(), width=1024) as (page, _send, errors):
        page.wait_for_selector("#exp-figures:not([hidden])", timeout=10_000)
        assert not page.is_visible("#exp-none")
        assert texts(page, "#exp-tiles .kpi .name") == ["NPS", "CSAT", "CES"]

        ces = "#exp-tiles .kpi[data-metric=ces]"
        assert page.inner_text(f"{ces} .value") == f"{day['ces']['value']:.2f}" == "4.21"
        assert page.inner_text(f"{ces} .ci") == "last day · 95% 3.93 to 4.48 · n 140"
        change = page.locator(f"{ces} .change-line .change")
        assert change.inner_text() == f"▼ {MINUS}0.31"
        assert "worse" in (change.get_attribute("class") or "").split()
        assert float(change.get_attribute("data-change") or "nan") == day["ces"]["change"]
        assert "vs the day before (4.52)" in page.inner_text(f"{ces} .change-line")
        assert page.inner_text(f"{ces} .week") == f"last week 4.61 ▼ {MINUS}0.44 · n 997"
        assert week["ces"]["value"] == 4.61

        nps = "#exp-tiles .kpi[data-metric=nps]"
        assert page.inner_text(f"{nps} .value") == f"{MINUS}35.7"
        up = page.locator(f"{nps} .change-line .change")
        assert up.inner_text() == "▲ +0.4"
        assert "better" in (up.get_attribute("class") or "").split()
        # +0.37 points against intervals 24 points wide: said to be possibly chance
        assert "may be chance" in page.inner_text(f"{nps} .change-line")
        csat = "#exp-tiles .kpi[data-metric=csat]"
        assert page.inner_text(f"{csat} .value") == "54.3%"
        assert page.inner_text(f"{csat} .change-line .change") == f"▼ {MINUS}9.0"
        colours = page.evaluate(
            """(sels) => sels.map((s) => getComputedStyle(document.querySelector(s)).color)""",
            [f"{ces} .change-line .change", f"{nps} .change-line .change"],
        )
        assert colours[0] != colours[1], colours

        # by channel (the default), the most answers first; then by queue, by touchpoint
        by_channel = EXPERIENCE["kpis"]["by_channel"]
        rows = page.eval_on_selector_all(
            "#exp-breakdown tbody tr", "(rs) => rs.map((r) => r.dataset.name)"
        )
        assert sorted(rows) == sorted(by_channel)

        def day_n(name: str) -> int:
            return max(int(by_channel[name]["day"][m]["n"]) for m in ("nps", "csat", "ces"))

        assert [day_n(n) for n in rows] == sorted((day_n(n) for n in rows), reverse=True)
        app = page.inner_text('#exp-breakdown tr[data-name="app"]')
        assert re.search(rf"app\s+{MINUS}25\.5 = 0\.0\s+n 47 · week {MINUS}33\.2", app), app
        assert f"3.32 ▼ {MINUS}0.56" in app
        page.select_option("#exp-by", "by_queue")
        assert page.inner_text("#exp-by-name") == "queue"
        assert sorted(
            page.eval_on_selector_all(
                "#exp-breakdown tbody tr", "(rs) => rs.map((r) => r.dataset.name)"
            )
        ) == sorted(EXPERIENCE["kpis"]["by_queue"])
        page.select_option("#exp-by", "by_persona")  # a frame from before personas: none
        assert page.inner_text("#exp-by-name") == "persona"
        assert page.inner_text("#exp-breakdown tbody") == "No answers by persona yet."
        personas = copy.deepcopy(EXPERIENCE)  # (two personas with the channels' figures)
        by_channel = EXPERIENCE["kpis"]["by_channel"]
        personas["kpis"]["by_persona"] = {
            "high value, digital first": by_channel["app"],
            "frequent caller, unhappy": by_channel["voice"],
        }
        page.evaluate("(m) => renderStats(m)", frame(personas))
        assert sorted(
            page.eval_on_selector_all(
                "#exp-breakdown tbody tr", "(rs) => rs.map((r) => r.dataset.name)"
            )
        ) == ["frequent caller, unhappy", "high value, digital first"]
        page.evaluate("(m) => renderStats(m)", frame())
        page.select_option("#exp-by", "by_touchpoint")
        checkout = page.locator('#exp-breakdown tr[data-name="app·checkout_error"]')
        assert checkout.count() == 1
        assert checkout.inner_text().startswith("app·checkout_error")
        # a frame with the same figures (sent every 2 s at most) leaves the table as it is
        page.evaluate("document.querySelector('#exp-breakdown tbody tr').dataset.mark = 'kept'")
        page.evaluate("(m) => renderStats(m)", frame())
        assert page.input_value("#exp-by") == "by_touchpoint"
        assert page.locator("#exp-breakdown tbody tr[data-mark=kept]").count() == 1

        no_placeholders(page, "#experience")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1024, width
        assert errors == []


def test_the_journey_map_is_a_heat_map_coloured_by_churn(redis_url: str, tmp_path: Path) -> None:
    """The most frequent touchpoints, from (row) to next (column): a cell for each step
    between them, darker the more often it is taken, red (green) when more (less) churn
    followed than overall, its figures in the tooltip; the steps to churn and to retention
    in the frame's order."""
    journey = EXPERIENCE["journey_map"]
    base = journey["churn_rate"]
    names = map_names(journey["transitions"])
    expected = [t for t in journey["transitions"] if t["from"] in names and t["to"] in names]
    with supervisor_console(redis_url, tmp_path, frame()) as (page, _send, errors):
        page.wait_for_selector("#exp-map svg.map rect.cell", timeout=10_000)
        cells = page.eval_on_selector_all(
            "#exp-map rect.cell",
            """(rs) => rs.map((r) => ({from: r.dataset.from, to: r.dataset.to,
                count: Number(r.dataset.count), cls: r.getAttribute('class'),
                fill: r.getAttribute('fill'), title: r.querySelector('title').textContent,
                x: Number(r.getAttribute('x')), y: Number(r.getAttribute('y'))}))""",
        )
        assert [(c["from"], c["to"], c["count"]) for c in cells] == [
            (t["from"], t["to"], t["count"]) for t in expected
        ]
        labels = page.eval_on_selector_all(
            "#exp-map text[data-row]", "(ts) => ts.map((t) => t.lastChild.textContent)"
        )
        assert (
            labels
            == [  # names cut to 22 characters
                n if len(n) <= 22 else n[:21] + "…" for n in names
            ]
        )
        assert (
            page.eval_on_selector_all(
                "#exp-map text[data-row] title", "(ts) => ts.map((t) => t.textContent)"
            )
            == names
        )
        by_step = {(c["from"], c["to"]): c for c in cells}
        for t in journey["transitions"][:5]:  # the top transitions are all on the map
            c = by_step[(t["from"], t["to"])]
            tint = "up" if t["churn_rate"] > base else "down" if t["churn_rate"] < base else "flat"
            assert c["cls"] == f"cell {tint}", (t, c)
        tints = {c["cls"] for c in cells}
        assert {"cell up", "cell down"} <= tints, tints
        red = next(c for c in cells if c["cls"] == "cell up")
        green = next(c for c in cells if c["cls"] == "cell down")
        assert red["fill"].startswith("rgba(192,38,45,")
        assert green["fill"].startswith("rgba(30,127,79,")

        def alpha(c: dict[str, Any]) -> float:
            return float(c["fill"].rsplit(",", 1)[1].rstrip(")"))

        top = journey["transitions"][0]
        most = by_step[(top["from"], top["to"])]
        least = min(cells, key=lambda c: c["count"])
        assert alpha(most) == 1.0
        assert alpha(least) < alpha(most)
        assert most["title"] == (
            "voice·contact_start → voice·contact_end: 7,869 times, median gap 11 min, "
            "in 1,675 customer-periods, churn after it 20.2% (all: 18.8%)"
        )
        # the same column for the same destination, the same row for the same source
        for c in cells:
            assert c["x"] == cells[0]["x"] or c["to"] != cells[0]["to"]
            assert c["y"] == cells[0]["y"] or c["from"] != cells[0]["from"]
        assert "18.8%" in page.inner_text("#exp-legend")

        churn = texts(page, "#exp-to-churn li")
        assert len(churn) == len(journey["to_churn"])
        for line, t in zip(churn, journey["to_churn"], strict=True):
            assert line.startswith(f"{t['from']} → {t['to']}: "), line
        assert churn[0] == "web·payment_failed → web·cart_abandon: 48.3% churned · 29 periods"
        retention = texts(page, "#exp-to-retention li")
        assert retention[0] == "app·purchase → voice·complaint: 5.0% churned · 20 periods"
        assert len(retention) == len(journey["to_retention"])
        no_placeholders(page, "#experience")
        assert errors == []


def test_the_touchpoints_are_ranked_by_churn_lift_with_their_interval(
    redis_url: str, tmp_path: Path
) -> None:
    """A row a touchpoint in the frame's order: a bar from the zero line (red: more churn,
    green: less), its 95% interval as a whisker around the bar's end, n, and the change in
    sentiment and effort after it; a touchpoint with no outcome yet says so."""
    ranked = EXPERIENCE["touchpoints"]
    with supervisor_console(redis_url, tmp_path, frame()) as (page, _send, errors):
        page.wait_for_selector("#exp-impact .imp-row", timeout=10_000)
        shown = page.eval_on_selector_all(
            "#exp-impact .imp-row", "(rs) => rs.map((r) => r.dataset.touchpoint)"
        )
        assert shown == [t["touchpoint"] for t in ranked]
        geometry = page.eval_on_selector_all(
            "#exp-impact .imp-row",
            """(rs) => rs.map((r) => {
                const box = (s) => {
                    const e = r.querySelector(s);
                    if (!e) return null;
                    const b = e.getBoundingClientRect();
                    return {left: b.left, right: b.right, width: b.width};
                };
                const bar = r.querySelector('.imp-bar');
                return {zero: box('.imp-zero'), bar: box('.imp-bar'), ci: box('.imp-ci'),
                        down: bar ? bar.classList.contains('down') : null,
                        lift: r.querySelector('.lift').textContent,
                        after: r.querySelector('.after').textContent,
                        n: r.children[3].textContent};
            })""",
        )
        zero = geometry[0]["zero"]["left"]
        assert all(abs(g["zero"]["left"] - zero) < 0.5 for g in geometry)  # one zero line
        assert page.locator("#exp-impact .imp-zero").first.is_visible()
        for t, g in zip(ranked, geometry, strict=True):
            if t["churn_lift"] is None:
                assert g["bar"] is None
                assert g["ci"] is None
                assert g["lift"] == "not known"
                continue
            lift = t["churn_lift"]
            sign, points = g["lift"][0], float(g["lift"][1:].removesuffix(" pts"))
            assert sign == ("+" if lift > 0 else MINUS), g
            assert abs(points - abs(100 * lift)) <= 0.05 + 1e-9, g
            assert g["n"] == f"n {t['n']:,}"
            assert g["down"] == (lift < 0)
            bar, ci = g["bar"], g["ci"]
            if lift > 0:  # from zero to the right, the whisker around its end
                assert abs(bar["left"] - zero) < 1.5
                assert bar["right"] > zero
                assert ci["left"] - 1 <= bar["right"] <= ci["right"] + 1
            else:
                assert abs(bar["right"] - zero) < 1.5
                assert bar["left"] < zero
                assert ci["left"] - 1 <= bar["left"] <= ci["right"] + 1
            assert (ci["left"] < zero) == (t["ci"][0] < 0)
        first = geometry[0]
        assert first["lift"] == "+11.0 pts"
        assert first["down"] is False
        assert first["after"] == f"sentiment {MINUS}0.22 (n 163) · CES {MINUS}1.38 (n 26)"
        # a longer lift, a longer bar
        assert geometry[0]["bar"]["width"] > geometry[3]["bar"]["width"]
        checkout = shown.index("app·checkout_error")
        assert (
            geometry[checkout]["after"] == f"sentiment {MINUS}0.06 (n 103) · CES {MINUS}4.03 (n 38)"
        )
        checkout_row = '#exp-impact .imp-row[data-touchpoint="app·checkout_error"]'
        ces_after = page.locator(f"{checkout_row} .after b")
        assert ces_after.nth(1).inner_text() == f"{MINUS}4.03"
        assert "worse" in (ces_after.nth(1).get_attribute("class") or "").split()
        title = page.get_attribute("#exp-impact .imp-row >> nth=0", "title") or ""
        assert title == (
            "email·complaint: churn 28.1% with it, 17.0% without; lift +11.0 points "
            "(95% 6.8 to 15.4), n 467"
        )
        no_placeholders(page, "#exp-impact")
        assert errors == []


def test_kpi_drops_show_among_the_trends_and_spikes_as_before(
    redis_url: str, tmp_path: Path
) -> None:
    """A drop in NPS, CSAT or CES reads "CES · channel app · day: 5.41 → 4.81 (-0.60,
    z 3.0, n 73)" with both windows' intervals; a spike in complaints as before."""
    drop = kpi_drop("tr_ces_app", "ces", "channel", "app", "day", 5.41, 4.81, 73)
    trends = [*FRAME["trends"][2:], drop, SPIKE]
    assert len(trends) == 10
    with supervisor_console(redis_url, tmp_path, frame(trends=trends)) as (page, _send, errors):
        page.wait_for_selector(".trend[data-alert-id=tr_spike]", timeout=10_000)
        shown = page.eval_on_selector_all(
            "#trends .trend", "(ts) => ts.map((t) => t.dataset.alertId)"
        )
        assert shown == [t["alert_id"] for t in reversed(trends)]  # the newest on top
        assert page.inner_text(".trend[data-alert-id=tr_ces_app] .what") == (
            f"CES · channel app · day: 5.41 → 4.81 ({MINUS}0.60, z 3.0, n 73)"
        )
        assert page.inner_text(".trend[data-alert-id=tr_ces_app] .meta").startswith(
            "95% 4.51 to 5.11, the day before 5.11 to 5.71 (n 78) · "
        )
        # the fixture's: CSAT by channel, CES of a touchpoint, NPS overall and by queue
        what = {
            t["alert_id"]: page.inner_text(f".trend[data-alert-id={t['alert_id']}] .what")
            for t in FRAME["trends"][2:]
        }
        csat = FRAME["trends"][5]
        assert csat["trend"]["metric"] == "csat"
        assert csat["trend"]["dimension"] == "overall"
        c, p = csat["trend"]["current"], csat["trend"]["previous"]
        assert what[csat["alert_id"]] == (
            f"CSAT · overall · week: {p['value']:.1f}% → {c['value']:.1f}% "
            f"({MINUS}{csat['trend']['drop']:.1f}, z {csat['trend']['z']:.1f}, n {c['n']})"
        )
        tp = next(t for t in FRAME["trends"] if t["trend"]["dimension"] == "touchpoint")
        assert what[tp["alert_id"]].startswith(f"CES · touchpoint {tp['trend']['value']} · week: ")
        for t in FRAME["trends"][2:]:
            assert what[t["alert_id"]].startswith(t["trend"]["metric"].upper() + " · "), what
        # the spike as before
        spike = page.inner_text(".trend[data-alert-id=tr_spike]")
        assert "complaints · topic outage: 31 in 60 min" in spike
        assert f"usually 2.4 · 12.9{TIMES} the usual" in spike
        assert "chat complaint · outage" in spike
        no_placeholders(page, "#trends")
        assert errors == []


def test_no_experience_figures_yet_and_parts_empty(redis_url: str, tmp_path: Path) -> None:
    """``experience`` null: "No experience figures yet."; then figures with parts empty
    (no answers in the last day, no transitions, no touchpoints): each part says so; then
    null again; no page error, no "undefined" or "NaN"."""
    with supervisor_console(redis_url, tmp_path, frame(experience=None)) as (page, send, errors):
        page.wait_for_function(
            "document.querySelector('#risk-bands').textContent.startsWith('0 contacts')",
            timeout=10_000,
        )
        assert page.inner_text("#exp-none") == "No experience figures yet."
        assert page.is_visible("#exp-none")
        assert not page.is_visible("#exp-figures")

        week_only = copy.deepcopy(EXPERIENCE["kpis"]["overall"]["week"])
        partial = {
            "at": None,
            "windows": EXPERIENCE["windows"],
            "kpis": {
                "overall": {"week": {"ces": week_only["ces"]}},
                "by_channel": {},
                "by_touchpoint": {},
                "by_queue": {},
            },
            "journey_map": {
                "periods": 0,
                "churn_rate": None,
                "transitions": [],
                "to_churn": [],
                "to_retention": [],
            },
            "touchpoints": [],
        }
        send(frame(experience=partial))
        page.wait_for_selector("#exp-figures:not([hidden])", timeout=10_000)
        assert not page.is_visible("#exp-none")
        nps = page.inner_text("#exp-tiles .kpi[data-metric=nps]")
        assert "no answers in the last day" in nps
        assert "no answers in the last week" in nps
        ces = "#exp-tiles .kpi[data-metric=ces]"
        assert page.inner_text(f"{ces} .value") == NONE
        assert page.inner_text(f"{ces} .week") == f"last week 4.61 ▼ {MINUS}0.44 · n 997"
        assert page.inner_text("#exp-map") == "No transitions yet."
        assert page.inner_text("#exp-impact") == "No touchpoints yet."
        assert texts(page, "#exp-to-churn li") == ["No step taken often enough yet."]
        assert texts(page, "#exp-to-retention li") == ["No step taken often enough yet."]
        assert page.inner_text("#exp-breakdown tbody") == "No answers by channel yet."
        assert not page.inner_text("#exp-at").startswith("Answers up to")
        no_placeholders(page, "#experience")

        # transitions without churn figures, a touchpoint without lift nor changes
        partial["journey_map"]["transitions"] = [
            {
                "from": "a·x",
                "to": "b·y",
                "count": 3,
                "median_gap_s": None,
                "periods": 0,
                "churn_rate": None,
            }
        ]
        partial["touchpoints"] = [
            {
                "touchpoint": "a·x",
                "churn_lift": None,
                "ci": None,
                "n": 0,
                "churn_with": None,
                "churn_without": None,
                "sentiment_change": {"value": None, "n": 0},
                "ces_change": {"value": None, "n": 0},
            }
        ]
        send(frame(experience=partial))
        page.wait_for_selector("#exp-map rect.cell.flat", timeout=10_000)
        assert page.inner_text("#exp-impact .imp-row .lift") == "not known"
        assert page.inner_text("#exp-impact .imp-row .after") == f"sentiment {NONE} · CES {NONE}"
        no_placeholders(page, "#experience")

        send(frame(experience=None))
        page.wait_for_selector("#exp-none:not([hidden])", timeout=10_000)
        assert not page.is_visible("#exp-figures")
        assert errors == []


def test_every_name_from_the_frame_is_shown_as_text(redis_url: str, tmp_path: Path) -> None:
    """Channel, queue, touchpoint and trend names holding markup are shown as written and
    never run: no element is made of them."""
    evil = '<img src=x onerror="window.pwned=1">'
    tp = f"app·{evil}"
    x = copy.deepcopy(EXPERIENCE)
    x["kpis"]["by_channel"][evil] = x["kpis"]["by_channel"]["app"]
    x["kpis"]["by_touchpoint"][tp] = x["kpis"]["by_touchpoint"]["app·checkout_error"]
    x["journey_map"]["transitions"].insert(
        0, {**x["journey_map"]["transitions"][0], "from": tp, "count": 99_999}
    )
    x["journey_map"]["to_churn"][0]["to"] = tp
    x["touchpoints"][0]["touchpoint"] = tp
    drop = kpi_drop("tr_evil", "nps", "touchpoint", tp, "day", 10.0, -20.0, 50)
    with supervisor_console(redis_url, tmp_path, frame(x, [drop])) as (page, _send, errors):
        page.wait_for_selector("#exp-impact .imp-row", timeout=10_000)
        page.select_option("#exp-by", "by_touchpoint")
        page.wait_for_timeout(300)
        assert page.evaluate("window.pwned") is None
        assert page.locator("#supervisor img, #supervisor script").count() == 0
        assert page.get_attribute("#exp-impact .imp-row >> nth=0", "data-touchpoint") == tp
        assert page.inner_text("#exp-impact .imp-row .tp-name >> nth=0") == tp
        assert tp in page.inner_text("#exp-to-churn li >> nth=0")
        names = page.eval_on_selector_all(
            "#exp-breakdown tbody tr", "(rs) => rs.map((r) => r.dataset.name)"
        )
        assert names.count(tp) == 1
        assert f"NPS · touchpoint {tp} · day" in page.inner_text(".trend[data-alert-id=tr_evil]")
        titles = page.eval_on_selector_all("#exp-map title", "(ts) => ts.map((t) => t.textContent)")
        assert any(t.startswith(f"{tp} → ") for t in titles)
        page.select_option("#exp-by", "by_channel")
        assert page.locator('#exp-breakdown tr[data-name="app"]').count() == 1
        assert page.inner_text("#exp-breakdown tbody").count(evil) == 1
        assert errors == []


def test_a_picture_of_the_supervisor_view_with_the_experience(
    redis_url: str, tmp_path: Path
) -> None:
    """The supervisor view at 1280 px with the fixture's figures and trends: nothing
    wider than the window; saved as artifacts/experience.png."""
    drop = kpi_drop("tr_ces_app", "ces", "channel", "app", "day", 5.41, 4.81, 73)
    trends = [*FRAME["trends"][-2:], drop, SPIKE]
    with supervisor_console(redis_url, tmp_path, frame(trends=trends), height=900) as (
        page,
        _send,
        errors,
    ):
        page.wait_for_selector("#exp-impact .imp-row", timeout=10_000)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, width
        # the map and the steps side by side, the tiles in a row
        tiles = page.eval_on_selector_all(
            "#exp-tiles .kpi", "(ts) => ts.map((t) => t.getBoundingClientRect().top)"
        )
        assert len(set(tiles)) == 1, tiles
        box = page.locator("#exp-map svg").bounding_box()
        steps = page.locator("#exp-to-churn").bounding_box()
        assert box is not None
        assert steps is not None
        assert steps["x"] > box["x"] + box["width"]
        assert math.isclose(box["width"], float(page.get_attribute("#exp-map svg", "width") or 0))
        page.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        panels = page.locator("#supervisor").bounding_box()  # at the top: page coordinates
        assert panels is not None
        bottom = panels["y"] + panels["height"]
        page.screenshot(  # the supervisor's panels, not the empty list of cards below
            path=str(ARTIFACTS / "experience.png"),
            full_page=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 16},
        )
        assert errors == []
    assert (ARTIFACTS / "experience.png").stat().st_size > 50_000


def test_a_real_server_without_experience_counts_shows_the_placeholder(
    redis_url: str, tmp_path: Path
) -> None:
    """Signed in on `cxstream serve` itself (nothing mocked), before the flow has written
    any experience counts: the supervisor's frame comes, the panel says there is nothing
    yet, and no page error."""
    need_chromium()
    with (
        serving(redis_url, tmp_path) as port,
        console_page(agent_url(port, "sup-1", role="supervisor"), height=900) as (page, errors),
    ):
        page.wait_for_selector("#status.live", timeout=15_000)
        page.wait_for_function(
            "document.querySelector('#risk-bands').textContent.startsWith('0 contacts')",
            timeout=10_000,
        )
        assert page.is_visible("#experience")
        assert page.inner_text("#exp-none") == "No experience figures yet."
        assert not page.is_visible("#exp-figures")
        assert errors == []
