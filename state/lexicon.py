"""Loading what the text enrichment needs from disk: VADER's English lexicon and the
topic keyword map (CX_TOPICS, else the one shipped with cxstream)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from operators.text import TextEnricher, Topics, parse_topics
from state.catalog import read_setting_file


def default_topics() -> Topics:
    """The keyword map shipped with cxstream (``state/topics.toml``)."""
    text = resources.files("state").joinpath("topics.toml").read_text()
    return parse_topics(text, "the default topics")


def load_topics(path: Path | None) -> Topics:
    if path is None:
        return default_topics()
    return parse_topics(read_setting_file(path, "CX_TOPICS"), str(path))


def vader_polarity() -> Callable[[str], float]:
    """VADER's compound score (-1..1): a lexicon and rules for English social text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()  # reads the lexicon file once

    def polarity(text: str) -> float:
        return float(analyzer.polarity_scores(text)["compound"])

    return polarity


def text_enricher(topics_path: Path | None) -> TextEnricher:
    return TextEnricher(vader_polarity(), load_topics(topics_path))
