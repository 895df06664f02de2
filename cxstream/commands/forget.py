"""``cxstream forget``: erase a customer: queue a forget event, and wait until the dataflow
has erased it."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import orjson

from cxstream.commands.args import non_negative_float
from cxstream.settings import Settings
from operators.errors import ConfigError
from state.keys import KeyNames

log = logging.getLogger("cxstream")


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    """Erase a customer: queue a forget event, and wait until the dataflow has erased it.

    The dataflow drops the customer's journey state, consents and pending training
    examples, its open recommendations, its profile hash, its entries in the
    event, alert, outbound and dead-letter streams (the count of events includes
    the forget event itself), and suppresses its later events; the anonymous ids
    linked to it go the same way.  Redis is then asked to rewrite its AOF and RDB
    files.  Prints the erasure record (counts, no id) as JSON once all of that is
    done; audit_customer is the customer's digest in the audit trail cx:audit,
    where the erasure is recorded.
    """
    import uuid

    from operators.audit import audit_digest
    from operators.erasure import forget_digest
    from operators.events import Event
    from state.audit import secret_key
    from state.erasure import erasure_record
    from state.ingest import xadd_events
    from state.redis import connect

    key: str = args.customer_id
    if not 1 <= len(key) <= 128:
        raise ConfigError(f"customer id of {len(key)} chars: allowed 1-128")
    client = connect(settings)
    sent_at = int(time.time() * 1000)
    event = Event(
        event_id=f"forget-{uuid.uuid4().hex}",
        customer_id=None if args.anonymous else key,
        anonymous_id=key if args.anonymous else None,
        ts=sent_at,
        channel="crm",
        type="forget",
        attrs={},
    )
    (stream_id,) = xadd_events(client, [event], KeyNames.of(settings))
    digest = forget_digest(key).hex()
    log.info("forget event queued as %s (customer %s)", stream_id, digest[:12])
    if args.wait <= 0:
        print(orjson.dumps({"queued": stream_id, "customer": digest}).decode())
        return 0
    deadline = time.monotonic() + args.wait
    next_note = time.monotonic() + 10
    record: dict[str, Any] | None = None
    waiting = "the dataflow (is `cxstream run` running?)"
    while time.monotonic() < deadline:
        if record is None:
            found = erasure_record(client, key)
            if found is not None and found.get("at", 0) >= sent_at:
                record, waiting = found, "the linked anonymous ids and redis's file rewrite"
        if record is not None and _erasure_finished(client, record):
            audit = audit_digest(secret_key(settings), key)
            done = {"erased": True, "customer": digest, "audit_customer": audit, **record}
            print(orjson.dumps(done).decode())
            return 0
        if time.monotonic() >= next_note:
            print(f"forget: still waiting for {waiting}", file=sys.stderr)
            next_note += 10
        time.sleep(0.1)
    print(
        f"forget: not finished within {args.wait:g} s (waiting for {waiting}); the forget "
        f"event ({stream_id}) stays queued and is carried out when `cxstream run` reads it",
        file=sys.stderr,
    )
    return 1


def _erasure_finished(client: Any, record: dict[str, Any]) -> bool:
    """The linked anonymous ids erased by their own forget (their state in the flow
    dropped), and Redis's files rewritten since."""
    from state.erasure import erasure_record, persisted

    at = int(record.get("at", 0))
    latest = at
    for digest in record.get("linked_digests", ()):
        linked = erasure_record(client, bytes.fromhex(digest))
        if linked is None or linked.get("at", 0) <= at:
            return False
        latest = max(latest, int(linked["at"]))
    return persisted(client, latest) if record.get("persistence") else True


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser("forget", help="erase a customer", description=cmd_forget.__doc__)
    p.add_argument("customer_id", help="the customer id (or, with --anonymous, anonymous id)")
    p.add_argument(
        "--anonymous", action="store_true", help="the id is an anonymous_id (cookie, device)"
    )
    p.add_argument(
        "--wait",
        type=non_negative_float,
        default=60.0,
        help="seconds to wait for the dataflow to erase the customer; 0: just queue (60)",
    )
    p.set_defaults(func=cmd_forget, follows_demo=True)  # while the demo runs: its folder
