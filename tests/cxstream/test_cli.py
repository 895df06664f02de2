"""The cxstream command as a user runs it: subprocesses, real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis

from server.tokens import verify
from tests.conftest import SECRET, ev

COMMANDS = ("run", "serve", "demo", "token", "send", "simulate")


def cx(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cxstream", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    done = cx(command, "--help")
    assert done.returncode == 0
    assert b"usage: cxstream " + command.encode() in done.stdout


def test_token_prints_the_token_and_nothing_else(tmp_path: Path) -> None:
    import time

    done = cx(
        "token",
        "--agent",
        "a1",
        "--queue",
        "care",
        "--queue",
        "billing",
        "--role",
        "supervisor",
        env={"CX_SECRET": SECRET.reveal(), "CX_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 0
    assert done.stderr == b""
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1
    claims = verify(SECRET, lines[0], now=time.time())
    assert (claims.agent_id, claims.queues, claims.role) == (
        "a1",
        ("care", "billing"),
        "supervisor",
    )


def test_token_without_agent_is_a_usage_error() -> None:
    done = cx("token", "--queue", "care")
    assert done.returncode == 2
    assert b"--agent" in done.stderr


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    done = cx("token", "--agent", "a", env={"CX_SHARDS": "many", "CX_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "cxstream: error: CX_SHARDS='many': not an integer"


def test_send_xadds_valid_lines_and_reports_bad_ones(redis_url: str, r: redis.Redis) -> None:
    lines = [orjson.dumps(ev(i, "page_view", customer=f"c{i}").to_json()) for i in range(5)]
    lines.insert(2, b'{"event_id": "x", "customer_id": "c", "ts": "bad"}')
    done = cx("send", env={"REDIS_URL": redis_url}, stdin=b"\n".join(lines))
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "line 3: rejected: ts not rfc 3339" in err
    assert "sent 5 events, rejected 1" in err
    assert sum(int(r.xlen(f"cx:events:{i}")) for i in range(4)) == 5


def test_send_missing_file_is_a_clear_error(redis_url: str) -> None:
    done = cx("send", "/nonexistent/events.jsonl", env={"REDIS_URL": redis_url})
    assert done.returncode == 2
    assert b"cannot read /nonexistent/events.jsonl" in done.stderr


def test_simulate_writes_contract_events(tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    out = tmp_path / "sim.jsonl"
    done = cx("simulate", "--events", "300", "--customers", "20", "--output", str(out))
    assert done.returncode == 0
    from operators.events import parse_event

    events = [parse_event(line) for line in out.read_bytes().splitlines()]
    assert len(events) == 300
    done = cx("simulate", "--events", "200", "--rate", "5000", env={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert sum(int(r.xlen(f"cx:events:{i}")) for i in range(4)) == 200
