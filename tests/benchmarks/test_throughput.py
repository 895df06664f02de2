"""The throughput benchmark's own parts: the bare loop's report (and its timing by
step), the promotions it reads back from the flow's model status, its command line."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis

from benchmarks._harness import Pauses, collector_pauses
from benchmarks.throughput import Phases, bare_loop, model_promotions, synthetic
from state.keys import model_key


def test_the_bare_loop_reports_what_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.throughput

    # the loop tunes the collector as `cxstream run` does: not in the test process
    monkeypatch.setattr(benchmarks.throughput, "stop_gc", lambda: None)
    data = synthetic(3000, 300, seed=2)
    report = bare_loop(data)
    assert report["events_per_s"] > 0
    assert report["cpu_us_per_event"] > 0
    assert report["customers"] == len({orjson.loads(raw)["customer_id"] for raw in data})
    assert report["alerts"] > 0  # contacts were scored
    assert report["promotions"] == 0  # 3,000 events mature no label: nothing to promote on
    assert 0 < report["state_bytes_per_customer"] < report["memory_bytes_per_customer"]
    # the collector ran (3,000 events make thousands of containers) and took part of the time
    assert 0 < report["gc_us_per_event"] < report["cpu_us_per_event"]
    assert Pauses not in map(type, gc.callbacks)  # the hook removed


def test_promotions_are_summed_over_the_model_shards(r: redis.Redis) -> None:
    assert model_promotions(r) == 0
    r.hset(model_key("m0"), mapping={"promotions": b"2", "version": b'"arf-3@900"'})
    r.hset(model_key("m1"), mapping={"promotions": b"1"})
    r.hset(model_key("m2"), mapping={"version": b'"logreg-1@10"'})  # no status of it yet
    try:
        assert model_promotions(r) == 3
    finally:
        r.delete(model_key("m0"), model_key("m1"), model_key("m2"))


@pytest.mark.parametrize("events", [0, 1])
def test_synthetic_makes_what_was_asked(events: int) -> None:
    assert len(synthetic(events, 10, seed=1)) == events


def test_the_collector_hook_goes_when_its_block_fails() -> None:
    def failing() -> Pauses:
        with collector_pauses() as pauses:
            gc.collect()
            seen.append(pauses)
            raise RuntimeError("the loop failed")

    seen: list[Pauses] = []
    with pytest.raises(RuntimeError):
        failing()
    assert len(seen[0].pauses) == 1  # the collection in the block, timed
    assert seen[0] not in gc.callbacks


def test_phases_give_each_step_its_time_a_row_each_tenth_and_the_rest_at_the_end() -> None:
    ticks = iter(range(1000))
    rows: list[dict[str, float]] = []
    # one clock tick (1 us) a lap; 21,500 events: tenths of 2,000 (rounded to the batches)
    timed = Phases(21_500, lambda: 5 * len(rows), rows, clock=lambda: next(ticks) * 1e-6)
    for done in [*range(1000, 21_001, 1000), 21_500]:
        for step in Phases.STEPS:
            timed.lap(step)
        timed.lap("model")  # the model step twice as long
        timed.events_done(done, last=done == 21_500)
    assert [r["events"] for r in rows] == [*range(2000, 20_001, 2000), 21_500]
    assert [r["learned"] for r in rows[:3]] == [0, 5, 10]  # read as each row closes
    # each step: 1 us a batch, over 2,000 events (two batches); the last row 1,500 events
    assert rows[0] == {
        "events": 2000,
        "learned": 0,
        "parse": 0.001,
        "customers": 0.001,
        "notifications": 0.001,
        "model": 0.002,
    }
    assert rows[-1]["parse"] == round(2e-6 / 1500 * 1e6, 3)


def test_a_run_of_fewer_events_than_a_batch_has_one_row() -> None:
    rows: list[dict[str, float]] = []
    timed = Phases(7, lambda: 0, rows, clock=iter([0.0, 1.0]).__next__)
    timed.lap("parse")
    timed.events_done(7, last=True)
    assert [r["events"] for r in rows] == [7]
    assert rows[0]["parse"] == round(1.0 / 7 * 1e6, 3)
    assert rows[0]["model"] == 0.0


@pytest.mark.parametrize(
    "wrong",
    [["--phases", "-p", "2"], ["--phases", "--own-shards"], ["--events", "0"]],
)
def test_the_command_refuses_what_it_cannot_run(wrong: list[str]) -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"
    done = subprocess.run(
        [sys.executable, str(script), *wrong, "--no-record"], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "throughput.py: error:" in done.stderr


def test_the_bare_loop_timed_by_step_covers_every_event_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import benchmarks.throughput

    monkeypatch.setattr(benchmarks.throughput, "stop_gc", lambda: None)
    data = synthetic(2500, 250, seed=2)
    rows: list[dict[str, float]] = []
    report = bare_loop(data, measure_state=False, phases=rows)
    # a row each tenth (250 events: the batches of 1,000 close one at 1,000, 2,000 and
    # the end), none empty, the last at the last event
    assert [r["events"] for r in rows] == [1000, 2000, 2500]
    assert all(set(r) == {"events", "learned", *Phases.STEPS} for r in rows)
    assert all(r["customers"] > 0 and r["model"] > 0 for r in rows)  # contacts scored
    # the steps' time, an event, adds up to about the loop's own (its clock reads aside)
    sizes = (1000, 1000, 500)
    spent = sum(sum(r[k] for k in Phases.STEPS) * n for r, n in zip(rows, sizes, strict=True))
    assert 0.5 < spent / 2500 / report["cpu_us_per_event"] < 1.5
