"""Loading what the text enrichment needs from disk: VADER's English lexicon and the
topic keyword map (CX_TOPICS, else the one shipped with cxstream)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cxstream.errors import ConfigError
from operators.text import TextEnricher, Topics, default_topics, parse_topics


def load_topics(path: Path | None) -> Topics:
    if path is None:
        return default_topics()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"CX_TOPICS={path}: cannot read it: {exc.strerror}") from exc
    return parse_topics(text, str(path))


def vader_polarity() -> Callable[[str], float]:
    """VADER's compound score (-1..1): a lexicon and rules for English social text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()  # reads the lexicon file once

    def polarity(text: str) -> float:
        return float(analyzer.polarity_scores(text)["compound"])

    return polarity


def text_enricher(topics_path: Path | None) -> TextEnricher:
    return TextEnricher(vader_polarity(), load_topics(topics_path))
