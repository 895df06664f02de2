"""The customer's rights on real parts: consent, access (export), erasure, the audit trail.

The flow and the server run as processes on a real Redis, with recovery snapshots.
A customer withdraws marketing consent and gets no marketing action; then a canary of
its own is planted in each place cxstream keeps something about it (its events, a
consent statement, its journey, a pending example, an alert, an outbound action, a
dead letter, a recovery snapshot), and ``cxstream export`` finds every one; after
``cxstream forget`` the export is empty.  The audit trail records the consent change,
the exports and the erasure, and never the customer's id.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from cxstream.settings import Settings
from operators.audit import audit_digest
from operators.events import Event
from operators.nba import in_control_group
from state.audit import entries_of, secret_key
from state.catalog import default_catalog
from state.ingest import xadd_events
from state.keys import ALERTS, AUDIT, DLQ, OUTBOUND, events_stream, profile_key
from tests.conftest import DAY, SECRET, T0, entries, ev, running_stack, wait_until

pytestmark = pytest.mark.timeout(180)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cxstream", *args],
        env=env,
        capture_output=True,
        timeout=90,
        check=False,
    )


def exported(env: dict[str, str], customer: str, *flags: str) -> dict[str, Any]:
    done = cli(env, "export", customer, *flags)
    assert done.returncode == 0, done.stderr.decode()
    doc: dict[str, Any] = orjson.loads(done.stdout)
    return doc


def alerts_of(client: redis.Redis, customer: str) -> list[dict[str, Any]]:
    out = []
    for _, fields in entries(client, ALERTS):
        payload = orjson.loads(fields[b"data"])
        if payload.get("customer_id") == customer:
            out.append(payload)
    return out


def test_consent_export_and_forget_on_a_running_stack(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url)
    tag = uuid.uuid4().hex[:12]
    customer = f"cust-{tag}"
    while in_control_group(customer, default_catalog().policy.control_group):  # no action
        tag = uuid.uuid4().hex[:12]
        customer = f"cust-{tag}"
    canary = {  # one canary for each place
        "events": f"said-{tag}",
        "consent": f"centre-{tag}",
        "journey": f"step-{tag}",
        "alerts": f"contact-{tag}",
        "dead_letters": f"broken-{tag}",
    }
    folder = tmp_path / "stack"
    folder.mkdir()
    recovery = folder / "recovery"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CX_SECRET": SECRET.reveal(),
        "CX_DATA_DIR": str(folder),
        "CX_RECOVERY_DIR": str(recovery),
    }
    with running_stack(
        redis_url, folder, run_args=("--epoch-ms", "200"), CX_RECOVERY_DIR=str(recovery)
    ):
        statement = {"purpose": "marketing", "granted": False, "source": canary["consent"]}
        xadd_events(
            r,
            [
                ev(1, "page_view", customer=customer, text=canary["events"]),
                Event("c1", customer, None, T0 + 90_000, "app", "consent", statement),
                ev(2, canary["journey"], customer=customer),  # an unknown type: a touchpoint
                ev(
                    3,
                    "contact_start",
                    customer=customer,
                    channel="voice",
                    queue="care",
                    contact_id=canary["alerts"],
                ),
                # two failed payments, days after the call: a proactive action (or hold-out)
                ev("pf1", "payment_failed", customer=customer, ts=T0 + 2 * DAY),
                ev("pf2", "payment_failed", customer=customer, ts=T0 + 3 * DAY),
            ],
            4,
        )
        bad = {"customer_id": customer, "type": "page_view", "attrs": {"t": canary["dead_letters"]}}
        r.xadd(events_stream(0), {"data": orjson.dumps(bad)})  # ts missing: a dead letter
        wait_until(lambda: alerts_of(r, customer), "the customer's contact alert")
        wait_until(
            lambda: any(customer.encode() in f[b"data"] for _, f in entries(r, OUTBOUND)),
            "the customer's outbound action",
        )
        wait_until(lambda: r.xlen(DLQ) >= 1, "the dead letter")
        wait_until(lambda: r.xlen(AUDIT) >= 1, "the consent change in the audit trail")

        # No marketing action, and the card says why.
        contact = next(a for a in alerts_of(r, customer) if a["kind"] == "contact")
        assert contact["consent"]["marketing"]["granted"] is False
        assert contact["consent"]["marketing"]["source"] == canary["consent"]
        action = contact["next_best_action"]
        assert action is not None
        assert action["action_id"] not in ("retention_offer", "upsell_upgrade")
        for sale in ("retention_offer", "upsell_upgrade"):
            assert action["excluded"][sale].startswith("no marketing consent")

        def complete() -> bool:
            doc = exported(env, customer)
            return bool(doc["recovery"]) and doc["pending_examples"]["count"] >= 1

        wait_until(complete, "a recovery snapshot and the pending example", timeout=60)
        doc = exported(env, customer)
        assert doc["customer_id"] == customer
        assert doc["erased"] is False
        assert doc["consent_default"] == dict.fromkeys(
            ("marketing", "profiling", "contact"), "granted"
        )
        assert doc["audit_customer"] == audit_digest(secret_key(Settings(secret=SECRET)), customer)

        def holds(section: Any, needle: str) -> bool:
            return needle.encode() in orjson.dumps(section)

        assert holds(doc["events"], canary["events"])
        assert holds(doc["consent"], canary["consent"])
        assert doc["consent"]["marketing"]["*"]["granted"] is False
        assert holds(doc["journey"], canary["journey"])
        assert holds(doc["alerts"], canary["alerts"])
        assert holds(doc["dead_letters"], canary["dead_letters"])
        assert holds(doc["recovery"], canary["journey"])
        assert T0 + 3 * 60_000 in doc["pending_examples"]["snapshot_ts"]  # the contact's
        assert len(doc["outbound"]) == 1
        assert doc["outbound"][0]["data"]["customer_id"] == customer
        assert holds(doc["profile"], canary["consent"])

        # Erasure: then nothing is held, and the export says so.
        done = cli(env, "forget", customer, "--wait", "60")
        assert done.returncode == 0, done.stderr.decode()
        assert orjson.loads(done.stdout)["audit_customer"] == doc["audit_customer"]
        after = exported(env, customer)
        assert after["erased"] is True
        for name in ("events", "alerts", "outbound", "dead_letters", "linked", "recovery"):
            assert after[name] == [], name
        assert after["profile"] is None
        assert after["journey"] is None
        assert after["consent"] == {}
        assert after["pending_examples"] == {"count": 0, "snapshot_ts": []}
        blob = orjson.dumps({k: v for k, v in after.items() if k != "customer_id"})
        for needle in canary.values():
            assert needle.encode() not in blob

    # The audit trail: the consent change, two-plus exports and the erasure, by a keyed
    # digest; never the id.
    key = secret_key(Settings(secret=SECRET))
    trail = entries_of(r, key, customer)
    kinds = [e["what"] for e in trail]
    assert kinds.count("consent") == 1
    assert kinds.count("erasure") == 1
    assert kinds.count("export") >= 2
    [change] = [e for e in trail if e["what"] == "consent"]
    assert (change["purpose"], change["granted"], change["channel"], change["via"]) == (
        "marketing",
        False,
        "*",
        "app",
    )
    assert all(e["customer"] == audit_digest(key, customer) for e in trail)
    for _, fields in entries(r, AUDIT):
        assert customer.encode() not in fields[b"data"]
        assert tag.encode() not in fields[b"data"]
    assert not r.exists(profile_key(customer))
    listed = cli(env, "export", customer, "--audit")
    assert listed.returncode == 0, listed.stderr.decode()
    assert [e["what"] for e in orjson.loads(listed.stdout)["entries"]] == kinds
    r.close()


def test_export_of_an_unknown_customer_is_empty_and_a_wrong_id_is_one_line(
    redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "CX_SECRET": SECRET.reveal()}
    env["CX_DATA_DIR"] = str(tmp_path)
    done = cli(env, "export", "nobody-here")
    assert done.returncode == 0, done.stderr.decode()
    assert b"nothing held under this id: is it right?" in done.stderr  # a typo shows
    doc = orjson.loads(done.stdout)
    assert doc["erased"] is False
    assert doc["profile"] is None
    assert doc["events"] == doc["alerts"] == doc["dead_letters"] == doc["outbound"] == []
    done = cli(env, "export", "x" * 200)
    assert done.returncode == 2
    assert done.stderr.decode().strip().startswith("cxstream: error: customer id of 200 chars")
    assert done.stdout == b""
