"""Loading the next-best-action catalog: CX_CATALOG, else the one shipped with cxstream."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from operators.errors import ConfigError
from operators.nba import Catalog, parse_catalog


def default_catalog() -> Catalog:
    """The catalog shipped with cxstream (``state/catalog.toml``)."""
    return parse_catalog(default_catalog_text(), "the default catalog")


def default_catalog_text() -> str:
    return resources.files("state").joinpath("catalog.toml").read_text()


def load_catalog(path: Path | None) -> Catalog:
    if path is None:
        return default_catalog()
    return parse_catalog(read_setting_file(path, "CX_CATALOG"), str(path))


def read_setting_file(path: Path, setting: str) -> str:
    """The text of a file a setting names, or a clear error naming the setting."""
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{setting}={path}: cannot read it: {exc.strerror}") from exc
