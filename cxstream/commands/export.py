"""``cxstream export``: everything held about a customer, as one JSON document (the
right of access)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import orjson

from cxstream.settings import Settings
from operators.errors import ConfigError

log = logging.getLogger("cxstream")


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Print everything cxstream holds about a customer, as one JSON document.

    The profile (the 360 view the flow keeps current: journey, risk, consents with
    their times and sources, the times of the examples pending a label), the
    customer's entries in the event streams, the alerts and outbound actions about
    them, their dead letters, and, with CX_RECOVERY_DIR, their journey state in the
    recovery snapshots; the same for the anonymous ids linked to them.  Times are
    epoch milliseconds (exported_at_utc is the export's time as a date).  After
    cxstream forget every section is empty and erased is true.  The export is
    recorded in the audit trail cx:audit (the customer as a keyed digest,
    audit_customer, and counts only).  With --audit, it prints instead the trail's
    entries about the customer (consent changes, erasures, exports).
    """
    from operators.audit import audit_digest, right_entry
    from operators.consent import parse_consent_default
    from state.audit import append, entries_of, secret_key
    from state.export import counts, export
    from state.keys import KeyNames
    from state.redis import connect

    key: str = args.customer_id
    if not 1 <= len(key) <= 128:
        raise ConfigError(f"customer id of {len(key)} chars: allowed 1-128")
    client = connect(settings)
    audit_key = secret_key(settings)
    digest = audit_digest(audit_key, key)
    if args.audit:
        try:
            trail = entries_of(client, audit_key, key)
        finally:
            client.close()
        listed = {"customer_id": key, "audit_customer": digest, "entries": trail}
        sys.stdout.buffer.write(orjson.dumps(listed, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    try:
        now = int(time.time() * 1000)
        doc = export(
            client,
            key,
            KeyNames.of(settings),
            anonymous=args.anonymous,
            recovery_dir=settings.recovery_dir,
            at_ms=now,
        )
        doc["audit_customer"] = digest
        doc["consent_default"] = {
            purpose: "granted" if granted else "denied"
            for purpose, granted in parse_consent_default(settings.consent_default).items()
        }
        held = counts(doc)
        entry = right_entry("export", digest, at_ms=now, **held)
        append(client, entry, retention_days=settings.audit_retention_days)
    finally:
        client.close()
    sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()
    note = (
        " (erased: nothing held)"
        if doc["erased"]
        else " (nothing held under this id: is it right? ids are case-sensitive)"
        if not any(held.values())
        else ""
    )
    log.info(
        "exported a customer%s: %s", note, ", ".join(f"{n} {name}" for name, n in held.items())
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The command's arguments."""
    p = sub.add_parser(
        "export", help="print everything held about a customer", description=cmd_export.__doc__
    )
    p.add_argument("customer_id", help="the customer id (or, with --anonymous, anonymous id)")
    p.add_argument(
        "--anonymous", action="store_true", help="the id is an anonymous_id (cookie, device)"
    )
    p.add_argument(
        "--audit",
        action="store_true",
        help="print the audit trail's entries about the customer instead (found by its keyed "
        "digest: consent changes, erasures, exports)",
    )
    p.set_defaults(func=cmd_export, follows_demo=True)  # while the demo runs: its folder
