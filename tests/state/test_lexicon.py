from __future__ import annotations

from pathlib import Path

import pytest

from operators.errors import ConfigError
from state.lexicon import load_topics, text_enricher, vader_polarity
from tests.conftest import ev


def test_vader_scores_english_complaints_below_praise() -> None:
    polarity = vader_polarity()
    angry = polarity("I am furious, the bill is wrong again and nobody helps!")
    happy = polarity("Thank you, great service, I am very happy")
    assert -1.0 <= angry < -0.3
    assert 0.3 < happy <= 1.0


def test_the_enricher_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text('[topics]\nroaming = ["roaming", "abroad"]\n')
    e = text_enricher(path)(ev(1, "complaint", channel="chat", text="Roaming abroad is a scam"))
    assert e.attrs["topic"] == "roaming"
    assert float(e.attrs["sentiment"]) < 0
    with pytest.raises(ConfigError, match=r"CX_TOPICS=.*cannot read it"):
        load_topics(tmp_path / "missing.toml")
