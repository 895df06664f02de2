"""Reading recorded event logs from disk: the stream-CSV schema and JSON lines.

stream-csv (plain or .gz): ``ts, customer_id, channel, event_type, value,
case_id, label, label_ts``.  Each row becomes an event: ``event_id`` = the row
number, ``type`` = event_type, ``attrs`` = {value, case_id, source_channel};
channels outside the event contract are mapped (see ``CHANNEL_MAP``) and the
original kept as ``attrs.source_channel``.  Only ``ts``, ``customer_id`` and
``event_type`` are required; the others, absent, read as empty.  Each row's event is
checked as a JSON event is (ids and type within their lengths, its size): a row that
fails is rejected, counted, and not sent.  Files as exports write them are read too: a
byte-order mark, another separator (``;``, tab, ``|``), column names in another case,
labels written as ``1.0`` or ``true``.  A quote left open (the rest of the file would be
one field) makes the file one that cannot be read.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from operators.errors import ConfigError, InvalidEvent
from operators.evaluate import Row
from operators.events import CHANNELS, parse_ts, sendable_event

SEPARATORS = (",", ";", "\t", "|")  # a header's most frequent one separates the columns
REQUIRED = ("ts", "customer_id", "event_type")  # the others may be absent: empty
LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}  # as exports write them
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
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8-sig", newline="")
    # (utf-8-sig: a byte-order mark, as spreadsheets write one, is not part of the text)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def starts_with(path: Path, text: str) -> bool:
    """Whether the file's text (past blank space; unpacked if .gz) starts with ``text``:
    False for a file that cannot be read, which reading it will then say."""
    try:
        with _reading(path), _open(path) as f:
            return f.read(4096).lstrip().startswith(text)
    except ConfigError:
        return False


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A file that cannot be read as text is refused in one line that says why."""
    try:
        yield
    except gzip.BadGzipFile as exc:
        raise ConfigError(f"{path}: not a gzip file (a plain file: name it without .gz)") from exc
    except (EOFError, zlib.error) as exc:
        raise ConfigError(f"{path}: the compressed data is cut short or corrupt ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not utf-8 text (byte 0x{exc.object[exc.start]:02x} near offset "
            f"{exc.start} of a block); is it a binary file?"
        ) from exc
    except csv.Error as exc:
        raise ConfigError(f"{path}: not a csv file ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_log(path: Path, fmt: str, rejected: list[tuple[int, str]] | None = None) -> Iterator[Row]:
    """Rows of a log, ``fmt`` ``stream-csv`` or ``jsonl``."""
    return read_jsonl(path, rejected) if fmt == "jsonl" else read_stream_csv(path, rejected)


def read_stream_csv(path: Path, rejected: list[tuple[int, str]] | None = None) -> Iterator[Row]:
    """Rows of a stream-CSV file; bad rows are skipped and listed in ``rejected``."""
    with _reading(path), _open(path) as f:
        reader = _csv_reader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise ConfigError(f"{path}: not a stream-csv file, missing columns {missing}")
        for number, rec in _records(path, reader):
            try:
                yield _row(number, rec)
            except (InvalidEvent, ValueError) as exc:
                if rejected is not None:
                    rejected.append((number, str(exc)))


def _records(path: Path, reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of ``reader``, numbered from 1; a row the CSV reader cannot read (a quote
    left open, which would make the rest of the file one field) refuses the file."""
    number = 0
    try:
        for number, rec in enumerate(reader, start=1):
            yield number, rec
    except csv.Error as exc:
        raise ConfigError(
            f"{path}: row {number + 1} and after cannot be read as CSV: {exc} (a quote left open?)"
        ) from exc


def _csv_reader(f: IO[str]) -> csv.DictReader[str]:
    """Rows as dicts by column name; names as exports may write them (` TS`, `Label`)
    are read as the schema's, a column the file lacks reads as empty, and the header
    tells the separator (a comma, or the semicolon, tab or bar some exports use)."""
    header = f.readline()
    separator = max(SEPARATORS, key=header.count)
    lines = itertools.chain([header], f)
    reader = csv.DictReader(lines, restval="", delimiter=separator, strict=True)
    if reader.fieldnames is not None:
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
    return reader


def _row(number: int, rec: dict[str, str]) -> Row:
    def text(name: str) -> str:  # (a column the file lacks reads as empty)
        return (rec.get(name) or "").strip()

    source = text("channel")
    channel = source if source in CHANNELS else CHANNEL_MAP.get(source, "crm")
    attrs: dict[str, object] = {"case_id": text("case_id"), "source_channel": source}
    value = text("value")
    if value:
        try:
            attrs["value"] = float(value)
        except ValueError:
            attrs["value_text"] = value
    customer = text("customer_id")
    if not customer:
        raise InvalidEvent("customer_id missing")
    ts = text("ts")
    if not ts:
        raise InvalidEvent("ts missing")
    type_ = text("event_type")
    if not type_:
        raise InvalidEvent("event_type missing")
    # the row as a JSON event, checked as one is
    event = sendable_event(
        {
            "event_id": str(number),
            "customer_id": customer,
            "ts": ts,
            "channel": channel,
            "type": type_,
            "attrs": attrs,
        }
    )
    label_text = text("label")
    label = LABELS.get(label_text.lower()) if label_text else None
    if label_text and label is None:
        raise ValueError(f"label {label_text!r} is not 0 or 1")
    label_ts_text = text("label_ts")
    label_ts = parse_ts(label_ts_text) if label_ts_text else None
    return Row(event, label, label_ts)


def read_jsonl(path: Path, rejected: list[tuple[int, str]] | None = None) -> Iterator[Row]:
    """Rows of a JSON-lines file of contract events (no labels)."""
    with _reading(path), _open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:  # (without its line end: an error's position is on this line)
                yield Row(sendable_event(orjson.loads(line.rstrip("\r\n"))))
            except (orjson.JSONDecodeError, InvalidEvent) as exc:
                if rejected is not None:
                    rejected.append((number, str(exc)))


def has_file_labels(path: Path) -> bool:
    """Whether a stream-CSV file's first rows carry labels with outcome times."""
    with _reading(path), _open(path) as f:
        for number, rec in _records(path, _csv_reader(f)):
            if rec.get("label") and rec.get("label_ts"):
                return True
            if number > 1001:
                return False
    return False


SORT_LIMIT = 5_000_000  # rows held (and sorted) in memory, about 2 KB each


def in_time_order(
    path: Path,
    fmt: str,
    rejected: list[tuple[int, str]],
    *,
    hold: bool,
    progress: Callable[[int], None] | None = None,
) -> tuple[Iterable[Row], bool]:
    """The rows of a log in event time, and whether the file was in order.

    The whole file is read first, so that a file that cannot be read is refused
    before any row is used (``rejected`` gets the bad rows; a ConfigError when every
    row is bad: a wrong format, or not an event log).  A file out of order is
    sorted in memory (stable: rows of one time keep their order; at most
    ``SORT_LIMIT`` rows).  In order, the rows are held (``hold``) or read again as a
    stream.  ``progress`` is called with the rows read so far, every 100,000.
    """
    kept: list[Row] = []
    in_order = True
    last_ts: int | None = None
    n = 0
    for n, row in enumerate(read_log(path, fmt, rejected), start=1):
        if last_ts is not None and row.event.ts < last_ts:
            in_order = False
        last_ts = row.event.ts if last_ts is None else max(last_ts, row.event.ts)
        if hold:
            kept.append(row)
            _check_size(path, len(kept))
        if progress is not None and n % 100_000 == 0:
            progress(n)
    if not n and rejected:  # (a wrong format, or not an event log: not a run on nothing)
        number, reason = rejected[0]
        raise ConfigError(
            f"{path}: not one valid event in {len(rejected):,} rows read as {fmt} "
            f"(row {number}: {reason})"
        )
    if in_order:
        return (kept if hold else read_log(path, fmt)), True
    if not hold:
        kept = list(itertools.islice(read_log(path, fmt), SORT_LIMIT + 1))
        _check_size(path, len(kept))
    kept.sort(key=lambda r: r.event.ts)
    return kept, False


def _check_size(path: Path, rows: int) -> None:
    if rows > SORT_LIMIT:
        raise ConfigError(
            f"{path}: more than {SORT_LIMIT:,} rows to hold in memory; "
            "split the file by time (or sort it by ts, for replay)"
        )
