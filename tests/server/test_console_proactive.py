"""The console's proactive side in a real browser: the call-back list and the supervisor's
"Proactive program" panel.

A proactive alert means the customer has not called: the engine found a reason to act
first.  Each test starts `cxstream serve` alone and writes alerts (and the model shard's
status) to Redis as the flow would, then drives the page in Chromium (helpers in
``test_console.py``).  An agent of the proactive queue (``retention``) sees those alerts as
rows of a "Call back" list apart from the live contact cards, the most valuable first, and
answers them as a card is answered; a supervisor sees the program's uplift in words, per
action and per reason, and its funnel.  Saves artifacts/callbacks.png (1024 px wide), the
picture in docs/callbacks.png, and artifacts/program.png.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import redis

from server.tokens import mint
from state.keys import model_key
from tests.conftest import SECRET, wait_until
from tests.server.test_console import (
    ARTIFACTS,
    answers_of,
    console_page,
    contact_alert,
    need_chromium,
    push,
    serving,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.timeout(180)

HOUR = 3_600_000
NBA_PAYMENT = {
    "action_id": "payment_help",
    "title": "Help fix the failed payment",
    "script": "I noticed a recent payment did not go through. Shall we update your payment "
    "details together so nothing is interrupted?",
    "score": 12.5,
    "p_accept": 0.5,
    "why": "churn 0.41 x value 250 x uplift 0.170 - cost 5 = 12.5; trigger payment_failed_twice",
    "reason": "Two failed payments within 7 days. The customer has a failed payment; of the 2 "
    "actions that fit, it is the likeliest to pay off.",
    "alternatives": [
        {
            "action_id": "service_recovery_credit",
            "score": 3.1,
            "title": "Apologise and apply a goodwill credit",
        },
    ],
    "excluded": {},
    "policy": "proactive",
}
NBA_CALL = {
    **NBA_PAYMENT,
    "action_id": "retention_offer",
    "title": "Offer the loyalty discount (3 months at 20% off)",
    "script": "You have been with us a while and we value that. I can offer you 20% off for "
    "the next three months, starting today.",
    "score": 31.2,
    "reason": "The churn risk has just entered the high band. It is the only action that fits.",
    "alternatives": [],
}


def proactive_alert(
    alert_id: str,
    customer: str,
    event_ts: int,
    *,
    value: float,
    channel: str = "sms",
    why: str = "two failed payments within 7 days",
    trigger: str = "payment_failed_twice",
    not_before: int | None = None,
    expires_at: int | None = None,
    nba: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A proactive alert for queue retention, as operators/decide.py writes it: a contact
    alert's fields with no contact and no agent, plus the trigger, the expected value and
    when to act."""
    alert = contact_alert(
        alert_id,
        customer,
        event_ts,
        kind="proactive",
        contact_id=None,
        agent_id=None,
        queue="retention",
        channel=channel,
        risk={
            "churn_probability": 0.41,
            "band": "medium",
            "reasons": ["2 failed payments in 30 days"],
            **(risk or {}),
        },
        journey={
            "last_touchpoints": [{"ts": event_ts, "channel": "web", "type": "payment_failed"}],
            "open_complaints": 0,
            "sentiment": None,
            "payment_failures_30d": 2,
        },
    )
    alert["next_best_action"] = nba or NBA_PAYMENT
    alert.update(
        trigger={"kind": "rule", "name": trigger, "event_id": f"ev-{alert_id}", "why": why},
        expected_value=value,
        not_before=not_before,
        expires_at=event_ts + 72 * HOUR if expires_at is None else expires_at,
    )
    return alert


def console_url(port: int, agent: str, *, role: str = "agent") -> str:
    token = mint(
        SECRET, agent_id=agent, queues=["retention"], role=role, now=time.time(), ttl_s=600
    )
    return f"http://127.0.0.1:{port}/#token={token}"


@contextlib.contextmanager
def retention_console(
    redis_url: str, folder: Path, *, height: int, role: str = "agent", **settings: str
) -> Iterator[tuple[int, Page, list[str]]]:
    """`cxstream serve` alone (``settings``: more of its environment) and a console of
    queue retention open on it, live."""
    need_chromium()
    with (
        serving(redis_url, folder, **settings) as port,
        console_page(console_url(port, "agent-r", role=role), height=height) as (page, errors),
    ):
        page.wait_for_selector("#status.live", timeout=15_000)
        yield port, page, errors


def row(alert_id: str) -> str:
    return f"details.cb-row[data-alert-id={alert_id}]"


def rows_shown(page: Page) -> list[str]:
    """The customers of the call-back list, top to bottom."""
    found = page.locator("details.cb-row")
    return [found.nth(i).get_attribute("data-customer") or "" for i in range(found.count())]


def clock(ms: int) -> str:
    """A time as the page shows it (UTC, en-GB), with or without the date before it."""
    t = time.gmtime(ms / 1000)
    return rf"(\d+ \w+ )?{t.tm_hour:02d}:{t.tm_min:02d}"


def test_callbacks_are_a_list_of_their_own_the_most_valuable_first(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """An agent of queue retention: proactive alerts are rows of the call-back list, not
    contact cards, ordered by expected value; each says who, why, what and how, the value,
    the risk and when (not before the quiet hours end; expired, greyed); a row opens to the
    script, the reasons and the journey; its answer reaches Redis as an offer_response and
    shows on the row; a reload brings the list back."""
    with retention_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        assert not page.is_visible("#callbacks")  # nothing to call back yet: no panel
        assert not page.is_visible("#program")  # the supervisor's panel: not for agents
        now = int(time.time() * 1000)
        later = now + 3 * HOUR
        push(
            r,
            proactive_alert(
                "al_old", "c-old", now - 80 * HOUR, value=20.0, expires_at=now - 10 * 60_000
            ),
        )
        push(r, contact_alert("al_live", "c-live", now - 60_000, queue="retention"))
        push(r, proactive_alert("al_pay", "c-pay", now - 30 * 60_000, value=12.5))
        push(
            r,
            proactive_alert(
                "al_call",
                "c-call",
                now,
                value=31.2,
                channel="voice",
                why="the churn risk has just entered the high band",
                trigger="risk_high",
                not_before=later,
                nba=NBA_CALL,
                risk={"churn_probability": 0.64, "band": "high"},
            ),
        )
        push(r, proactive_alert("al_mail", "c-mail", now - 5 * 60_000, value=4.8, channel="email"))
        page.wait_for_selector(row("al_mail"), timeout=10_000)

        # a list apart from the contact cards, the most valuable first
        assert page.is_visible("#callbacks")
        assert rows_shown(page) == ["c-call", "c-old", "c-pay", "c-mail"]
        cards = page.locator("article.alert")
        assert cards.count() == 1
        assert cards.first.get_attribute("data-customer") == "c-live"
        assert "c-pay" not in page.inner_text("#alerts")
        # the expired one is greyed and not counted; the others are
        page.wait_for_selector(f"{row('al_old')}.is-expired", timeout=10_000)
        assert "Expired" in page.inner_text(f"{row('al_old')} summary")
        assert page.inner_text("#cb-count") == "3"
        assert "2 to do now" in page.inner_text("#cb-summary")
        assert "1 after the customer's quiet hours" in page.inner_text("#cb-summary")

        # each row in plain words: who, why, what and how, value, risk, when
        pay = page.inner_text(f"{row('al_pay')} summary")
        for words in (
            "c-pay",
            "Medium risk",
            "Two failed payments within 7 days",
            "Help fix the failed payment",
            "sent by SMS",
            "€12.50",
            "to do now",
        ):
            assert words in pay, (words, pay)
        call = page.inner_text(f"{row('al_call')} summary")
        for words in ("High risk", "The churn risk has just entered the high band", "call back"):
            assert words in call, (words, call)
        assert "€31.20" in call
        assert re.search("not before " + clock(later), call), call
        assert "sent by email" in page.inner_text(f"{row('al_mail')} summary")
        assert "not before" not in pay
        # closed rows hide the script
        assert not page.is_visible(f"{row('al_pay')} .script")

        # opening a row: the script, the reasons and the journey, as on a card
        page.click(f"{row('al_pay')} summary")
        assert page.is_visible(f"{row('al_pay')} .script")
        opened = page.inner_text(row("al_pay"))
        assert "Shall we update your payment details together" in opened
        assert "Why at risk" in opened
        assert "2 failed payments in 30 days" in opened
        assert "web · payment failed" in opened  # the journey's touchpoints

        # at 1024 px the page does not scroll sideways
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1024, width

        # answering a row: the outcome goes back as a card's does, the row says so
        page.click(f"{row('al_pay')} button[data-response=accepted]")
        page.wait_for_selector(f"{row('al_pay')}.is-answered", timeout=5_000)
        assert "Answered: Accepted" in page.inner_text(f"{row('al_pay')} summary")
        assert page.inner_text("#cb-count") == "2"
        wait_until(lambda: answers_of(r, "c-pay") == ["accepted"], "c-pay's answer in redis")
        assert answers_of(r, "c-live") == []  # the contact card was not answered
        assert page.locator("article.alert .answered").count() == 0
        assert rows_shown(page) == ["c-call", "c-old", "c-pay", "c-mail"]  # nothing moved

        # the picture: a few rows, the most valuable one open
        page.click(f"{row('al_pay')} summary")
        page.click(f"{row('al_call')} summary")
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(400)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "callbacks.png"))

        # a reload brings the list back, answers included (the expired row stays gone)
        page.reload()
        page.wait_for_selector("#status.live", timeout=15_000)
        page.wait_for_selector(row("al_mail"), timeout=10_000)
        assert rows_shown(page) == ["c-call", "c-pay", "c-mail"]
        assert "Answered: Accepted" in page.inner_text(f"{row('al_pay')} summary")
        page.click(f"{row('al_mail')} summary")  # delivered again: it can still be answered
        page.click(f"{row('al_mail')} button[data-response=declined]")
        wait_until(lambda: answers_of(r, "c-mail") == ["declined"], "c-mail's answer in redis")
        assert page.locator("article.alert").count() == 1
        assert errors == []
    assert (ARTIFACTS / "callbacks.png").stat().st_size > 10_000


def test_on_a_fast_clock_times_to_come_are_in_the_viewers_time(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Event time running 3,600 times the wall clock's (a fast replay, the demo): an
    action lasting 72 hours of the viewer's time (72 x 3,600 hours of event time) says
    "until" a time 72 hours from now, not centuries ahead; one lasting an hour of event
    time expires a second later; event time moves on at that pace between alerts."""
    speed = 3_600
    with retention_console(redis_url, tmp_path, height=900, CX_CLOCK_SPEED=str(speed)) as (
        _port,
        page,
        errors,
    ):
        ts = int(time.time() * 1000) - 400 * 86_400_000  # a replay of last year's log
        lasting = ts + 72 * speed * HOUR
        # a contact 5 hours of event time before (5 s of the viewer's): kept by a reload
        push(r, contact_alert("al_call", "c-call", ts - 5 * HOUR, queue="retention"))
        push(r, proactive_alert("al_long", "c-long", ts, value=9.0, expires_at=lasting))
        push(r, proactive_alert("al_short", "c-short", ts, value=5.0, expires_at=ts + HOUR))
        page.wait_for_selector(row("al_long"), timeout=10_000)
        seen = time.time()
        shown = page.inner_text(f"{row('al_long')} summary")
        found = re.search(r"until (\d+) (\w+)(?: \d{4})? (\d\d):(\d\d)", shown)
        assert found, shown
        expected = time.gmtime(seen + 72 * 3600)
        day, month = int(found.group(1)), found.group(2)[:3]  # (en-GB: "Sept")
        assert (day, month) == (expected.tm_mday, time.strftime("%b", expected)), shown
        shown_min = int(found.group(3)) * 60 + int(found.group(4))
        gap = (expected.tm_hour * 60 + expected.tm_min - shown_min) % 1440
        assert min(gap, 1440 - gap) <= 2, shown  # within the seconds the page took
        assert "to do now" in shown
        # an hour of event time is a second of the viewer's: expired, and not counted
        page.wait_for_selector(f"{row('al_short')}.is-expired", timeout=10_000)
        assert "Expired" in page.inner_text(f"{row('al_short')} summary")
        assert page.inner_text("#cb-count") == "1"
        # the expired row stays greyed an hour of the viewer's time, not of event time
        time.sleep(3)  # (the rows' states are looked at every 2 s)
        assert page.is_visible(f"{row('al_short')}.is-expired")
        # a reload brings back the viewer's last hour: the card and the live row (not the
        # expired one), in the viewer's time
        page.reload()
        page.wait_for_selector("#status.live", timeout=15_000)
        page.wait_for_selector(row("al_long"), timeout=10_000)
        page.wait_for_selector("article.alert[data-alert-id=al_call]", timeout=10_000)
        assert page.locator(row("al_short")).count() == 0
        again = page.inner_text(f"{row('al_long')} summary")
        assert found.group(0) in again, (found.group(0), again)
        assert errors == []


def test_a_rule_acting_at_a_loss_says_so(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """A rule acts whatever the expected value (the business asks): a row worth less than
    its cost says why it is there, one worth more says nothing of the kind."""
    with retention_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        push(r, proactive_alert("al_loss", "c-loss", now - 60_000, value=-4.9))
        push(r, proactive_alert("al_gain", "c-gain", now, value=4.9))
        page.wait_for_selector(row("al_gain"), timeout=10_000)
        loss = page.inner_text(f"{row('al_loss')} .cb-value")
        assert "-€4.90" in loss
        assert "below its cost, the rule asks to act" in loss
        gain = page.inner_text(f"{row('al_gain')} .cb-value")
        assert "€4.90" in gain
        assert "below its cost" not in gain
        assert errors == []


def test_the_keys_answer_a_row_only_when_it_is_open_and_in_focus(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """With no focus the keys answer the contact card as before, never a row; on a row in
    focus a key first opens it (its script and buttons come into sight), the next one
    answers it, and no card."""
    with retention_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        push(r, proactive_alert("al_p", "c-p", now - 60_000, value=50.0))
        push(r, contact_alert("al_c1", "c-c1", now - 30_000, queue="retention"))
        push(r, contact_alert("al_c2", "c-c2", now, queue="retention"))
        page.wait_for_selector("article.alert[data-alert-id=al_c2]", timeout=10_000)
        page.wait_for_selector(row("al_p"), timeout=10_000)

        page.keyboard.press("a")  # no focus: the newest unanswered card
        page.wait_for_selector("article.alert[data-alert-id=al_c2] .answered", timeout=5_000)
        assert page.locator(f"{row('al_p')}.is-answered").count() == 0

        page.focus(f"{row('al_p')} summary")
        assert "target" in (page.get_attribute(row("al_p"), "class") or "")
        assert "target" not in (
            page.get_attribute("article.alert[data-alert-id=al_c1]", "class") or ""
        )
        page.keyboard.press("d")  # the row is closed: it opens, nothing is answered
        page.wait_for_function(
            f"document.querySelector('{row('al_p')}').open === true", timeout=5_000
        )
        page.wait_for_timeout(300)  # an answer, were one sent, shows at once
        assert page.locator(f"{row('al_p')}.is-answered").count() == 0
        assert page.locator("article.alert[data-alert-id=al_c1] .answered").count() == 0

        page.keyboard.press("d")
        page.wait_for_selector(f"{row('al_p')}.is-answered", timeout=5_000)
        assert "Answered: Declined" in page.inner_text(f"{row('al_p')} summary")
        assert page.locator("article.alert[data-alert-id=al_c1] .answered").count() == 0
        wait_until(lambda: answers_of(r, "c-p") == ["declined"], "c-p's answer")
        wait_until(lambda: answers_of(r, "c-c2") == ["accepted"], "c-c2's answer")
        assert answers_of(r, "c-c1") == []

        page.keyboard.press("n")  # answered rows take no more answers, nor pass them on
        page.wait_for_timeout(300)
        assert page.locator("article.alert[data-alert-id=al_c1] .answered").count() == 0
        assert answers_of(r, "c-p") == ["declined"]
        assert errors == []


def counts(nt: int, ct: int, nc: int, cc: int) -> dict[str, int]:
    return {"n_treated": nt, "churned_treated": ct, "n_control": nc, "churned_control": cc}


def test_a_supervisor_sees_the_proactive_program(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """The model shard's raw counts (as the flow publishes them) become, on the supervisor's
    page, the uplift in words with its interval, a table per action and per reason (not
    significant, not known yet), and the funnel."""
    with retention_console(redis_url, tmp_path, height=1000, role="supervisor") as (
        _port,
        page,
        errors,
    ):
        assert page.is_visible("#program")
        assert page.inner_text("#program-uplift") == "No proactive figures yet."
        assert not page.is_visible("#program-figures")
        program = {
            "by_action": {"payment_help": counts(900, 180, 100, 30)},
            "by_trigger": {
                "payment_failed_twice": counts(450, 90, 50, 15),
                "risk_high": counts(300, 60, 0, 0),
            },
            "open": 12,
            "funnel": {
                "triggered": 40,
                "acted": 30,
                "control": 3,
                "skipped": 7,
                "delivered": 20,
                "opened": 9,
                "clicked": 4,
            },
            "blocked": {"cool-down": 5, "recent contact": 2},
        }
        r.hset(model_key("m0"), "proactive", orjson.dumps(program))
        page.wait_for_selector("#program-figures:not([hidden])", timeout=10_000)
        # uplift 0.1, 95% interval [0.0102, 0.1963] (operators.proactive.uplift_of)
        assert page.inner_text("#program-uplift") == (
            "Customers we acted on churned 10 points less than the hold-out "
            "(95% interval 1.0 to 19.6 points; 900 acted on, 100 held out)."
        )
        assert "12 decisions still waiting for their outcome" in page.inner_text("#program-open")
        actions = page.inner_text("#program-actions")
        assert re.search(r"payment help\s+10 pts\s+1\.0 to 19\.6\s+900\s+100", actions), actions
        assert "not significant" not in actions
        triggers = page.inner_text("#program-triggers")
        assert re.search(
            r"payment failed twice\s+10 pts\s+-2\.4 to 23\.7 \(not significant\)\s+450\s+50",
            triggers,
        ), triggers
        no_interval = "\u2013"  # an en dash: no interval to show
        assert re.search(rf"risk high\s+not known yet\s+{no_interval}\s+300\s+0", triggers), (
            triggers
        )
        funnel = page.inner_text("#program-funnel")
        for step in (
            r"reasons to act found\s+40",
            r"blocked by the contact policy\s+7\s+cool-down 5 · recent contact 2",
            r"no action worth it\s+7",
            r"held out, to measure\s+3",
            r"acted on\s+30",
            r"delivered\s+20",
            r"opened\s+9",
            r"clicked\s+4",
        ):
            assert re.search(step, funnel), (step, funnel)

        # a program with no difference yet that could not be chance
        program["by_action"] = {"payment_help": counts(450, 90, 50, 15)}
        r.hset(model_key("m0"), "proactive", orjson.dumps(program))
        page.wait_for_function(
            "document.querySelector('#program-uplift').textContent.includes('not significant')",
            timeout=10_000,
        )
        assert page.inner_text("#program-uplift") == (
            "Customers we acted on churned 10 points less than the hold-out: not significant, "
            "it may be chance (95% interval -2.4 to 23.7 points; 450 acted on, 50 held out)."
        )
        page.wait_for_timeout(300)
        layout = page.evaluate("document.documentElement.scrollWidth")
        assert layout <= 1024, layout
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "program.png"))
        assert errors == []
