"""Free text in events: a sentiment score and a topic, in-stream.

Chats, emails, reviews and survey comments may carry ``attrs.text``.  When an
event has text and no ``sentiment``, :class:`TextEnricher` adds one from the
``polarity`` function it is given (the flow passes VADER's compound score, an
English lexicon: see :mod:`state.lexicon`), marked ``sentiment_source: text``;
a channel that scores its own text (another language, a better model) sends
``sentiment`` and is left alone.  When it has no ``topic``, the first topic of
the keyword map whose keyword occurs in the text (whole words, any case) is
added.  Pure: the polarity function and the map are passed in.

>>> topics = parse_topics('[topics]\\nbilling = ["bill", "charged"]\\noutage = ["no signal"]', "t")
>>> enrich = TextEnricher(lambda text: -0.5, topics)
>>> from operators.events import Event
>>> e = enrich(Event("e1", "c1", None, 0, "chat", "complaint", {"text": "No signal since Monday"}))
>>> e.attrs["sentiment"], e.attrs["sentiment_source"], e.attrs["topic"]
(-0.5, 'text', 'outage')
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace

from operators.errors import ConfigError
from operators.events import Event

MAX_TEXT_CHARS = 5000  # longer text is scored on its first 5,000 characters

Topics = tuple[tuple[str, re.Pattern[str]], ...]


def parse_topics(text: str, source: str) -> Topics:
    """A ``[topics]`` table of name -> keywords, as (name, pattern) in file order."""
    try:
        table = tomllib.loads(text).get("topics")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"topics in {source}: not TOML: {exc}") from exc
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"topics in {source}: no [topics] table of name = [keywords]")
    out = []
    for name, words in table.items():
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w.strip() for w in words)
        ):
            raise ConfigError(f"topics in {source}: {name} must be a list of keywords")
        alternatives = "|".join(re.escape(w.strip().lower()) for w in words)
        out.append((name, re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)))
    return tuple(out)


def topic_of(text: str, topics: Topics) -> str | None:
    """The first topic with a keyword in ``text``."""
    for name, pattern in topics:
        if pattern.search(text):
            return name
    return None


class TextEnricher:
    """Adds ``sentiment`` and ``topic`` to events whose text says them and whose
    channel did not."""

    def __init__(self, polarity: Callable[[str], float], topics: Topics) -> None:
        self.polarity = polarity
        self.topics = topics
        self.scored = 0

    def __call__(self, event: Event) -> Event:
        attrs: Mapping[str, object] = event.attrs
        text = attrs.get("text")
        if not isinstance(text, str) or not text.strip():
            return event
        text = text[:MAX_TEXT_CHARS]
        added: dict[str, object] = {}
        if "sentiment" not in attrs:
            added["sentiment"] = round(max(-1.0, min(1.0, self.polarity(text))), 3)
            added["sentiment_source"] = "text"
            self.scored += 1
        if "topic" not in attrs:
            topic = topic_of(text, self.topics)
            if topic is not None:
                added["topic"] = topic
        return replace(event, attrs={**attrs, **added}) if added else event
