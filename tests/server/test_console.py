"""The agent console in a real browser (Playwright driving Debian's Chromium).

Signs in with a token, sees an alert appear after a contact event is sent through
the flow, clicks "Accepted", and finds the outcome event in Redis.  Saves a
screenshot to artifacts/console.png.  Chromium comes from the system package
(`.ci/run` installs it); without it the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import redis

from operators.events import parse_event, shard_of
from server.tokens import mint
from state.ingest import xadd_events
from state.keys import events_stream
from tests.conftest import SECRET, entries, ev, running_stack, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.timeout(180)


def test_agent_signs_in_sees_the_alert_and_answers_it(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with running_stack(redis_url, tmp_path) as port:
        token = mint(
            SECRET, agent_id="agent-7", queues=["care"], role="agent", now=time.time(), ttl_s=600
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1300, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
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
            browser.close()
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
