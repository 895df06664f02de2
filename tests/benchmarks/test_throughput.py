"""The throughput benchmark's own parts: the bare loop's report, and the promotions it
reads back from the flow's model status."""

from __future__ import annotations

import orjson
import pytest
import redis

from benchmarks.throughput import bare_loop, model_promotions, synthetic
from state.keys import model_key


def test_the_bare_loop_reports_what_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.throughput

    # the loop tunes the collector as `cxstream run` does: not in the test process
    monkeypatch.setattr(benchmarks.throughput, "tune_gc", lambda: None)
    data = synthetic(3000, 300, seed=2)
    report = bare_loop(data)
    assert report["events_per_s"] > 0
    assert report["cpu_us_per_event"] > 0
    assert report["customers"] == len({orjson.loads(raw)["customer_id"] for raw in data})
    assert report["alerts"] > 0  # contacts were scored
    assert report["promotions"] == 0  # 3,000 events mature no label: nothing to promote on
    assert 0 < report["state_bytes_per_customer"] < report["memory_bytes_per_customer"]


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
