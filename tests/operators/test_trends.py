"""Trend series: signals, keys, the sliding count, the detector and its episodes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.events import Event
from operators.logic import DISCARD, RETAIN
from operators.records import Signal
from operators.trends import BUCKETS, TrendConfig, TrendLogic, signal_of, trend_keys

MIN = 60_000
SERIES = "complaints|topic=outage"


def sig(ts: int, i: int = 0) -> Signal:
    return Signal("complaints", ts, f"e{i}", "chat", None, "outage", -0.5)


def logic(clock: float = 0.0, **config: float) -> TrendLogic:
    cfg = TrendConfig(window_ms=60 * MIN, warmup_windows=1, **config)  # type: ignore[arg-type]
    return TrendLogic(None, config=cfg, clock=lambda: clock, keep_snapshots=True)


def feed(series: TrendLogic, times: list[int]) -> list[dict[str, object]]:
    out = []
    for i, t in enumerate(times):
        alerts, keep = series.on_item((SERIES, sig(t, i)))
        assert keep == RETAIN
        out += [a.payload for a in alerts]
    return out


def quiet(hours: int, every_min: float = 10.0) -> list[int]:
    """A steady trickle: one signal every ``every_min`` minutes (6 a window)."""
    return [int(i * every_min * MIN) for i in range(int(hours * 60 / every_min))]


def test_only_complaints_and_contacts_are_signals() -> None:
    contact = Event("e1", "c1", None, 9, "voice", "contact_start", {"queue": "care"})
    assert signal_of(contact) == Signal("contacts", 9, "e1", "voice", "care", None, None)
    assert signal_of(Event("e2", "c1", None, 9, "web", "page_view", {})) is None
    long_queue = Event("e3", "c1", None, 9, "voice", "contact_start", {"queue": "q" * 500})
    signal = signal_of(long_queue)
    assert signal is not None
    assert signal.queue == "q" * 64


def test_a_topic_outside_the_map_counts_as_other() -> None:
    keys = [k for k, _ in trend_keys(sig(0), {"billing"})]
    assert keys == ["complaints|channel=chat", "complaints|topic=other"]
    assert all(item == (key, sig(0)) for key, item in trend_keys(sig(0), {"outage"}))


def test_a_steady_rate_never_alarms_and_a_burst_alarms_once_with_its_evidence() -> None:
    series = logic()
    assert feed(series, quiet(6)) == []
    burst_start = 6 * 60 * MIN
    alerts = feed(series, [burst_start + i * 30_000 for i in range(60)])  # 2 a minute
    assert len(alerts) == 1
    alert = alerts[0]
    trend = alert["trend"]
    assert isinstance(trend, dict)
    assert alert["kind"] == "trend"
    assert alert["customer_id"] is None
    assert trend["series"] == SERIES
    assert (trend["metric"], trend["dimension"], trend["value"]) == (
        "complaints",
        "topic",
        "outage",
    )
    assert trend["count"] >= 10
    assert trend["count"] >= 2 * trend["baseline"]
    assert 5.5 <= trend["baseline"] <= 6.5  # six a window
    assert trend["z"] >= 5
    assert [x["event_id"] for x in trend["examples"]][:1] == [alert["event_id"]]  # newest first
    assert len(trend["examples"]) == 5


def test_the_series_re_arms_when_the_spike_is_over() -> None:
    series = TrendLogic(None, config=TrendConfig(window_ms=60 * MIN), clock=lambda: 0.0)
    feed(series, quiet(30))  # past the day of warm-up
    t = 30 * 60 * MIN
    first = feed(series, [t + i * 30_000 for i in range(60)])
    calm = [t + 60 * MIN + int(x) for x in quiet(3)]
    assert feed(series, calm) == []
    again = calm[-1] + 10 * MIN
    second = feed(series, [again + i * 30_000 for i in range(60)])
    assert len(first) == len(second) == 1
    assert first[0]["alert_id"] != second[0]["alert_id"]
    assert series.mean < 8  # the spikes were learnt clipped: the baseline stays near 6


def test_no_alarm_before_the_warm_up_nor_under_the_minimum_count() -> None:
    cfg = TrendConfig(window_ms=60 * MIN)  # a day of warm-up
    series = TrendLogic(None, config=cfg, clock=lambda: 0.0)
    assert feed(series, quiet(6) + [6 * 60 * MIN + i * 10_000 for i in range(100)]) == []
    sparse = logic(min_count=50)
    feed(sparse, quiet(6))
    assert feed(sparse, [6 * 60 * MIN + i * 60_000 for i in range(40)]) == []


def test_late_signals_inside_the_window_count_and_older_ones_are_dropped() -> None:
    series = logic()
    feed(series, [0, 30 * MIN, 59 * MIN])
    assert sum(series.counts) == 3
    feed(series, [10 * MIN])  # late but inside the window
    assert sum(series.counts) == 4
    feed(series, [120 * MIN])  # the window moves on: 0..59 min leave it
    feed(series, [5 * MIN])
    assert series.late == 1
    assert sum(series.counts) == 1


def test_a_silent_series_is_dropped_after_its_idle_time() -> None:
    now = [1000.0]
    cfg = TrendConfig(idle_s=60.0)
    series = TrendLogic(None, config=cfg, clock=lambda: now[0])
    series.on_item((SERIES, sig(0)))
    assert series.on_notify()[1] == RETAIN
    now[0] += 61
    assert series.on_notify()[1] == DISCARD


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=600 * MIN), min_size=1, max_size=200))
def test_the_sliding_count_is_the_signals_in_the_window(times: list[int]) -> None:
    """In any order: a signal is late if it is older than the window when it comes
    (the window ends with the newest bucket seen so far); the count is the signals
    counted that are still in the window at the end."""
    series = logic()
    feed(series, times)
    bucket = series.config.bucket_ms
    newest = -1
    counted, late = [], 0
    for t in times:
        newest = max(newest, t - t % bucket)
        if t < newest - (BUCKETS - 1) * bucket:
            late += 1
        else:
            counted.append(t)
    assert series.start == newest
    assert series.late == late
    assert series.signals == len(counted)
    assert sum(series.counts) == sum(1 for t in counted if t >= newest - (BUCKETS - 1) * bucket)


def test_a_long_silence_learns_as_many_empty_windows_as_it_lasts() -> None:
    """The closed form for k empty closes equals k closes one by one."""
    at_once, one_by_one = (
        TrendLogic(None, config=TrendConfig(window_ms=60 * MIN), clock=lambda: 0.0)
        for _ in range(2)
    )
    for series in (at_once, one_by_one):
        feed(series, quiet(30))  # a day and more: past the equal-weight start
    mean_before = at_once.mean
    bucket = at_once.config.bucket_ms
    end = at_once.start + 3 * 24 * 60 * MIN  # three days without a signal
    at_once._close_until(end)
    t = one_by_one.start
    while t < end:
        t += bucket
        one_by_one._close_until(t)
    assert at_once.closes == one_by_one.closes
    assert at_once.start == one_by_one.start == end
    assert abs(at_once.mean - one_by_one.mean) < 1e-9 * max(1.0, mean_before)
    assert abs(at_once.var - one_by_one.var) < 1e-9 * max(1.0, one_by_one.var)
    assert 0 < at_once.mean < mean_before / 4  # three half-lives of silence
    assert at_once.total == 0
