"""The agent console in a real browser (Playwright driving Debian's Chromium).

Signs in with a token, sees an alert appear after a contact event is sent through
the flow, clicks "Accepted", and finds the outcome event in Redis.  Saves a
screenshot to artifacts/console.png (1024 px wide), then signs in a supervisor and
saves artifacts/supervisor.png.  Chromium comes from the system package (`.ci/run`
installs it); without it the test is skipped locally and fails in CI.  The helpers
here (a page, a server alone, an alert as the engine writes it) serve the other
console tests too (``test_console_cards.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import redis

from operators.events import parse_event, shard_of
from server.tokens import mint
from state.ingest import xadd_events
from state.keys import ALERTS, events_stream
from tests.conftest import (
    SECRET,
    entries,
    ev,
    free_port,
    running_stack,
    serve_env,
    server_healthy,
    wait_until,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.timeout(180)


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def need_chromium() -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")


@contextlib.contextmanager
def console_page(url: str, *, height: int, width: int = 1024) -> Iterator[tuple[Page, list[str]]]:
    """Chromium on ``url`` (the console), in English and UTC so that dates read the same
    on every machine; yields the page and the page errors seen."""
    from playwright.sync_api import sync_playwright

    need_chromium()  # (here, so that no browser test can forget it)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(
                viewport={"width": width, "height": height}, locale="en-GB", timezone_id="UTC"
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


@contextlib.contextmanager
def serving(redis_url: str, folder: Path, **settings: str) -> Iterator[int]:
    """`cxstream serve` alone on ``redis_url`` (the test writes the alerts; ``settings``:
    more of its environment); yields its port once it answers, and stops it with SIGINT."""
    port = free_port()
    env = {**serve_env(redis_url, folder, port), **settings}
    log = folder / "serve.log"
    command = [sys.executable, "-m", "cxstream", "serve"]
    proc = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or server_healthy(port), "the server's /healthz")
        assert proc.poll() is None, f"serve exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("serve did not stop on SIGINT") from None


def agent_url(port: int, agent: str = "agent-7", *, role: str = "agent") -> str:
    """The console's address with a token for ``agent`` (queue care) in its fragment."""
    token = mint(SECRET, agent_id=agent, queues=["care"], role=role, now=time.time(), ttl_s=600)
    return f"http://127.0.0.1:{port}/#token={token}"


def contact_alert(alert_id: str, customer: str, event_ts: int, **changes: Any) -> dict[str, Any]:
    """A contact alert for queue care, as operators/alerts.py builds it; ``changes``
    replace top-level fields, ``risk``/``journey``/``nba`` are merged into theirs."""
    risk = {
        "churn_probability": 0.72,
        "band": "high",
        "trend": "rising",
        "model": "refit-1@1200 (learned)",
        "reasons": ["1 open complaint", "sentiment negative (-0.70)"],
        "holding_down": [],
        **changes.pop("risk", {}),
    }
    journey = {
        "last_touchpoints": [{"ts": event_ts, "channel": "voice", "type": "contact_start"}],
        "open_complaints": 1,
        "complaints_total": 1,
        "sentiment": -0.7,
        "nps": None,
        "csat": None,
        "channel_switches_24h": 1,
        "repeat_contacts_7d": 0,
        "payment_failures_30d": 0,
        "value": 741.83,
        "tenure_days": 400.0,
        **changes.pop("journey", {}),
    }
    nba = {
        "action_id": "resolve_complaint",
        "title": "Resolve the open complaint first",
        "script": "I can see you have an open complaint with us. Let me take ownership of it now.",
        "score": 31.8,
        "p_accept": 0.61,
        "why": "P(accept) 0.61 x value 60 x lever 1 x serve relevance 1.00 - cost 5 = 31.8; "
        "eligible: complaints_open >= 1; segment high/complaint/paid",
        "reason": "The customer has an open complaint; of the 3 actions that fit, "
        "it is the likeliest to pay off.",
        "alternatives": [
            {
                "action_id": "service_recovery_credit",
                "score": 20.1,
                "title": "Apologise and apply a goodwill credit",
            },
            {
                "action_id": "thank_and_listen",
                "score": 1.2,
                "title": "Thank the customer and ask how we can help",
            },
        ],
        "excluded": {"retention_offer": "sales action while a complaint is open"},
        "policy": "thompson@840",
        **changes.pop("nba", {}),
    }
    return {
        "alert_id": alert_id,
        "kind": "contact",
        "customer_id": customer,
        "contact_id": f"call-{alert_id}",
        "agent_id": "agent-7",
        "queue": "care",
        "channel": "voice",
        "event_id": f"ev-{alert_id}",
        "event_ts": event_ts,
        "emitted_at": event_ts,
        "risk": risk,
        "journey": journey,
        "persona": None,
        "next_best_action": nba,
        "control": False,
        **changes,
    }


def push(r: redis.Redis, alert: dict[str, Any]) -> str:
    """Write an alert to the alerts stream as the flow's sink does; its stream id."""
    entry_id = r.xadd(ALERTS, {"data": orjson.dumps(alert)})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def answers_of(r: redis.Redis, customer: str) -> list[str]:
    """The responses written back (offer_response events) for ``customer``."""
    stream = events_stream(shard_of(customer, 4))
    found = [parse_event(f[b"data"]) for _, f in entries(r, stream)]
    return [
        e.attrs["response"]
        for e in found
        if e.type == "offer_response" and e.customer_id == customer
    ]


def test_agent_signs_in_sees_the_alert_and_answers_it(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    need_chromium()
    with running_stack(redis_url, tmp_path) as port:
        token = mint(
            SECRET, agent_id="agent-7", queues=["care"], role="agent", now=time.time(), ttl_s=600
        )
        with console_page(f"http://127.0.0.1:{port}/", height=800) as (page, errors):
            page.fill("#token", token)
            page.click("#go")
            page.wait_for_selector("#status.live", timeout=15_000)
            # an agent does not see the supervisor's panels, not even empty ones
            assert not page.is_visible("#supervisor")
            assert not page.is_visible("#trends")
            assert page.title() == "cxstream · agent console"
            now = int(time.time() * 1000)
            xadd_events(
                r,
                [
                    ev(
                        "b1",
                        "complaint",
                        customer="cust-browser",
                        ts=now - 3_600_000,
                        sentiment=-0.7,
                    ),
                    ev(
                        "b2",
                        "contact_start",
                        customer="cust-browser",
                        ts=now,
                        channel="voice",
                        queue="care",
                        agent_id="agent-7",
                        contact_id="call-b",
                    ),
                ],
                4,
            )
            card = page.wait_for_selector("article.alert", timeout=20_000)
            assert card is not None
            assert "cust-browser" in card.inner_text()
            assert "1 open complaint" in card.inner_text()
            # the engine's alert carries the sentence and the alternatives' titles it shows
            assert "Why: The customer has an open complaint" in card.inner_text()
            assert "_" not in card.inner_text().split("Other options:")[-1].split("\n")[0]
            page.wait_for_timeout(600)  # let the card finish appearing
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "console.png"))
            page.click("article.alert button[data-response=accepted]")
            page.wait_for_selector("article.alert .answered", timeout=5_000)
        assert errors == []
        stream = events_stream(shard_of("cust-browser", 4))

        def outcome_types() -> list[str]:
            return [parse_event(f[b"data"]).type for _, f in entries(r, stream)]

        wait_until(lambda: "offer_response" in outcome_types(), "the outcome event in redis")
        answer = next(
            parse_event(f[b"data"])
            for _, f in entries(r, stream)
            if parse_event(f[b"data"]).type == "offer_response"
        )
        assert answer.attrs["response"] == "accepted"
        assert answer.attrs["agent_id"] == "agent-7"
        assert (ARTIFACTS / "console.png").stat().st_size > 10_000


def test_supervisor_sees_trends_the_risk_of_contacts_and_acceptance(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """A supervisor signs in (token in the URL), and the view fills from a contact
    alert, a trend alert and the agents' answer counts; no page error."""
    need_chromium()
    from state.keys import ANSWERS, answer_fields

    with running_stack(redis_url, tmp_path) as port:
        token = mint(
            SECRET, agent_id="sup-1", queues=["care"], role="supervisor", now=time.time(), ttl_s=600
        )
        with console_page(f"http://127.0.0.1:{port}/#token={token}", height=900) as (page, errors):
            page.wait_for_selector("#status.live", timeout=15_000)
            assert page.is_visible("#supervisor")
            assert "supervisor" in page.title()
            assert "agent console" not in page.title() + page.inner_text("header")
            now = int(time.time() * 1000)
            last_month = now - 40 * 86_400_000  # an example of another day shows its date
            contact = {
                "alert_id": "al_sup",
                "kind": "contact",
                "customer_id": "cust-sup",
                "queue": "care",
                "channel": "voice",
                "event_ts": now,
                "risk": {"churn_probability": 0.81, "band": "high", "trend": "new", "reasons": []},
                "journey": {"last_touchpoints": []},
                "persona": {"id": "p2", "name": "complainer, unhappy"},
                "next_best_action": None,
            }
            examples = [
                {
                    "event_id": f"e{i}",
                    "ts": now,
                    "channel": "chat",
                    "type": "complaint",
                    "queue": None,
                    "topic": "outage",
                    "sentiment": -0.6,
                }
                for i in range(3)
            ]
            examples[0]["ts"] = last_month
            trend = {
                "alert_id": "tr_sup",
                "kind": "trend",
                "customer_id": None,
                "event_ts": now,
                "trend": {
                    "series": "complaints|topic=outage",
                    "metric": "complaints",
                    "dimension": "topic",
                    "value": "outage",
                    "count": 31,
                    "window_ms": 3_600_000,
                    "baseline": 2.4,
                    "ratio": 12.9,
                    "z": 18.1,
                    "examples": examples,
                },
            }
            for alert in (contact, trend):
                r.xadd("cx:alerts", {"data": orjson.dumps(alert)})
            for name in answer_fields("retention_offer", "agent-7", "accepted", "care"):
                r.hincrby(ANSWERS, name, 3)
            for name in answer_fields("retention_offer", "agent-7", "declined", "care"):
                r.hincrby(ANSWERS, name, 1)
            page.wait_for_selector(".trend[data-alert-id=tr_sup]", timeout=10_000)
            assert "topic outage: 31 in 60 min" in page.inner_text("#trends")
            example = page.inner_text(".trend[data-alert-id=tr_sup] .ex")
            day = time.gmtime(last_month / 1000)
            assert f"{day.tm_mday} {MONTHS[day.tm_mon - 1]}" in example, example
            page.wait_for_function(
                "document.querySelector('#by-agent').innerText.includes('agent-7')", timeout=10_000
            )
            assert "75%" in page.inner_text("#by-agent")
            assert "high 1" in page.inner_text("#risk-bands")
            card = page.wait_for_selector("article.alert[data-alert-id=al_sup]", timeout=10_000)
            assert card is not None
            assert "complainer, unhappy" in card.inner_text()
            page.wait_for_timeout(400)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "supervisor.png"))
        assert errors == []
        assert (ARTIFACTS / "supervisor.png").stat().st_size > 10_000
