"""The README as a newcomer follows it: every file it names ships with the project."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "data" / "README.md"]


def test_every_relative_link_of_the_docs_exists() -> None:
    missing = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert missing == []


def test_every_data_file_a_command_names_ships() -> None:
    named = set()
    for doc in DOCS:
        named |= set(re.findall(r"\bdata/[\w.-]+\.(?:csv|jsonl)(?:\.gz)?", doc.read_text()))
    assert "data/bpic2012_stream.csv.gz" in named
    assert sorted(n for n in named if not (ROOT / n).exists()) == []


def test_no_doc_points_outside_the_project() -> None:
    for doc in DOCS:
        assert "../shared" not in doc.read_text(), doc
