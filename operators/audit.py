"""The audit trail: consent changes, erasures and exports, without the customer's id.

Each entry names its customer by a keyed digest (:func:`audit_digest`: BLAKE2b keyed
with a key drawn from ``CX_SECRET``), never by the id: whoever holds the secret can
find a given customer's entries (``cxstream export ID --audit`` lists them; ``export``
and ``forget`` print the digest as ``audit_customer``), whoever reads the trail alone
cannot tell who they are about.  It is not the erasure's digest
(:func:`operators.erasure.forget_digest`, unkeyed): an erasure leaves the trail
its record of having been done.

>>> d = audit_digest(b"k" * 32, "c1")
>>> len(d), d == audit_digest(b"k" * 32, "c1"), d == audit_digest(b"j" * 32, "c1")
(32, True, False)
>>> sorted(consent_entry(ConsentChange("c1", "e9", 5, "marketing", "sms", False, "app",
...                                    False, "app"), d, "r", at_ms=7))
['at', 'channel', 'customer', 'event', 'granted', 'purpose', 'ts', 'via', 'what']
"""

from __future__ import annotations

import hashlib
from typing import Any

from operators.records import ConsentChange

_PERSON = b"cx-audit"


def audit_key(secret: str) -> bytes:
    """The digest key, drawn from the signing secret (32 bytes)."""
    return hashlib.blake2b(secret.encode("utf-8"), digest_size=32, person=b"cx-audit-key").digest()


def audit_digest(key: bytes, customer: str) -> str:
    """A customer key (customer id or anonymous id) as the audit trail names it (hex)."""
    return hashlib.blake2b(
        customer.encode("utf-8"), key=key, digest_size=16, person=_PERSON
    ).hexdigest()


def event_ref(key: bytes, event_id: str) -> str:
    """The event an entry records, as a digest (an event id may carry personal data);
    it also marks the entry written once (a replay adds nothing)."""
    return hashlib.blake2b(
        event_id.encode("utf-8"), key=key, digest_size=12, person=b"cx-audit-event"
    ).hexdigest()


def consent_entry(change: ConsentChange, digest: str, ref: str, *, at_ms: int) -> dict[str, Any]:
    """A consent change as the trail keeps it: what, when (``ts`` event time, ``at``
    written), which purpose and channel, granted or not, the channel it came by (not the
    statement's free-text ``source``, which may name a person), and the event's
    reference (:func:`event_ref`)."""
    return {
        "what": "consent",
        "customer": digest,
        "purpose": change.purpose,
        "channel": change.channel or "*",
        "granted": change.granted,
        "via": change.via,
        "ts": change.ts,
        "at": at_ms,
        "event": ref,
    }


def right_entry(what: str, digest: str, *, at_ms: int, **counts: Any) -> dict[str, Any]:
    """A right exercised (``erasure``, ``export``): when, for whom, and counts (no ids).

    >>> right_entry("export", "ab", at_ms=3, events=2)
    {'what': 'export', 'customer': 'ab', 'at': 3, 'events': 2}
    """
    return {"what": what, "customer": digest, "at": at_ms, **counts}
