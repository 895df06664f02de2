"""Loading the next-best-action catalog: CX_CATALOG, else the one shipped with cxstream."""

from __future__ import annotations

from pathlib import Path

from cxstream.errors import ConfigError
from operators.nba import Catalog, default_catalog, parse_catalog


def load_catalog(path: Path | None) -> Catalog:
    if path is None:
        return default_catalog()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"CX_CATALOG={path}: cannot read it: {exc.strerror}") from exc
    return parse_catalog(text, str(path))
