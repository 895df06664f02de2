"""The model-step benchmark's parts: what the bare loop gave the model step, replayed in
smaller batches, every call timed."""

from __future__ import annotations

import pytest

from benchmarks.model_step import replay
from benchmarks.throughput import bare_loop, synthetic
from operators.records import DecideIn, ScoreRequest


def test_the_model_steps_inputs_are_replayed_and_every_call_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import benchmarks.throughput

    monkeypatch.setattr(benchmarks.throughput, "stop_gc", lambda: None)  # (not in tests)
    batches: list[list[DecideIn]] = []
    report = bare_loop(synthetic(3000, 300, seed=2), measure_state=False, model_batches=batches)
    contacts = sum(
        type(v) is ScoreRequest and v.moment == "contact" for batch in batches for v in batch
    )
    assert contacts == report["alerts"]  # every input the model step had, none twice
    figures = replay(batches, 7)
    assert figures["calls"] >= sum((len(b) + 6) // 7 for b in batches)  # each batch, cut
    assert 0 < figures["contact_batch_p50_ms"] <= figures["contact_batch_max_ms"]
    assert figures["notify_p50_ms"] <= figures["notify_p99_ms"] <= figures["notify_max_ms"]
    assert 0 <= figures["over_3ms"] <= figures["calls"]
