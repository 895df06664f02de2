"""The agent console's cards in a real browser: what an agent sees and does.

Each test starts `cxstream serve` alone and writes alerts to the alerts stream as the
flow would, then drives the page in Chromium (helpers in ``test_console.py``): a
reload brings back the last hour's cards and resumes, new cards do not move the one
being answered, one card a customer, ages in event time, plain words on the card,
buttons that fit at 1024 px, and the keys A, D and N.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from tests.conftest import T0, wait_until
from tests.server.test_console import (
    agent_url,
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


@contextlib.contextmanager
def live_console(
    redis_url: str, folder: Path, *, height: int, width: int = 1024
) -> Iterator[tuple[int, Page, list[str]]]:
    """`cxstream serve` alone, and the agent's console open on it, signed in and live:
    yields the server's port, the page and the page errors seen."""
    need_chromium()
    with (
        serving(redis_url, folder) as port,
        console_page(agent_url(port), height=height, width=width) as (page, errors),
    ):
        page.wait_for_selector("#status.live", timeout=15_000)
        yield port, page, errors


def card(alert_id: str) -> str:
    return f"article.alert[data-alert-id={alert_id}]"


def top_of(page: Page, selector: str) -> float:
    """Where the element is on the screen (viewport pixels)."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    return box["y"]


def shown_customers(page: Page) -> list[str]:
    return [
        page.locator("article.alert").nth(i).get_attribute("data-customer") or ""
        for i in range(page.locator("article.alert").count())
    ]


def test_a_reload_brings_back_the_last_hours_cards_and_resumes(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """An agent reloads mid-call: the cards of the last hour of event time come back
    (answered ones as answered), an older one does not, a card that came back can still
    be answered, and an alert written while the page was away arrives on return."""
    with live_console(redis_url, tmp_path, height=900) as (port, page, errors):
        now = int(time.time() * 1000)
        push(r, contact_alert("al_old", "cust-old", now - 2 * HOUR))
        push(r, contact_alert("al_a", "cust-a", now - 60_000))
        push(r, contact_alert("al_b", "cust-b", now))
        page.wait_for_selector(card("al_b"), timeout=10_000)
        page.click(f"{card('al_a')} button[data-response=declined]")
        page.wait_for_selector(f"{card('al_a')} .answered", timeout=5_000)

        page.reload()
        page.wait_for_selector("#status.live", timeout=15_000)
        page.wait_for_selector(card("al_b"), timeout=10_000)  # cards come back in stream order
        assert shown_customers(page) == ["cust-a", "cust-b"]  # cust-old: over an hour older
        assert "Answered: Declined" in page.inner_text(card("al_a"))
        assert page.locator(f"{card('al_b')} button[data-response=accepted]").is_visible()
        page.click(f"{card('al_b')} button[data-response=accepted]")  # delivered again: answerable
        page.wait_for_selector(f"{card('al_b')} .answered", timeout=5_000)
        wait_until(lambda: answers_of(r, "cust-b") == ["accepted"], "cust-b's answer in redis")
        assert answers_of(r, "cust-a") == ["declined"]

        page.goto("about:blank")
        push(r, contact_alert("al_c", "cust-c", now + 60_000))  # while the page is away
        page.goto(f"http://127.0.0.1:{port}/")  # the token is kept for the tab
        page.wait_for_selector(card("al_c"), timeout=10_000)
        assert shown_customers(page) == ["cust-a", "cust-b", "cust-c"]
        assert errors == []


def test_new_cards_go_below_and_a_customer_has_one_card(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """The card being answered stays where it is when others arrive; a newer alert for
    the same customer updates that customer's card in place; an older one is not shown."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        push(r, contact_alert("al_a1", "cust-a", now - 120_000))
        page.wait_for_selector(card("al_a1"), timeout=10_000)
        page.click(f"{card('al_a1')} .nba-title")  # the agent works on this card
        y = top_of(page, card("al_a1"))

        push(r, contact_alert("al_b1", "cust-b", now - 60_000))
        page.wait_for_selector(card("al_b1"), timeout=10_000)
        assert top_of(page, card("al_a1")) == y
        assert top_of(page, card("al_b1")) > y

        push(r, contact_alert("al_a2", "cust-a", now, risk={"churn_probability": 0.91}))
        page.wait_for_selector(card("al_a2"), timeout=10_000)
        assert page.locator(card("al_a1")).count() == 0
        assert page.locator("article.alert[data-customer=cust-a]").count() == 1
        assert "91%" in page.inner_text(card("al_a2"))
        assert top_of(page, card("al_a2")) == y

        push(r, contact_alert("al_b0", "cust-b", now - 90_000))  # older than cust-b's card
        push(r, contact_alert("al_c1", "cust-c", now))
        page.wait_for_selector(card("al_c1"), timeout=10_000)  # al_b0 came before it
        assert shown_customers(page) == ["cust-a", "cust-b", "cust-c"]
        assert page.locator(card("al_b1")).count() == 1
        assert page.locator(card("al_b0")).count() == 0
        assert errors == []


def test_ages_are_in_event_time_and_move_on(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """Events of another time (a replay, the demo's fast clock): a card's age is the
    newest event time seen minus its own, and it changes as newer alerts come in."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        push(r, contact_alert("al_a", "cust-a", T0 - 2 * HOUR))
        push(r, contact_alert("al_b", "cust-b", T0))
        page.wait_for_selector(card("al_b"), timeout=10_000)
        age = f"{card('al_a')} .age"
        page.wait_for_function(
            f"document.querySelector('{age}').textContent === '2 h ago'", timeout=10_000
        )
        assert "31 Dec 2025, 22:00" in (page.get_attribute(age, "title") or "")  # on hover

        push(r, contact_alert("al_c", "cust-c", T0 + 3 * HOUR))
        page.wait_for_selector(card("al_c"), timeout=10_000)
        page.wait_for_function(
            f"document.querySelector('{age}').textContent === '5 h ago'", timeout=10_000
        )
        assert page.inner_text(f"{card('al_b')} .age") == "3 h ago"
        assert errors == []


def test_the_card_speaks_plain_words(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """Why in a sentence, action titles, money, sentiment in words, a low risk's reasons
    as mere signals; the engineer's arithmetic only inside a collapsed 'details'."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        alert = contact_alert(
            "al_low",
            "cust-low",
            now,
            risk={
                "churn_probability": 0.13,
                "band": "low",
                "reasons": ["sentiment negative (-0.87)"],
            },
            journey={"sentiment": -0.87, "value": 741.83},
        )
        push(r, alert)
        page.wait_for_selector(card("al_low"), timeout=10_000)
        text = page.inner_text(card("al_low"))
        assert "Why: The customer has an open complaint" in text
        assert "Apologise and apply a goodwill credit" in text
        assert "Thank the customer and ask how we can help" in text
        for engineer in ("thank_and_listen", "service_recovery_credit", "P(accept)", "segment"):
            assert engineer not in text
        assert "Low churn risk" in text
        assert "Why at risk" not in text
        assert page.locator(f"{card('al_low')} .reasons").count() == 0
        assert "sentiment negative" in page.inner_text(f"{card('al_low')} .signals")
        sentiment = page.locator(f"{card('al_low')} dd", has_text="very negative")
        assert "-0.87" in (sentiment.get_attribute("title") or "")
        # money in CX_CURRENCY (EUR unless set), told by the server in the welcome
        assert "purchase value\t€741.83" in text or "purchase value\n€741.83" in text

        page.click(f"{card('al_low')} details summary")
        assert "P(accept) 0.61" in page.inner_text(card("al_low"))
        assert errors == []


# Each answer button: the lines its label takes, its top and right edge; the card's right
# edge; the page's width (wider than the window: a horizontal scroll bar).
LAYOUT_JS = """(sel) => {
    const c = document.querySelector(sel);
    const buttons = [...c.querySelectorAll('.buttons button')].map((b) => {
        const label = document.createRange();
        label.selectNodeContents(b.firstChild);
        const tops = new Set([...label.getClientRects()].map((x) => Math.round(x.top)));
        const r = b.getBoundingClientRect();
        return { lines: tops.size, top: Math.round(r.top), right: r.right };
    });
    const cardRight = c.getBoundingClientRect().right;
    return { buttons, cardRight, pageWidth: document.documentElement.scrollWidth };
}"""


def test_buttons_fit_on_one_line_at_1024_px(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    with live_console(redis_url, tmp_path, height=768, width=1024) as (_port, page, errors):
        push(r, contact_alert("al_w", "cust-wide", int(time.time() * 1000)))
        page.wait_for_selector(card("al_w"), timeout=10_000)
        layout = page.evaluate(LAYOUT_JS, card("al_w"))
        assert len(layout["buttons"]) == 3
        assert [b["lines"] for b in layout["buttons"]] == [1, 1, 1], layout
        assert len({b["top"] for b in layout["buttons"]}) == 1, layout  # one row
        assert all(b["right"] <= layout["cardRight"] for b in layout["buttons"]), layout
        assert layout["pageWidth"] <= 1024, layout
        assert errors == []


def test_keys_answer_the_card_in_focus_or_else_the_newest(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """A, D and N are shown on the buttons; a key answers the card in focus, and with no
    card in focus the newest unanswered one; the answers reach the event stream."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        push(r, contact_alert("al_x", "cust-x", now - 60_000))
        push(r, contact_alert("al_y", "cust-y", now))
        page.wait_for_selector(card("al_y"), timeout=10_000)
        for response, key in (("accepted", "A"), ("declined", "D"), ("not_relevant", "N")):
            button = page.locator(f"{card('al_y')} button[data-response={response}]")
            assert button.locator("kbd").inner_text() == key
            assert button.get_attribute("aria-keyshortcuts") == key
        assert "target" in (page.get_attribute(card("al_y"), "class") or "")

        page.keyboard.press("n")  # no card in focus: the newest unanswered
        page.wait_for_selector(f"{card('al_y')} .answered", timeout=5_000)
        assert "Answered: Not relevant" in page.inner_text(card("al_y"))
        assert page.locator(f"{card('al_x')} .answered").count() == 0

        push(r, contact_alert("al_z", "cust-z", now + 1_000))
        page.wait_for_selector(card("al_z"), timeout=10_000)
        page.click(f"{card('al_x')} .nba-title")  # the agent turns to the older card
        page.keyboard.press("d")
        page.wait_for_selector(f"{card('al_x')} .answered", timeout=5_000)
        assert "Answered: Declined" in page.inner_text(card("al_x"))
        assert page.locator(f"{card('al_z')} .answered").count() == 0
        wait_until(lambda: answers_of(r, "cust-y") == ["not_relevant"], "cust-y's answer")
        wait_until(lambda: answers_of(r, "cust-x") == ["declined"], "cust-x's answer")
        assert answers_of(r, "cust-z") == []
        assert errors == []


def test_a_key_never_answers_a_card_out_of_sight(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """With no card in focus and the newest one below the fold, the first key brings that
    card into view and answers nothing; the next one answers it."""
    with live_console(redis_url, tmp_path, height=700) as (_port, page, errors):
        now = int(time.time() * 1000)
        for i in range(6):
            push(r, contact_alert(f"al_{i}", f"cust-{i}", now + i * 1_000))
        page.wait_for_selector(card("al_5"), timeout=10_000)
        page.evaluate("window.scrollTo(0, 0)")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        assert top_of(page, card("al_5")) > 700  # below the fold

        page.keyboard.press("a")
        page.wait_for_timeout(300)  # an answer, were one sent, shows at once
        assert page.locator(f"{card('al_5')} .answered").count() == 0
        assert 0 <= top_of(page, card("al_5")) < 700  # now in sight
        assert answers_of(r, "cust-5") == []

        page.keyboard.press("a")
        page.wait_for_selector(f"{card('al_5')} .answered", timeout=5_000)
        wait_until(lambda: answers_of(r, "cust-5") == ["accepted"], "cust-5's answer")
        assert errors == []
