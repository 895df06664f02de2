"""The cxstream command as a user runs it: subprocesses, real Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis

from server.tokens import verify
from tests.conftest import SECRET, entries, ev, free_port, redis_servers_in

COMMANDS = (
    "run",
    "serve",
    "demo",
    "token",
    "send",
    "simulate",
    "replay",
    "evaluate",
    "forget",
    "export",
    "report",
)


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


def test_version_is_printed() -> None:
    from cxstream import __version__

    done = cx("--version")
    assert done.returncode == 0
    assert done.stdout.decode() == f"cxstream {__version__}\n"


def test_a_misspelt_setting_is_named_in_a_warning(tmp_path: Path) -> None:
    done = cx(
        "token",
        "--agent",
        "a1",
        env={"CX_SECRET": SECRET.reveal(), "CX_DATA_DIR": str(tmp_path), "CX_TOKEN_TTL": "1"},
    )
    assert done.returncode == 0  # a warning, not a refusal: the variable may be another's
    warning = done.stderr.decode()
    assert "cxstream: warning: CX_TOKEN_TTL is not a setting" in warning
    assert "did you mean CX_TOKEN_TTL_HOURS?" in warning
    refused = cx("token", "--agent", "a1", env={"CX_SHRADS": "8", "CX_READ_SHARDS": "5"})
    assert refused.returncode == 2  # the warning comes before the wrong value stops it
    assert "CX_SHRADS is not a setting (did you mean CX_SHARDS?)" in refused.stderr.decode()


def test_report_to_a_folder_is_refused_before_the_work(tmp_path: Path) -> None:
    done = cx("report", "--input", str(tmp_path / "missing.jsonl"), "--html", str(tmp_path))
    assert done.returncode == 2
    assert b"a folder; name the page's file" in done.stderr


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


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["token", "--queue", "care"], "token: the following arguments are required: --agent"),
        (["run", "-w", "0"], "run: argument -w/--workers: 0 must be at least 1"),
        (["forget", "x", "--wait", "-1"], "forget: argument --wait: -1 must be 0 or more"),
        (["replay", "f", "--speed", "nan"], "replay: argument --speed: 'nan' is not a finite"),
        (["demo", "--history-days", "-2"], "demo: argument --history-days: -2 must be 0 or more"),
        (["token", "--agent", " "], "token: argument --agent: empty: give a name"),
        (["demo", "--queue", ""], "demo: argument --queue: empty: give a name"),
        (["token", "--agent", "a", "--queue", ""], "token: argument --queue: empty: give a name"),
        (["token", "--agent", "a", "--ttl-hours", "1e308"], "token: argument --ttl-hours: 1e+308"),
        (["simulate", "--start-ms", "99999999999999999"], "simulate: argument --start-ms: "),
        (["simulate", "--start-ms", "-1"], "simulate: argument --start-ms: '-1': not between 0"),
        (["run", "-i", "0", "-a", "127.0.0.1:99999"], "run: argument -a/--addresses: "),
        (["nope"], "argument COMMAND: invalid choice: 'nope'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_usage_error_is_one_line(args: list[str], says: str) -> None:
    done = cx(*args)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.count("\n") == 1, err
    assert err.startswith(f"cxstream: error: {says}"), err
    assert "--help" in err


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (
            ["simulate", "--events", "5", "--speed", "1e12", "--output", "-"],
            {},
            "--speed 1e+12 at --rate 100 for 500 customers: each customer would act every",
        ),
        (
            ["demo", "--rate", "1e300", "--duration", "1"],
            {},
            "--speed 21600 at --rate 1e+300 for 400 customers: each customer would act every",
        ),
        (
            ["send", "-"],
            {"REDIS_URL": "redis://127.0.0.1:notaport"},
            "REDIS_URL='redis://127.0.0.1:notaport': port could not be cast to integer",
        ),
        (["export", "c1"], {"REDIS_URL": "redis://[::1"}, "REDIS_URL='redis://[::1': invalid"),
        # (nothing listens on port 1 of this host: Redis unreachable at start)
        (["serve"], {"REDIS_URL": "redis://127.0.0.1:1"}, "cannot reach redis at redis://127"),
        (["demo"], {"REDIS_URL": "redis://127.0.0.1:1"}, "cannot reach redis at redis://127"),
    ],
)
def test_a_value_that_cannot_work_is_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    """Values each argument or setting takes alone, but not together (a simulator's
    pace), that the Redis client cannot read, or a Redis that is not there: one line,
    exit 2, nothing started."""
    done = cx(*args, env={"CX_DATA_DIR": str(tmp_path / "data"), **env})
    assert done.returncode == 2, done.stderr
    err = done.stderr.decode()
    assert err.count("\n") == 1, err
    assert err.startswith(f"cxstream: error: {says}"), err
    assert not (tmp_path / "data" / "redis.db").exists()  # (no embedded Redis started)


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


def test_send_rejects_an_event_nested_too_deep_and_sends_the_rest(
    redis_url: str, r: redis.Redis
) -> None:
    deep = orjson.dumps({**ev(1, "search").to_json(), "attrs": {"x": "HERE"}}).replace(
        b'"HERE"', b"[" * 300 + b"]" * 300
    )
    lines = [orjson.dumps(ev(0, "page_view").to_json()), deep, orjson.dumps(ev(2, "x").to_json())]
    done = cx("send", env={"REDIS_URL": redis_url}, stdin=b"\n".join(lines))
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err
    assert "line 2: rejected: attrs nested too deep" in err
    assert "sent 2 events, rejected 1" in err


def test_send_missing_file_is_a_clear_error(redis_url: str) -> None:
    done = cx("send", "/nonexistent/events.jsonl", env={"REDIS_URL": redis_url})
    assert done.returncode == 2
    assert b"cannot read /nonexistent/events.jsonl" in done.stderr


def test_an_unknown_argument_is_named_with_its_command() -> None:
    done = cx("token", "--agent", "a1", "--bogus")
    assert done.returncode == 2
    assert done.stderr == (
        b"cxstream: error: token: unrecognized arguments: --bogus (see cxstream token --help)\n"
    )
    before = cx("--bogus", "token", "--agent", "a1")  # (before the command: the top level's)
    assert before.stderr == (
        b"cxstream: error: unrecognized arguments: --bogus (see cxstream --help)\n"
    )


@pytest.mark.parametrize("flag", ["--output", "--truth"])
def test_simulate_to_a_path_that_cannot_be_written_is_one_line(tmp_path: Path, flag: str) -> None:
    extra = ["--output", "-"] if flag == "--truth" else []
    done = cx("simulate", "--events", "5", *extra, flag, str(tmp_path / "no" / "x.jsonl"))
    assert done.returncode == 2
    assert done.stderr.decode().endswith(
        f"simulate {flag} {tmp_path}/no/x.jsonl: cannot write: No such file or directory\n"
    )
    assert done.stdout == b""  # (stopped before the work)


def test_simulate_leaves_no_truth_file_when_redis_is_away(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    done = cx(
        "simulate", "--events", "5", "--truth", str(truth), env={"REDIS_URL": "redis://127.0.0.1:1"}
    )
    assert done.returncode == 2
    assert b"cannot reach redis" in done.stderr
    assert not truth.exists()


def test_a_setting_that_would_fail_later_stops_the_command_at_once(tmp_path: Path) -> None:
    done = cx("send", env={"CX_DATA_DIR": str(tmp_path), "CX_ALERTS_MAXLEN": "-1"})
    assert (done.returncode, done.stderr) == (
        2,
        b"cxstream: error: CX_ALERTS_MAXLEN=-1: must be at least 1\n",
    )
    assert not redis_servers_in(tmp_path)


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


def test_evaluate_prints_the_figures_as_the_last_line(tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    lines = ["ts,customer_id,channel,event_type,value,case_id,label,label_ts"]
    t = 1_300_000_000
    for case in range(300):
        label = int(rng.random() < 0.3)
        n = rng.randint(3, 8)
        end = t + n * 3600 + 60
        for i in range(n):
            kind = "B" if label and i >= 1 else "A"
            stamp = time_iso(t + i * 3600)
            lines.append(
                f"{stamp},case{case},application,{kind},,case{case},{label},{time_iso(end)}"
            )
        t += 1800
    lines[1:] = sorted(lines[1:], key=lambda line: line.split(",")[0])
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    done = cx("evaluate", "--input", str(path))
    assert done.returncode == 0, done.stderr
    figures = orjson.loads(done.stdout.splitlines()[-1])
    assert figures["labels"] == "file"
    assert figures["n_events"] == len(lines) - 1
    assert figures["roc_auc"] > 0.8  # "B" after the first event gives the churners away
    assert {"log_loss", "n_scored", "n_learned", "events_per_s"} <= set(figures)


def test_evaluate_sorts_an_unsorted_file_and_reports_the_yardsticks(tmp_path: Path) -> None:
    header = "ts,customer_id,channel,event_type,value,case_id,label,label_ts"
    rows = []
    for c in range(60):  # churners (label 1) make few events, stayers many
        label = c % 2
        for i in range(2 if label else 6):
            t = 1000 + c * 7200 + i * 600
            rows.append(f"{time_iso(t)},c{c},web,visit,,c{c},{label},{time_iso(t + 86_400)}")
    ordered = tmp_path / "ordered.csv"
    ordered.write_text("\n".join([header, *sorted(rows)]) + "\n")
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([header, *sorted(rows, reverse=True)]) + "\n")
    figures = []
    for path in (ordered, shuffled):
        done = cx("evaluate", "--input", str(path))
        assert done.returncode == 0, done.stderr
        out = orjson.loads(done.stdout.splitlines()[-1])
        out.pop("events_per_s")
        figures.append(out)
    assert figures[0] == figures[1]
    out = figures[0]
    assert {"ece", "best_single_feature", "lift_over_best_single", "by_period", "warmup"} <= set(
        out
    )
    assert out["best_single_feature"]["name"] in out["single_feature_roc_auc"]
    assert len(out["reliability"]) >= 1
    assert sum(p["n"] for p in out["by_period"].values()) == out["n_evaluated"]


def time_iso(epoch_s: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat()


def test_replay_sends_a_stream_csv_and_prints_its_summary(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "ts,customer_id,channel,event_type,value,case_id,label,label_ts\n"
        f"{time_iso(1000)},c1,support_ticket,Assign seriousness,1,t1,0,\n"
        f"{time_iso(2000)},c2,support_ticket,Take in charge ticket,1,t2,0,\n"
        "garbage,c3,web,x,,t3,,\n"
    )
    done = cx("replay", str(path), env={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout.splitlines()[-1])
    assert (summary["sent"], summary["rejected"]) == (2, 1)
    assert b"replay: sent 2 events, rejected 1 rows" in done.stderr
    assert sum(int(r.xlen(f"cx:events:{i}")) for i in range(4)) == 2
    again = cx("replay", str(path), "--speed", "1000", env={"REDIS_URL": redis_url})
    assert orjson.loads(again.stdout.splitlines()[-1])["sent"] == 2  # deduplicated downstream


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    import gzip

    good = "ts,customer_id,channel,event_type,value,case_id,label,label_ts\n" + "".join(
        f"{time_iso(1000 + i)},c{i % 7},web,visit,,k{i},0,\n" for i in range(3000)
    )
    packed = gzip.compress(good.encode())
    files = {
        "not gzip": ("plain.csv.gz", b"ts,customer_id\n1,2\n", "not a gzip file"),
        "truncated gzip": ("cut.csv.gz", packed[: len(packed) // 2], "cut short or corrupt"),
        "binary": ("image.csv", bytes(range(128, 256)) * 40, "not utf-8 text"),
        "other csv": ("other.csv", b"when,who\n1,2\n", "not a stream-csv file"),
    }
    made = {}
    for case, (name, data, message) in files.items():
        (tmp_path / name).write_bytes(data)
        made[case] = (tmp_path / name, message)
    return made


@pytest.mark.parametrize("case", ["not gzip", "truncated gzip", "binary", "other csv"])
@pytest.mark.parametrize("command", ["replay", "evaluate"])
def test_a_file_that_cannot_be_read_is_one_line_and_nothing_is_sent(
    tmp_path: Path, redis_url: str, r: redis.Redis, command: str, case: str
) -> None:
    path, message = _bad_files(tmp_path)[case]
    args = [str(path)] if command == "replay" else ["--input", str(path)]
    done = cx(command, *args, env={"REDIS_URL": redis_url})
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert b"Traceback" not in done.stderr, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"cxstream: error: {path}: "), err
    assert message in last
    assert sum(int(r.xlen(f"cx:events:{i}")) for i in range(4)) == 0  # not part of it either


def test_replay_sends_an_unsorted_file_in_time_order(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "unsorted.csv"
    rows = [f"{time_iso(1000 + 60 * i)},c1,web,visit,,k{i},0," for i in range(5)]
    path.write_text(
        "ts,customer_id,channel,event_type,value,case_id,label,label_ts\n"
        + "\n".join(rows[::-1])
        + "\n"
    )
    done = cx("replay", str(path), env={"REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert b"not in time order; sorted by ts" in done.stderr
    sent = [e for i in range(4) for e in entries(r, f"cx:events:{i}")]
    times = [orjson.loads(fields[b"data"])["ts"] for _, fields in sent]
    assert len(times) == 5
    assert times == sorted(times)


def test_a_command_interrupted_in_the_background_stops_cleanly(tmp_path: Path) -> None:
    """Started with SIGINT ignored (a shell's `&`), Ctrl-C still ends a command in one
    line, and the embedded Redis it started goes with it."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["CX_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxstream", "forget", "someone", "--wait", "60"],
        env=env,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stderr is not None
    seen = b""
    while b"forget event queued" not in seen:  # it has started the server and connected
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    assert redis_servers_in(tmp_path), "the command runs an embedded redis"
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130, seen + rest
    assert b"forget interrupted" in rest
    deadline = time.monotonic() + 10
    while redis_servers_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_servers_in(tmp_path) == [], "the embedded redis outlived the command"


def test_streaming_simulate_says_what_it_sent_when_interrupted(redis_url: str) -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "cxstream", "simulate", "--rate", "200"],
        env={**os.environ, "REDIS_URL": redis_url},
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = proc.stderr.readline()  # its first progress line: it is sending
    assert b"simulate: " in seen, seen
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130, seen + rest
    lines = rest.decode().splitlines()
    assert lines[-2].startswith("simulate: sent ")
    assert lines[-1] == "cxstream: simulate interrupted (SIGINT)"


def test_simulate_writes_ground_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    done = cx(
        "simulate", "--events", "2000", "--customers", "50", "--output", str(tmp_path / "e.jsonl"),
        "--truth", str(truth),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    assert len(rows) >= 50
    assert all(0 <= row["churn_propensity"] <= 1 for row in rows)
    assert set(rows[0]["taste"]) >= {"retention_offer", "resolve_complaint"}
    assert any(row["cancelled"] for row in rows) or len(rows) == 50


def test_a_simulated_purchase_log_is_evaluated_as_written(tmp_path: Path) -> None:
    log = tmp_path / "purchases.jsonl"
    done = cx("simulate", "--purchases", "400", "--customers", "1500", "--seed", "4",
              "--output", str(log))  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert {e["type"] for e in events} == {"purchase"}
    assert len({e["customer_id"] for e in events}) == 1500
    assert f"{len(events)} purchases of 1500 customers over 400 days".encode() in done.stderr
    done = cx("evaluate", "--input", str(log), "--horizon", "90")  # jsonl: by the file's name
    assert done.returncode == 0, done.stderr
    figures = orjson.loads(done.stdout.splitlines()[-1])
    assert figures["n_events"] == len(events)
    assert figures["lift_over_best_single"] > 0.0  # the model beats "fewer purchases = riskier"


@pytest.mark.parametrize(
    "args",
    [["--events", "20000"], ["--purchases", "365", "--customers", "20000"]],
    ids=["journeys", "purchases"],
)
def test_simulate_to_a_pipe_closed_early_stops_quietly(args: list[str]) -> None:
    # (`cxstream simulate --output - | head -1`: the reader goes after one line; each log
    # is megabytes, far more than a pipe holds, so the writer is still writing then)
    reader, writer = os.pipe()
    with subprocess.Popen(
        [sys.executable, "-m", "cxstream", "simulate", *args, "--output", "-"],
        stdout=writer,
        stderr=subprocess.PIPE,
    ) as proc:
        os.close(writer)
        with os.fdopen(reader, "rb") as head:
            assert head.readline().startswith(b"{")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert err == b""


def test_simulate_refuses_a_duration_for_a_file(tmp_path: Path) -> None:
    done = cx("simulate", "--duration", "1", "--output", str(tmp_path / "f.jsonl"))
    assert done.returncode == 2
    assert b"give --events N instead" in done.stderr
    assert not (tmp_path / "f.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purchases", "90"], "simulate --purchases writes a file: give --output FILE"),
        (["--purchases", "90", "--output", "-", "--truth", "t"], "takes no --truth or --incident"),
        (["--purchases", "0", "--output", "-"], "--purchases: 0 must be at least 1"),
    ],
)
def test_simulate_purchases_refuses_what_it_cannot_do(args: list[str], message: str) -> None:
    done = cx("simulate", *args)
    assert done.returncode == 2
    assert message.encode() in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "0"], "--process-id and --addresses go together"),
        (["-i", "2", "-a", "127.0.0.1:1;127.0.0.1:2"], "--process-id 2: must index --addresses"),
        (["-i", "0", "-a", "nohost"], "'nohost' is not host:port"),
    ],
)
def test_run_refuses_a_bad_cluster(tmp_path: Path, args: list[str], message: str) -> None:
    done = cx("run", *args, env={"CX_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://localhost:1"})
    assert done.returncode == 2
    assert message in done.stderr.decode()


def test_run_says_in_one_line_that_its_cluster_address_is_taken(
    tmp_path: Path, redis_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        addresses = f"127.0.0.1:{port};127.0.0.1:{free_port()}"
        done = cx(
            "run",
            "-i",
            "0",
            "-a",
            addresses,
            env={"CX_DATA_DIR": str(tmp_path), "REDIS_URL": redis_url},
        )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert (
        f"cxstream: error: --addresses: cannot listen on 127.0.0.1:{port} (--process-id 0's): "
        in err
    )
    assert "Traceback" not in err


def test_run_says_in_one_line_that_redis_is_unreachable(tmp_path: Path) -> None:
    done = cx("run", env={"CX_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1"})
    assert done.returncode == 2
    [error] = [line for line in done.stderr.decode().splitlines() if "error" in line]
    assert error.startswith("cxstream: error: cannot reach redis at redis://127.0.0.1:1: ")
    assert b"panicked" not in done.stderr
    assert b"Traceback" not in done.stderr


def test_forget_queues_the_event_and_without_a_flow_says_it_waits(
    tmp_path: Path, redis_url: str, r: redis.Redis
) -> None:
    from operators.events import shard_of
    from state.keys import events_stream

    env = {"REDIS_URL": redis_url, "CX_DATA_DIR": str(tmp_path)}
    done = cx("forget", "c-42", "--wait", "0", env=env)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["queued"]
    [(_, fields)] = entries(r, events_stream(shard_of("c-42", 4)))
    event = orjson.loads(fields[b"data"])
    assert (event["type"], event["customer_id"], event["channel"]) == ("forget", "c-42", "crm")
    waited = cx("forget", "c-43", "--wait", "0.3", env=env)
    assert waited.returncode == 1
    assert b"stays queued" in waited.stderr
    assert b"c-43" not in waited.stderr + waited.stdout  # ids stay out of what it prints
    too_long = cx("forget", "x" * 129, env=env)
    assert too_long.returncode == 2
    assert b"allowed 1-128" in too_long.stderr


def test_report_prints_the_experience_figures_as_the_last_line(tmp_path: Path) -> None:
    """Surveys after calls, a journey, a cancel: the report's figures, as the issue names them."""
    events = []
    for c in range(20):
        cid = f"c{c}"
        base = 1_767_225_600_000 + c * 1000
        events += [
            ev(f"{c}-1", "page_view", customer=cid, ts=base),
            ev(f"{c}-2", "contact_start", customer=cid, ts=base + 60_000, channel="voice"),
            ev(f"{c}-3", "survey", customer=cid, ts=base + 120_000, channel="survey",
               nps=10 if c % 2 else 4, csat=5 if c % 2 else 2, ces=2 if c % 2 else 6),
        ]  # fmt: skip
        if c % 2 == 0:
            events.append(ev(f"{c}-4", "cancel", customer=cid, ts=base + 180_000))
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e.to_json()) for e in events) + b"\n{broken\n")
    done = cx("report", "--input", str(path))
    assert done.returncode == 0, done.stderr
    figures = orjson.loads(done.stdout.splitlines()[-1])
    overall = figures["kpis"]["overall"]
    assert (overall["nps"]["value"], overall["nps"]["n"]) == (0.0, 20)
    assert overall["csat"]["value"] == 50.0
    assert overall["ces"]["value"] == 4.0
    assert set(figures["kpis"]["by_touchpoint"]) == {"voice·contact_start"}
    assert set(figures["kpis"]["by_channel"]) == {"voice"}  # the channel rated
    [first, *_] = figures["journey_map"]["transitions"]
    assert {"from", "to", "count", "median_gap_s", "churn_rate"} <= set(first)
    assert (first["from"], first["to"], first["count"]) == (
        "web·page_view",
        "voice·contact_start",
        20,
    )
    assert {"touchpoint", "churn_lift", "ci", "n"} <= set(figures["touchpoints"][0])
    assert figures["rejected_rows"] == 1
    assert b"NPS 0 points" in done.stderr


def test_report_of_a_missing_file_is_one_line() -> None:
    done = cx("report", "--input", "/nonexistent/log.csv")
    assert done.returncode == 2
    assert done.stderr.decode().count("\n") == 1
    assert done.stderr.startswith(b"cxstream: error: ")


def test_report_writes_a_self_contained_page(tmp_path: Path) -> None:
    events = [
        ev("1", "page_view", customer="<b>x</b>", ts=1_767_225_600_000),
        ev("2", "contact_start", customer="<b>x</b>", ts=1_767_225_660_000, channel="voice"),
        ev("3", "<script>alert(1)</script>", customer="y", ts=1_767_225_700_000),
        ev("4", "survey", customer="y", ts=1_767_225_800_000, channel="survey", nps=9, ces=3),
    ]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e.to_json()) for e in events))
    page = tmp_path / "out.html"
    done = cx("report", "--input", str(path), "--html", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "<script" not in html  # the log's names are escaped, and the page runs nothing
    assert "&lt;script&gt;" in html
    for outside in ("http://", "https://", "src="):
        assert outside not in html
    assert orjson.loads(done.stdout.splitlines()[-1])["kpis"]["overall"]["nps"]["value"] == 100.0
    bad = cx("report", "--input", str(path), "--html", str(tmp_path / "no" / "such" / "x.html"))
    assert bad.returncode == 2
    assert bad.stderr.decode().startswith("cxstream: error: --html")
