"""The proactive benchmark's own parts, on a small run: what it reports is what the
engine and the simulator did (no figure is asserted: that is the benchmark's job)."""

from __future__ import annotations

from benchmarks.proactive import run


def test_a_small_run_reports_decisions_uplift_and_value() -> None:
    report = run(customers=200, days=75, seed=3, holdout=0.3)
    assert report["events"] > 10_000
    assert report["decisions"] >= report["decisions_matured"] > 0
    matured = report["decisions_matured"]
    assert report["acted"] + report["held_out"] + report["left_alone"] == matured
    assert report["held_out"] > 0
    assert report["value_saved"]["nobody"] == 0.0
    assert set(report["value_saved"]) == {"learned", "random", "oracle", "nobody"}
    assert report["uplift_ci"] is None or report["uplift_ci"][0] <= report["uplift_ci"][1]
    assert 0.0 <= report["churn_no_program"] <= 1.0
    assert report["by_action"]
