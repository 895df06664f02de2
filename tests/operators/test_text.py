from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.errors import ConfigError
from operators.events import Event
from operators.text import MAX_TEXT_CHARS, TextEnricher, parse_topics, topic_of
from state.lexicon import default_topics
from tests.conftest import ev


def enricher(score: float = -0.4) -> TextEnricher:
    return TextEnricher(lambda _text: score, default_topics())


def test_text_without_sentiment_or_topic_gets_both() -> None:
    e = enricher()(ev(1, "complaint", channel="chat", text="I was charged twice on my bill"))
    assert e.attrs["sentiment"] == -0.4
    assert e.attrs["sentiment_source"] == "text"
    assert e.attrs["topic"] == "billing"


def test_what_the_channel_sent_is_kept() -> None:
    mine = ev(1, "review", channel="social", text="no signal", sentiment=0.2, topic="coverage")
    assert enricher()(mine) is mine
    scored_elsewhere = enricher()(ev(2, "review", text="no signal all week", sentiment=0.1))
    assert scored_elsewhere.attrs["sentiment"] == 0.1
    assert scored_elsewhere.attrs["topic"] == "outage"


def test_events_without_text_pass_untouched() -> None:
    for e in (ev(1, "page_view"), ev(2, "complaint", text="   "), ev(3, "survey", text=7)):
        assert enricher()(e) is e


def test_keywords_match_whole_words_in_file_order() -> None:
    topics = default_topics()
    assert topic_of("The billboard outside is nice", topics) is None
    assert topic_of("BILL wrong", topics) == "billing"
    assert topic_of("internet down again and the bill is wrong", topics) == "outage"  # first


def test_scores_are_clamped_and_long_text_is_cut() -> None:
    seen: list[int] = []

    def polarity(text: str) -> float:
        seen.append(len(text))
        return 3.0

    e = TextEnricher(polarity, default_topics())(ev(1, "email", text="x " * MAX_TEXT_CHARS))
    assert e.attrs["sentiment"] == 1.0
    assert seen == [MAX_TEXT_CHARS]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topics = 3", "no \\[topics\\] table"),
        ("[topics]\nbilling = []", "billing must be a list of keywords"),
        ("[topics]\nbilling = [1]", "billing must be a list of keywords"),
        ("[topics", "not TOML"),
    ],
)
def test_a_bad_topic_file_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_topics(text, "t.toml")


@given(st.text(max_size=200), st.floats(allow_nan=False))
def test_any_text_gives_an_event_with_a_sentiment_in_range(text: str, score: float) -> None:
    e = TextEnricher(lambda _t: score, default_topics())(
        Event("e", "c", None, 0, "chat", "complaint", {"text": text})
    )
    if text.strip():
        assert -1.0 <= float(e.attrs["sentiment"]) <= 1.0
    else:
        assert "sentiment" not in e.attrs
