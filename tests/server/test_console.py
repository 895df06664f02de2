"""The agent console in a real browser (Playwright driving Debian's Chromium).

Signs in with a token, sees an alert appear after a contact event is sent through
the flow, clicks "Accepted", and finds the outcome event in Redis.  Saves a
screenshot to artifacts/console.png.  Chromium comes from the system package
(`.ci/run` installs it); without it the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
import redis

from operators.events import parse_event, shard_of
from server.tokens import mint
from state.ingest import xadd_events
from state.keys import events_stream
from tests.conftest import SECRET, entries, ev, running_stack, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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
def console_page(url: str, *, height: int) -> Iterator[tuple[Page, list[str]]]:
    """Chromium on ``url`` (the console); yields the page and the page errors seen."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": height})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            yield page, errors
        finally:
            browser.close()


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
            now = int(time.time() * 1000)
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
