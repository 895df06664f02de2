"""``cxstream report``: the experience measured on a recorded log: NPS, CSAT and CES per
channel and touchpoint, the journey map, and which touchpoints come before churn."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from cxstream.commands.args import add_log_input, positive_int
from cxstream.commands.replay import log_format, rows_in_time_order
from cxstream.settings import Settings
from operators.errors import CxError


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Replay a recorded log in event time and print the experience it shows.

    KPIs (NPS in points, CSAT in %, CES as a mean, each with its count and 95%
    interval) overall, by channel and by touchpoint (channel·type: for a survey or a
    review, the customer's touchpoint before it); the journey map (transitions
    between a customer's consecutive touchpoints: count, median time between, the
    share of the customers who took the step who churned); and the touchpoints ranked
    by churn lift (churn of the customers who had it before churning, minus churn of
    those who did not, with its 95% interval).  A customer's churn is the file's
    label (stream-csv), else a cancel event.  A summary on stderr, then the figures
    as one JSON line on stdout, the last line.  --html OUT also writes a page with
    the charts (self-contained: no script, nothing fetched).
    """
    from operators.experience import ExperienceReport

    path = Path(args.input)
    fmt = log_format(path, args.format)
    if args.html is not None and not Path(args.html).resolve().parent.is_dir():
        raise CxError(f"--html {args.html}: its folder does not exist")  # before the work
    if args.html is not None and Path(args.html).is_dir():
        raise CxError(f"--html {args.html}: a folder; name the page's file, e.g. report.html")
    rejected: list[tuple[int, str]] = []
    started = time.perf_counter()
    rows = rows_in_time_order("report", path, fmt, rejected, hold=False)
    report = ExperienceReport()
    for n, row in enumerate(rows, start=1):
        report.observe(row)
        if n % 100_000 == 0:
            print(f"report: {n} events", file=sys.stderr, flush=True)
    figures = report.result(top=args.top)
    figures["rejected_rows"] = len(rejected)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    for number, reason in rejected[:5]:
        print(f"report: row {number} skipped: {reason}", file=sys.stderr)
    print(summary(figures), file=sys.stderr)
    if args.html is not None:
        from cxstream.report_html import render

        out = Path(args.html)
        try:
            out.write_text(render(figures, title=path.name), encoding="utf-8")
        except OSError as exc:
            raise CxError(f"--html {out}: cannot write: {exc.strerror or exc}") from exc
        print(f"report: wrote {out}", file=sys.stderr)
    print(orjson.dumps(figures).decode())
    return 0


def summary(figures: dict[str, Any], *, lines: int = 5) -> str:
    """The figures a reader wants first, in words (the JSON line has them all)."""
    overall = figures["kpis"]["overall"]
    parts = []
    for name, unit in (("nps", " points"), ("csat", "%"), ("ces", "")):
        f = overall[name]
        if f["n"]:
            ci = f" [{f['ci'][0]:g}, {f['ci'][1]:g}]" if f["ci"] else ""
            parts.append(f"{name.upper()} {f['value']:g}{unit}{ci} (n {f['n']:,})")
    rate = figures["churn_rate"]
    out = [
        f"report: {figures['events']:,} events, {figures['customers']:,} customers"
        + (f", {100 * rate:.1f}% churned" if rate is not None else ""),
        "report: " + ("; ".join(parts) if parts else "no survey answers (nps, csat, ces)"),
    ]
    for t in figures["journey_map"]["transitions"][:lines]:
        churn = "" if t["churn_rate"] is None else f", {100 * t['churn_rate']:.1f}% churned"
        out.append(
            f"report: step {t['from']} -> {t['to']}: {t['count']:,} times, median "
            f"{t['median_gap_s']:g} s{churn}"
        )
    for t in figures["touchpoints"][:lines]:
        if t["churn_lift"] is None:
            continue
        out.append(
            f"report: before churn: {t['touchpoint']} (n {t['n']:,}): churn "
            f"{100 * t['churn_with']:.1f}% with, {100 * t['churn_without']:.1f}% without"
        )
    return "\n".join(out)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser(
        "report",
        help="NPS, CSAT, CES, the journey map and churn by touchpoint, on a recorded log",
        description=cmd_report.__doc__,
    )
    add_log_input(p)
    p.add_argument(
        "--top", type=positive_int, default=50, help="transitions of the journey map kept (50)"
    )
    p.add_argument(
        "--html",
        default=None,
        metavar="OUT",
        help="also write the figures as a self-contained page with charts",
    )
    p.set_defaults(func=cmd_report)
