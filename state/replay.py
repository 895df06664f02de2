"""Reading recorded event logs from disk: the stream-CSV schema and JSON lines.

stream-csv (plain or .gz): ``ts, customer_id, channel, event_type, value,
case_id, label, label_ts``.  Each row becomes an event: ``event_id`` = the row
number, ``type`` = event_type, ``attrs`` = {value, case_id, source_channel};
channels outside the event contract are mapped (see ``CHANNEL_MAP``) and the
original kept as ``attrs.source_channel``.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson

from operators.errors import ConfigError, InvalidEvent
from operators.evaluate import Row
from operators.events import CHANNELS, Event, event_from_obj, parse_ts

COLUMNS = ("ts", "customer_id", "channel", "event_type", "value", "case_id", "label", "label_ts")
CHANNEL_MAP = {
    "application": "web",
    "offer": "email",
    "phone_call": "voice",
    "back_office": "crm",
    "support_ticket": "crm",
}


def _open(path: Path) -> IO[str]:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", newline="")
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def read_stream_csv(path: Path, rejected: list[tuple[int, str]] | None = None) -> Iterator[Row]:
    """Rows of a stream-CSV file; bad rows are skipped and listed in ``rejected``."""
    with _open(path) as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ConfigError(f"{path}: not a stream-csv file, missing columns {missing}")
        for number, rec in enumerate(reader, start=1):
            try:
                yield _row(number, rec)
            except (InvalidEvent, ValueError) as exc:
                if rejected is not None:
                    rejected.append((number, str(exc)))


def _row(number: int, rec: dict[str, str]) -> Row:
    source = rec["channel"]
    channel = source if source in CHANNELS else CHANNEL_MAP.get(source, "crm")
    attrs: dict[str, object] = {"case_id": rec["case_id"], "source_channel": source}
    if rec["value"]:
        try:
            attrs["value"] = float(rec["value"])
        except ValueError:
            attrs["value_text"] = rec["value"]
    if not rec["customer_id"]:
        raise InvalidEvent("customer_id missing")
    event = Event(
        event_id=str(number),
        customer_id=rec["customer_id"],
        anonymous_id=None,
        ts=parse_ts(rec["ts"]),
        channel=channel,
        type=rec["event_type"] or "unknown",
        attrs=attrs,
    )
    label = int(rec["label"]) if rec["label"] not in ("", None) else None
    if label not in (None, 0, 1):
        raise ValueError(f"label {rec['label']!r} is not 0 or 1")
    label_ts = parse_ts(rec["label_ts"]) if rec["label_ts"] else None
    return Row(event, label, label_ts)


def read_jsonl(path: Path, rejected: list[tuple[int, str]] | None = None) -> Iterator[Row]:
    """Rows of a JSON-lines file of contract events (no labels)."""
    with _open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield Row(event_from_obj(orjson.loads(line)))
            except (orjson.JSONDecodeError, InvalidEvent) as exc:
                if rejected is not None:
                    rejected.append((number, str(exc)))


def has_file_labels(path: Path) -> bool:
    """Whether a stream-CSV file's first rows carry labels with outcome times."""
    with _open(path) as f:
        reader = csv.DictReader(f)
        for i, rec in enumerate(reader):
            if rec.get("label") and rec.get("label_ts"):
                return True
            if i > 1000:
                return False
    return False
