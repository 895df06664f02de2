"""``cxstream report --html OUT``: the report's figures as one self-contained page.

No script, no font, no request: inline CSS and SVG only, so the file opens anywhere
and can be mailed.  Every name from the log is escaped.

>>> page = render({"events": 1, "customers": 1, "churn_rate": 0.0, "kpis": {"overall": {
...     "nps": {"value": None, "n": 0, "ci": None}, "csat": {"value": None, "n": 0, "ci": None},
...     "ces": {"value": None, "n": 0, "ci": None}}, "by_touchpoint": {}, "by_channel": {}},
...     "journey_map": {"transitions": [], "to_churn": [], "to_retention": []},
...     "touchpoints": []}, title="<log>")
>>> "&lt;log&gt;" in page and "<script" not in page
True
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

NONE = "&ndash;"  # a figure there is no data for
MAP_SIZE = 12  # touchpoints on each side of the journey map
CELL = 34  # px


def _short(name: str, chars: int = 44) -> str:
    """A touchpoint's name for a chart's label, cut to ``chars``, escaped."""
    return escape(name if len(name) <= chars else name[: chars - 1] + "…")


def _pct(x: float | None) -> str:
    return NONE if x is None else f"{100 * x:.1f}%"


def _tile(name: str, figure: dict[str, Any], unit: str, hint: str) -> str:
    if not figure["n"]:
        value, sub = NONE, "no answers"
    else:
        value = f"{figure['value']:g}{unit}"
        ci = figure["ci"]
        sub = f"n {figure['n']:,}" + (f" · 95% {ci[0]:g} to {ci[1]:g}" if ci else "")
    return (
        f'<div class="tile"><div class="name">{name}</div><div class="value">{value}</div>'
        f'<div class="sub">{escape(sub)}</div><div class="hint">{hint}</div></div>'
    )


def _heat(figures: dict[str, Any]) -> str:
    """The journey map: a transition matrix of the most frequent touchpoints, each cell
    shaded by how often the step is taken and coloured by the churn after it."""
    transitions = figures["journey_map"]["transitions"]
    if not transitions:
        return '<p class="muted">No transitions.</p>'
    weight: dict[str, int] = {}
    for t in transitions:
        weight[t["from"]] = weight.get(t["from"], 0) + t["count"]
        weight[t["to"]] = weight.get(t["to"], 0) + t["count"]
    names = [n for n, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))[:MAP_SIZE]]
    index = {n: i for i, n in enumerate(names)}
    top = max(t["count"] for t in transitions)
    base = figures.get("churn_rate")
    label_w = 330
    size = CELL * len(names)
    out = [
        f'<svg class="map" width="{label_w + size + 200}" height="{label_w + size + 10}" '
        f'role="img" aria-label="journey map">'
    ]
    for name, i in index.items():
        y = label_w + i * CELL + CELL * 0.65
        x = label_w + i * CELL + CELL * 0.65
        short = _short(name)
        out.append(f'<text x="{label_w - 6}" y="{y:.0f}" text-anchor="end">{short}</text>')
        out.append(f'<text transform="translate({x:.0f},{label_w - 6}) rotate(-60)">{short}</text>')
    for t in transitions:
        if t["from"] not in index or t["to"] not in index:
            continue
        x = label_w + index[t["to"]] * CELL
        y = label_w + index[t["from"]] * CELL
        alpha = 0.15 + 0.85 * math.log1p(t["count"]) / math.log1p(top)
        rate = t["churn_rate"]
        if rate is None or base is None:
            colour = "120,120,120"
        elif rate > base:
            colour = "200,40,40"
        else:
            colour = "30,130,70"
        tip = (
            f"{t['from']} → {t['to']}: {t['count']:,} times, median "
            f"{t['median_gap_s']:g} s, churn after it {_pct(rate)} (all: {_pct(base)})"
        )
        out.append(
            f'<rect x="{x}" y="{y}" width="{CELL - 2}" height="{CELL - 2}" '
            f'fill="rgba({colour},{alpha:.2f})"><title>{escape(tip)}</title></rect>'
        )
    out.append("</svg>")
    return "".join(out)


def _impact(figures: dict[str, Any], rows: int = 15) -> str:
    """Touchpoints by churn lift: a bar each, its 95% interval as a whisker."""
    ranked = [t for t in figures["touchpoints"] if t["churn_lift"] is not None]
    shown = ranked[:rows] + (ranked[rows:][-5:] if len(ranked) > rows else [])
    if not shown:
        return '<p class="muted">No touchpoints.</p>'
    span = max(0.05, max(abs(v) for t in shown for v in (t["ci"] or [t["churn_lift"]])))
    label_w, bar_w, row_h = 330, 420, 22
    mid = label_w + bar_w / 2
    scale = (bar_w / 2 - 10) / span
    out = [
        f'<svg class="impact" width="{label_w + bar_w + 90}" height="{row_h * len(shown) + 24}">'
    ]
    out.append(f'<line x1="{mid}" y1="0" x2="{mid}" y2="{row_h * len(shown)}" class="axis"/>')
    for i, t in enumerate(shown):
        y = i * row_h
        lift = t["churn_lift"]
        x0, x1 = sorted((mid, mid + lift * scale))
        colour = "#c82828" if lift > 0 else "#1e8246"
        name = _short(t["touchpoint"])
        tip = escape(
            f"{t['touchpoint']}: churn {_pct(t.get('churn_with'))} with it, "
            f"{_pct(t.get('churn_without'))} without (n {t['n']:,})"
        )
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{name}</text>')
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(1.0, x1 - x0):.1f}" height="{row_h - 8}" '
            f'fill="{colour}"><title>{tip}</title></rect>'
        )
        if t["ci"]:
            lo, hi = (mid + v * scale for v in t["ci"])
            out.append(
                f'<line x1="{lo:.1f}" y1="{y + 11}" x2="{hi:.1f}" y2="{y + 11}" class="ci"/>'
            )
        out.append(f'<text x="{label_w + bar_w + 6}" y="{y + 15}">{100 * lift:+.1f} pts</text>')
    out.append("</svg>")
    return "".join(out)


def _paths(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="muted">No step taken by enough customers.</p>'
    items = "".join(
        f"<li>{escape(t['from'])} → {escape(t['to'])}: <b>{_pct(t['churn_rate'])}</b> churned "
        f"of {t['customers']:,}</li>"
        for t in rows
    )
    return f"<ol>{items}</ol>"


def _by_touchpoint(figures: dict[str, Any], rows: int = 15) -> str:
    rated = figures["kpis"]["by_touchpoint"]
    if not rated:
        return '<p class="muted">No survey answers.</p>'

    def answers(item: tuple[str, dict[str, Any]]) -> int:
        return max(int(f["n"]) for f in item[1].values())

    lines = []
    for name, f in sorted(rated.items(), key=lambda kv: -answers(kv))[:rows]:
        cells = "".join(
            f"<td>{NONE if f[k]['value'] is None else format(f[k]['value'], 'g')}"
            f"<span class='n'> n {f[k]['n']:,}</span></td>"
            for k in ("nps", "csat", "ces")
        )
        lines.append(f"<tr><td>{escape(name)}</td>{cells}</tr>")
    return (
        "<table><tr><th>touchpoint rated</th><th>NPS</th><th>CSAT %</th><th>CES</th></tr>"
        + "".join(lines)
        + "</table>"
    )


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1f2430; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted, .sub, .hint, .n { color: #5f6675; } .n { font-size: 11px; }
.tiles { display: flex; gap: 12px; } .tile { border: 1px solid #d8dce6; border-radius: 8px;
  padding: 10px 14px; min-width: 200px; } .tile .name { font-weight: 600; }
.tile .value { font-size: 28px; font-weight: 700; } .hint { font-size: 12px; }
svg text { font-size: 11px; fill: #1f2430; } .axis { stroke: #888; } .ci { stroke: #222; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee;
  text-align: left; } .cols { display: flex; gap: 32px; } .cols > div { flex: 1; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }
"""


def render(figures: dict[str, Any], *, title: str) -> str:
    """The page (HTML text)."""
    overall = figures["kpis"]["overall"]
    rate = figures.get("churn_rate")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>cxstream report · {escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>Experience report · {escape(title)}</h1>"
        f"<p class='muted'>{figures['events']:,} events, {figures['customers']:,} customers, "
        f"{_pct(rate)} churned.</p>"
        "<div class='tiles'>"
        + _tile("NPS", overall["nps"], " pts", "promoters (9-10) minus detractors (0-6)")
        + _tile("CSAT", overall["csat"], "%", "answers of 4 or 5")
        + _tile("CES", overall["ces"], "", "mean effort, 1 (easy) to 7")
        + "</div><h2>Journey map</h2><p class='muted'>From a touchpoint (row) to the next "
        "(column), for the most frequent touchpoints: darker is more often; "
        "<span style='color:#c82828'>red</span>: more churn after that step than overall, "
        "<span style='color:#1e8246'>green</span>: less. Hover a cell for its figures.</p>"
        + _heat(figures)
        + "<div class='cols'><div><h2>Steps to churn</h2>"
        + _paths(figures["journey_map"].get("to_churn", []))
        + "</div><div><h2>Steps to retention</h2>"
        + _paths(figures["journey_map"].get("to_retention", []))
        + "</div></div><h2>Touchpoints before churn</h2><p class='muted'>Churn of the "
        "customers who had the touchpoint (before churning) minus churn of those who did "
        "not, in points, with its 95% interval. Association, not proof of cause.</p>"
        + _impact(figures)
        + "<h2>Ratings by touchpoint</h2>"
        + _by_touchpoint(figures)
        + "</body></html>"
    )
