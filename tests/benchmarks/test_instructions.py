"""The instruction-count benchmark's children run the current code (without Valgrind
here: what they run is what gets counted)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

from benchmarks.instructions import _CHILD, _FLOW_CHILD, ROOT
from benchmarks.throughput import synthetic


def _run(child: str, log_file: Path, events: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "CX_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-c", child, str(log_file), str(events), str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=100,
    )


def test_the_bare_loop_and_the_flow_children_run(tmp_path: Path) -> None:
    log_file = tmp_path / "log.pkl"
    log_file.write_bytes(pickle.dumps(synthetic(600, 60, 1)))
    bare = _run(_CHILD, log_file, 500)
    assert bare.returncode == 0, bare.stderr[-2000:]
    flow = _run(_FLOW_CHILD, log_file, 500)
    assert flow.returncode == 0, flow.stderr[-2000:]
    outputs = int(flow.stderr.rsplit("outputs ", 1)[1].split()[0])
    assert outputs > 500 // 4  # profiles and alerts of the 500 events reached the sinks
