"""Coverage-guided fuzzing (atheris) of what comes from outside: event bytes and
WebSocket messages.  Not part of the default suite (the hypothesis properties in
tests/operators/test_events.py and tests/server/test_protocol.py are); run it with
``make fuzz`` or ``python -m tests.fuzz_inputs -atheris_runs=200000``.

Each input goes to the event parser (an :class:`Event` or a :class:`Rejected` with a
reason, never an exception), to an agent session before and after ``auth``, and to
an ingest session after ``auth`` (actions, never an exception).  A crash prints the
input and exits non-zero (libFuzzer's report).
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from cxstream.settings import Secret
from operators.events import Event, Rejected, parse_entry
from server.protocol import AgentSession, Close, Ingest, IngestSession, Publish, Replay, Send
from server.tokens import mint

SECRET = Secret("fuzz-secret-" + "x" * 40)
ACTIONS = (Send, Close, Replay, Publish, Ingest)


def _session(
    cls: type[AgentSession] | type[IngestSession], role: str
) -> AgentSession | IngestSession:
    s = cls(SECRET, now=0.0)
    token = mint(SECRET, agent_id="f1", queues=["care"], role=role, now=0.0, ttl_s=600)
    s.receive('{"type":"auth","token":"' + token + '"}', now=1.0)
    assert s.authenticated
    return s


def check(data: bytes) -> None:
    """One input through every outside-facing parser; raises on a broken promise."""
    parsed = parse_entry("cx:events:0", "1-0", data)
    assert isinstance(parsed, Event | Rejected), parsed
    if isinstance(parsed, Rejected):
        assert parsed.reason
    text = data.decode("utf-8", errors="replace")
    for message in (data, text):
        for session in (
            AgentSession(SECRET, now=0.0),
            _session(AgentSession, "agent"),
            _session(IngestSession, "ingest"),
        ):
            out = session.receive(message, now=2.0)
            assert all(isinstance(a, ACTIONS) for a in out), out


SEEDS = (
    b'{"event_id":"e1","customer_id":"c1","ts":"2026-01-01T10:00:00+01:00","channel":"voice",'
    b'"type":"contact_start","attrs":{"queue":"care","sentiment":-0.5,"nps":3,"amount":9.5}}',
    b'{"type":"outcome","alert_id":"al_1","action_id":"a","response":"declined","reason":"x"}',
    b'[{"event_id":"e2","anonymous_id":"ck","ts":1767225600000,"channel":"web","type":"x"}]',
    b'{"type":"subscribe","queues":["care"]}',
    b'{"type":"resume","after":"1-0"}',
)


def main() -> None:
    import atheris

    atheris.instrument_all()  # coverage of every loaded module guides the mutations
    corpus = Path(tempfile.mkdtemp(prefix="cx-fuzz-"))
    atexit.register(shutil.rmtree, corpus, ignore_errors=True)  # Fuzz() exits the process
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup([*sys.argv, str(corpus)], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
