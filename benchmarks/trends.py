"""Trend detection: false alarms on normal days, detection of simulated incidents,
and alarms on two real logs.

The trends operators (``signal_of``, ``trend_keys``, ``TrendLogic``) run in a
plain loop over events in event time, with the flow's default settings
(a 60 min window, 5 deviations, at least 10 signals, twice the baseline).

- Normal days: the channel simulator without incidents.  Every alert after the
  warm-up is a false alarm; reported per series-day and per day.
- Incidents: for each trial, two normal days, then an incident on a random
  topic at a random hour, for 60 minutes, at several strengths (the share of
  the customers' steps that become a complaint on the topic).  Detected: an
  alert on that topic's complaint series within one window of the start.
  Reported: the detection rate, the delay, and any alert before the start.
- Real logs (``--data DIR``, a folder of stream CSVs): new cases of the
  BPI Challenge 2012 (loan applications) and new tickets of the Helpdesk log,
  counted as contacts.  Nobody labelled incidents in them: the alarms are
  reported per day as what a supervisor would have been shown.

    python benchmarks/trends.py                 # 5,000 customers, 30 normal days, 20 trials
    python benchmarks/trends.py --quick         # 2,000 customers, 10 days, 8 trials
    python benchmarks/trends.py --data data     # the shipped real logs (data/README.md)

Prints JSON as its last line and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from benchmarks._harness import record
from operators.records import Signal
from operators.simulate import Incident, SimConfig, Simulator
from operators.trends import BUCKETS, DAY_MS, TrendConfig, TrendLogic, signal_of, trend_keys

TOPICS = ("billing", "delivery", "outage", "quality")
HOUR_MS = 3_600_000


def detect(
    signals: Iterable[Signal], config: TrendConfig
) -> tuple[list[dict[str, Any]], dict[str, TrendLogic]]:
    """Run every series over the signals; the alerts' payloads and the series."""
    series: dict[str, TrendLogic] = {}
    alerts: list[dict[str, Any]] = []
    for signal in signals:
        for key, item in trend_keys(signal, TOPICS):
            logic = series.get(key)
            if logic is None:
                logic = series[key] = TrendLogic(
                    None, config=config, clock=lambda: 0.0, keep_snapshots=False
                )
            alerts.extend(a.payload for a in logic.observe(*item))
    return alerts, series


def sim_signals(sim: Simulator, until_ms: int) -> Iterable[Signal]:
    while True:
        event = sim.next_event()
        if event.ts >= until_ms:
            return
        signal = signal_of(event)
        if signal is not None:
            yield signal


def normal_days(customers: int, days: int, seed: int, config: TrendConfig) -> dict[str, Any]:
    sim = Simulator(SimConfig(customers=customers, seed=seed))
    start = sim.config.start_ms
    alerts, series = detect(sim_signals(sim, start + days * DAY_MS), config)
    warm_ms = (config.warmup_windows + 1) * config.window_ms
    watched_days = days - warm_ms / DAY_MS
    per_day = [0] * days
    for a in alerts:
        per_day[(a["event_ts"] - start) // DAY_MS] += 1
    return {
        "days": days,
        "series": len(series),
        "complaints_per_day": round(_count(series, "complaints|channel=") / days, 1),
        "contacts_per_day": round(_count(series, "contacts|channel=") / days, 1),
        "false_alarms": len(alerts),
        "false_alarms_per_day": round(len(alerts) / watched_days, 3),
        "false_alarms_per_series_day": round(len(alerts) / watched_days / len(series), 4),
        "days_with_a_false_alarm": sum(1 for n in per_day if n),
        "false_alarm_series": sorted({a["trend"]["series"] for a in alerts}),
    }


def _count(series: dict[str, TrendLogic], prefix: str) -> int:
    return sum(logic.signals for key, logic in series.items() if key.startswith(prefix))


def incidents(
    customers: int, trials: int, shares: tuple[float, ...], config: TrendConfig
) -> dict[str, Any]:
    rng = random.Random(5)
    out: dict[str, Any] = {}
    plan = [(rng.choice(TOPICS), 2 * 24 * 60 + rng.uniform(0, 24 * 60)) for _ in range(trials)]
    for share in shares:
        delays: list[float] = []
        early = 0
        others = 0
        for trial, (topic, start_min) in enumerate(plan):
            incident = Incident(topic, start_min, 60.0, share)
            sim = Simulator(SimConfig(customers=customers, seed=100 + trial, incidents=(incident,)))
            start = sim.config.start_ms + int(start_min * 60_000)
            alerts, _ = detect(sim_signals(sim, start + config.window_ms), config)
            early += sum(1 for a in alerts if a["event_ts"] < start)
            found = [
                a["event_ts"] - start
                for a in alerts
                if a["trend"]["series"] == f"complaints|topic={topic}" and a["event_ts"] >= start
            ]
            others += sum(
                1
                for a in alerts
                if a["event_ts"] >= start and a["trend"]["series"] != f"complaints|topic={topic}"
            )
            if found:
                delays.append(min(found) / 60_000)
        delays.sort()
        out[f"share_{share:g}"] = {
            "detected": len(delays),
            "trials": trials,
            "detection_rate": round(len(delays) / trials, 3),
            "delay_min_median": round(delays[len(delays) // 2], 1) if delays else None,
            "delay_min_max": round(delays[-1], 1) if delays else None,
            "alarms_before_start": early,
            "other_series_alarmed_during": others,
        }
    return out


def real_log(path: Path, config: TrendConfig) -> dict[str, Any]:
    """New cases of a stream CSV as contacts on their channel."""
    from state.replay import read_stream_csv

    seen: set[str] = set()
    signals: list[Signal] = []
    for row in read_stream_csv(path):
        e = row.event
        case = str(e.attrs.get("case_id") or e.event_id)
        if case in seen:
            continue
        seen.add(case)
        signals.append(Signal("contacts", e.ts, e.event_id, e.channel, None, None, None))
    signals.sort(key=lambda s: s.ts)
    alerts, series = detect(signals, config)
    days = (signals[-1].ts - signals[0].ts) / DAY_MS
    return {
        "cases": len(signals),
        "days": round(days, 1),
        "cases_per_day": round(len(signals) / days, 1),
        "series": sorted(series),
        "alarms": len(alerts),
        "alarms_per_day": round(len(alerts) / days, 3),
        "alarm_hours_utc": sorted({(a["event_ts"] // HOUR_MS) % 24 for a in alerts}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30, help="normal days simulated (30)")
    parser.add_argument("--trials", type=int, default=20, help="incidents per strength (20)")
    parser.add_argument("--quick", action="store_true", help="2,000 customers, 10 days, 8 trials")
    parser.add_argument("--data", type=Path, default=None, help="folder of the real stream CSVs")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.days, args.trials = 2000, 10, 8
    config = TrendConfig()
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "window_min": config.window_ms / 60_000,
        "buckets": BUCKETS,
        "threshold": config.threshold,
        "min_count": config.min_count,
        "customers": args.customers,
        "normal": normal_days(args.customers, args.days, 3, config),
        "incidents": incidents(args.customers, args.trials, (0.02, 0.05, 0.1, 0.3), config),
    }
    if args.data is not None:
        for name in ("bpic2012", "helpdesk"):
            figures[name] = real_log(args.data / f"{name}_stream.csv.gz", config)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    if not args.no_record:
        command = "python benchmarks/trends.py" + (" --quick" if args.quick else "")
        if args.data is not None:
            command += " --data DATA"
        record("trends", command, figures)
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
