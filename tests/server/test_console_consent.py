"""The customer's consent, the engine's notes and an unscored customer on the console.

An alert carries ``consent`` (per purpose, as it applies on the alert's channel:
granted, when, where from; ``at`` null and source ``default``: no statement) and
``notes`` for the agent; ``risk`` is null when the customer objected to profiling.
Each test starts `cxstream serve` alone, writes alerts to the alerts stream as the flow
would and drives the page in Chromium (helpers in ``test_console.py``): consent chips
with a symbol and a word on the card and a call-back row, "Not scored" in place of the
risk figure, the note in sight, and older alerts (no consent, no notes) as before.
Saves artifacts/consent.png (1024 px wide), the picture in docs/consent.png.
"""

from __future__ import annotations

import calendar
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from operators.decide import OBJECTED_NOTE
from tests.server.test_console import (
    ARTIFACTS,
    agent_url,
    console_page,
    contact_alert,
    push,
    serving,
)
from tests.server.test_console_cards import LAYOUT_JS, card, live_console
from tests.server.test_console_proactive import proactive_alert, retention_console, row, rows_shown

pytestmark = pytest.mark.timeout(180)

NOTE = OBJECTED_NOTE  # what the model step writes
WITHDRAWN = calendar.timegm((2026, 1, 3, 9, 30, 0)) * 1000  # 3 Jan 2026, 09:30 UTC
GIVEN = calendar.timegm((2025, 11, 20, 14, 5, 0)) * 1000  # 20 Nov 2025, 14:05 UTC
NOT_SHOWN = ("NaN", "undefined", "null", "[object Object]")


def statement(granted: bool, at: int | None = None, source: str = "default") -> dict[str, Any]:
    return {"granted": granted, "at": at, "source": source}


def consent(
    marketing: dict[str, Any] | None = None,
    profiling: dict[str, Any] | None = None,
    contact: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """An alert's ``consent``; a purpose not given: the default (granted, no statement)."""
    return {
        "marketing": marketing or statement(True),
        "profiling": profiling or statement(True),
        "contact": contact or statement(True),
    }


def unscored(alert: dict[str, Any], *, when: int = GIVEN) -> dict[str, Any]:
    """``alert`` for a customer who objected to profiling, as operators/decide.py writes
    it: no risk, the note, profiling refused."""
    alert.update(
        risk=None,
        notes=[NOTE],
        consent=consent(profiling=statement(False, when, "web")),
    )
    return alert


def chip(where: str, purpose: str) -> str:
    return f"{where} .consent .chip[data-purpose={purpose}]"


def test_a_card_shows_the_customers_consent_at_a_glance(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Marketing withdrawn by email: a red "No marketing" chip whose tooltip says when and
    how; profiling (stated) and contact (the default) granted, the default told apart; the
    risk figure as before; the excluded offer's reason in the details; it all fits."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        alert = contact_alert(
            "al_mk",
            "cust-mk",
            now - 60_000,
            nba={
                "excluded": {
                    "retention_offer": "no marketing consent (withdrawn 2026-01-03 via email)"
                }
            },
        )
        alert.update(
            consent=consent(
                marketing=statement(False, WITHDRAWN, "email"),
                profiling=statement(True, GIVEN, "app"),
            ),
            notes=[],
        )
        push(r, alert)
        # for the picture: an unscored customer below it
        push(r, unscored(contact_alert("al_un", "cust-unscored", now)))
        page.wait_for_selector(card("al_un"), timeout=10_000)

        marketing = page.locator(chip(card("al_mk"), "marketing"))
        assert marketing.inner_text() == "✗ No marketing"
        assert "no" in (marketing.get_attribute("class") or "").split()
        assert marketing.get_attribute("data-granted") == "false"
        title = marketing.get_attribute("title") or ""
        assert title == "Marketing consent withdrawn 3 Jan 2026, 09:30 via email (event time)"

        profiling = page.locator(chip(card("al_mk"), "profiling"))
        assert profiling.inner_text() == "✓ Profiling"
        assert "yes" in (profiling.get_attribute("class") or "").split()
        assert "default" not in (profiling.get_attribute("class") or "").split()
        assert (profiling.get_attribute("title") or "") == (
            "Profiling consent given 20 Nov 2025, 14:05 via app (event time)"
        )
        contact = page.locator(chip(card("al_mk"), "contact"))
        assert contact.inner_text() == "✓ Contact"
        assert "default" in (contact.get_attribute("class") or "").split()
        assert (contact.get_attribute("title") or "") == (
            "Contact: default, granted (no statement from the customer)"
        )
        # a refusal stands out in colour too, not in colour alone
        colours = page.evaluate(
            """(sels) => sels.map((s) => getComputedStyle(document.querySelector(s)).color)""",
            [chip(card("al_mk"), "marketing"), chip(card("al_mk"), "contact")],
        )
        assert colours[0] != colours[1], colours

        text = page.inner_text(card("al_mk"))
        assert "72%" in text
        assert "High churn risk" in text
        assert page.locator(f"{card('al_mk')} .notes").count() == 0  # no notes: none shown
        page.click(f"{card('al_mk')} details summary")
        assert "no marketing consent (withdrawn 2026-01-03 via email)" in page.inner_text(
            f"{card('al_mk')} details"
        )
        page.click(f"{card('al_mk')} details summary")

        # at 1024 px: the chips stay inside the card's first column, the buttons on one row
        inside = page.evaluate(
            """(sel) => {
                const who = document.querySelector(sel + ' .who').getBoundingClientRect();
                return [...document.querySelectorAll(sel + ' .chip')]
                    .every((c) => c.getBoundingClientRect().right <= who.right + 0.5);
            }""",
            card("al_mk"),
        )
        assert inside
        layout = page.evaluate(LAYOUT_JS, card("al_mk"))
        assert [b["lines"] for b in layout["buttons"]] == [1, 1, 1], layout
        assert len({b["top"] for b in layout["buttons"]}) == 1, layout
        assert layout["pageWidth"] <= 1024, layout

        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(400)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "consent.png"))
        assert errors == []
    assert (ARTIFACTS / "consent.png").stat().st_size > 10_000


def test_an_unscored_customer_shows_not_scored_and_the_note(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """Risk null (profiling objected): "Not scored" where the figure goes, no percentage,
    band or reasons, a red "No profiling" chip, the note in sight; the card can be
    answered as any other; no page error."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        push(r, unscored(contact_alert("al_un", "cust-un", now), when=WITHDRAWN))
        page.wait_for_selector(card("al_un"), timeout=10_000)

        text = page.inner_text(card("al_un"))
        assert "Not scored" in page.inner_text(f"{card('al_un')} .risk")
        assert "Profiling objected" in page.inner_text(f"{card('al_un')} .who")
        assert "%" not in text, text
        assert "churn risk" not in text
        assert "Why at risk" not in text
        for word in NOT_SHOWN:
            assert word not in text, (word, text)
        assert page.locator(f"{card('al_un')} .reasons, {card('al_un')} .signals").count() == 0
        classes = (page.get_attribute(card("al_un"), "class") or "").split()
        assert not {"high", "medium", "low"} & set(classes), classes

        note = page.locator(f"{card('al_un')} .note")
        assert note.count() == 1
        assert note.is_visible()
        assert NOTE in note.inner_text()
        profiling = page.locator(chip(card("al_un"), "profiling"))
        assert profiling.inner_text() == "✗ No profiling"
        assert "withdrawn 3 Jan 2026, 09:30 via web" in (profiling.get_attribute("title") or "")
        assert page.locator(chip(card("al_un"), "marketing")).inner_text() == "✓ Marketing"

        page.click(f"{card('al_un')} button[data-response=accepted]")
        page.wait_for_selector(f"{card('al_un')} .answered", timeout=5_000)
        assert page.locator(f"{card('al_un')} .note").is_visible()  # still there once answered
        assert errors == []


def test_a_supervisor_sees_an_unscored_card_and_counts_it_apart(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """The supervisor's page: the unscored customer's card says so, and the risk figures
    count it as a contact, apart from the bands; no page error."""
    with (
        serving(redis_url, tmp_path) as port,
        console_page(agent_url(port, "sup-1", role="supervisor"), height=900) as (page, errors),
    ):
        page.wait_for_selector("#status.live", timeout=15_000)
        now = int(time.time() * 1000)
        push(r, contact_alert("al_s", "cust-s", now - 60_000))
        push(r, unscored(contact_alert("al_u", "cust-u", now)))
        page.wait_for_selector(card("al_u"), timeout=10_000)
        page.wait_for_function(
            "document.querySelector('#risk-bands').textContent.startsWith('2 contacts ·')",
            timeout=10_000,
        )
        assert "high 1" in page.inner_text("#risk-bands")
        assert "not scored 1" in page.inner_text("#risk-bands")
        assert "Not scored" in page.inner_text(card("al_u"))
        assert NOTE in page.inner_text(card("al_u"))
        assert "72%" in page.inner_text(card("al_s"))
        for word in NOT_SHOWN:
            assert word not in page.inner_text("body"), word
        assert errors == []


def test_an_older_alert_without_consent_or_notes_renders_as_before(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """An alert written before consent and notes (no such keys), and one with them null:
    no chips, no notes, the risk as before, no page error."""
    with live_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        old = contact_alert("al_old", "cust-old", now - 60_000)
        assert "consent" not in old
        assert "notes" not in old
        push(r, old)
        push(r, contact_alert("al_nul", "cust-nul", now, consent=None, notes=None))
        page.wait_for_selector(card("al_nul"), timeout=10_000)
        for alert_id in ("al_old", "al_nul"):
            text = page.inner_text(card(alert_id))
            assert "72%" in text
            assert "High churn risk" in text
            assert "1 open complaint" in text
            assert page.locator(f"{card(alert_id)} .consent").count() == 0
            assert page.locator(f"{card(alert_id)} .notes").count() == 0
            for word in NOT_SHOWN:
                assert word not in text, (word, text)
        page.click(f"{card('al_old')} button[data-response=declined]")
        page.wait_for_selector(f"{card('al_old')} .answered", timeout=5_000)
        assert errors == []


def test_a_call_back_row_shows_refusals_and_an_unscored_customer(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """A retention agent's call-back list: an unscored customer's row says "Not scored"
    instead of a risk and percentage, the refusals show on the closed row (what was
    granted only once open), the note and all three chips once open; the rows keep their
    order by value; no page error."""
    with retention_console(redis_url, tmp_path, height=900) as (_port, page, errors):
        now = int(time.time() * 1000)
        scored = proactive_alert("al_sc", "c-sc", now - 60_000, value=20.0)
        scored["consent"] = consent(contact=statement(True, GIVEN, "app"))
        push(r, scored)
        quiet = proactive_alert("al_un", "c-un", now, value=12.5)
        quiet.update(
            risk=None,
            notes=[NOTE],
            consent=consent(
                marketing=statement(False),  # the configured default: denied
                profiling=statement(False, WITHDRAWN, "email"),
                contact=statement(True, GIVEN, "app"),
            ),
        )
        push(r, quiet)
        push(r, proactive_alert("al_old", "c-old", now - 30_000, value=4.0))  # no consent
        page.wait_for_selector(row("al_old"), timeout=10_000)
        assert rows_shown(page) == ["c-sc", "c-un", "c-old"]

        summary = page.inner_text(f"{row('al_un')} summary")
        assert "Not scored · profiling objected" in summary
        assert not re.search(r"\d+%", summary), summary
        assert "Medium risk" not in summary
        for word in NOT_SHOWN:
            assert word not in summary, (word, summary)
        refused = page.locator(f"{row('al_un')} summary .chip")
        assert [refused.nth(i).inner_text() for i in range(refused.count())] == [
            "✗ No marketing",
            "✗ No profiling",
        ]
        assert "default, refused" in (refused.nth(0).get_attribute("title") or "")
        assert page.locator(f"{row('al_sc')} summary .chip").count() == 0  # nothing refused
        assert "Medium risk · 41%" in page.inner_text(f"{row('al_sc')} summary")
        assert not page.is_visible(f"{row('al_un')} .note")  # closed

        page.click(f"{row('al_un')} summary")
        assert page.is_visible(f"{row('al_un')} .note")
        assert NOTE in page.inner_text(f"{row('al_un')} .note")
        chips = page.locator(f"{row('al_un')} .cb-card .chip")
        assert [chips.nth(i).inner_text() for i in range(chips.count())] == [
            "✗ No marketing",
            "✗ No profiling",
            "✓ Contact",
        ]
        opened = page.inner_text(f"{row('al_un')} .cb-card")
        assert "Not scored" in opened
        assert "%" not in page.inner_text(f"{row('al_un')} .cb-card .who")
        assert "Why at risk" not in opened
        assert page.locator(f"{row('al_old')} .consent").count() == 0

        page.click(f"{row('al_un')} button[data-response=accepted]")
        page.wait_for_selector(f"{row('al_un')}.is-answered", timeout=5_000)
        assert rows_shown(page) == ["c-sc", "c-un", "c-old"]
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1024, width
        assert errors == []
