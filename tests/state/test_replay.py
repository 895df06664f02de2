from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxstream.commands.replay import log_format
from operators.errors import ConfigError
from state.replay import has_file_labels, in_time_order, read_jsonl, read_stream_csv
from tests.conftest import ev

HEADER = "ts,customer_id,channel,event_type,value,case_id,label,label_ts\n"


def test_stream_csv_rows_become_contract_events(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    body = (
        HEADER
        + "2011-10-01 10:00:00+00:00,c1,phone_call,W_Call:START,2000,k1,1,"
        + "2011-10-05 10:00:00+00:00\n"
        + "2011-10-01 11:00:00+00:00,c2,web,page_view,,k2,,\n"
        + "not a time,c3,web,x,,k3,,\n"
        + "2011-10-01 12:00:00+00:00,c4,web,x,,k4,7,\n"
    )
    with gzip.open(path, "wt") as f:
        f.write(body)
    rejected: list[tuple[int, str]] = []
    rows = list(read_stream_csv(path, rejected))
    assert len(rows) == 2
    first = rows[0]
    assert (first.event.channel, first.event.type) == ("voice", "W_Call:START")
    assert first.event.attrs == {"case_id": "k1", "source_channel": "phone_call", "value": 2000.0}
    assert first.event.event_id == "1"
    assert (first.label, first.label_ts) == (1, 1317808800000)
    assert (rows[1].label, rows[1].label_ts) == (None, None)
    assert [n for n, _ in rejected] == [3, 4]
    assert has_file_labels(path)


def test_wrong_columns_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="missing columns"):
        list(read_stream_csv(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        list(read_stream_csv(tmp_path / "nope.csv"))


COLUMNS = HEADER.strip().split(",")
ROWS = [
    ["2011-10-01 10:00:00+00:00", "c1", "phone_call", "W_Call:START", "2000", "k1", "1",
     "2011-10-05 10:00:00+00:00"],
    ["2011-10-01 11:00:00+00:00", "c2", "web", "page_view", "", "k2", "0", ""],
    ["2011-10-01 12:00:00+00:00", "c;3", "web", "x|y", "1.5", "k3", "", ""],
]  # fmt: skip


def _written(path: Path, columns: list[str], rows: list[list[str]], **options: object) -> Path:
    import csv

    with path.open("w", newline="", encoding=str(options.pop("encoding", "utf-8"))) as f:
        writer = csv.writer(f, **options)  # type: ignore[arg-type]
        writer.writerow(columns)
        writer.writerows(rows)
    return path


@given(
    separator=st.sampled_from([",", ";", "\t", "|"]),
    bom=st.booleans(),
    upper=st.booleans(),
    order=st.permutations(range(len(COLUMNS))),
    floats=st.booleans(),
)
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_export_of_the_schema_reads_as_the_schema(
    tmp_path: Path, separator: str, bom: bool, upper: bool, order: list[int], floats: bool
) -> None:
    """A byte-order mark, another separator, names in capitals, columns in another order,
    labels written as floats: the same rows as the plain file."""
    plain = list(read_stream_csv(_written(tmp_path / "plain.csv", COLUMNS, ROWS)))
    columns = [COLUMNS[i].upper() if upper else COLUMNS[i] for i in order]
    rows = [[r[i] + (".0" if floats and COLUMNS[i] == "label" and r[i] else "") for i in order]
            for r in ROWS]  # fmt: skip
    encoding = "utf-8-sig" if bom else "utf-8"
    path = _written(tmp_path / "export", columns, rows, delimiter=separator, encoding=encoding)
    assert list(read_stream_csv(path)) == plain
    assert in_time_order(path, log_format(path, "auto"), [], hold=True)[0] == plain


def test_a_stream_csv_without_the_optional_columns_reads_them_as_empty(tmp_path: Path) -> None:
    keep = [COLUMNS.index(c) for c in ("event_type", "customer_id", "ts")]
    path = _written(
        tmp_path / "few.csv", [COLUMNS[i] for i in keep], [[r[i] for i in keep] for r in ROWS]
    )
    [first, *_] = read_stream_csv(path)
    assert first.event.attrs == {"case_id": "", "source_channel": ""}
    assert (first.event.channel, first.label, first.label_ts) == ("crm", None, None)
    path.write_text("ts,customer_id\n2011-10-01 10:00:00+00:00,c1\n")
    with pytest.raises(ConfigError, match=r"missing columns \['event_type'\]"):
        list(read_stream_csv(path))
    bad = _written(tmp_path / "bad.csv", COLUMNS, [[*ROWS[0][:6], "2", ""], ["", *ROWS[0][1:]]])
    rejected: list[tuple[int, str]] = []
    assert list(read_stream_csv(bad, rejected)) == []
    assert rejected == [(1, "label '2' is not 0 or 1"), (2, "ts missing")]


def test_auto_format_reads_the_name_then_the_text(tmp_path: Path) -> None:
    assert log_format(tmp_path / "a.ndjson", "auto") == "jsonl"
    assert log_format(tmp_path / "a.CSV.gz", "auto") == "stream-csv"
    (tmp_path / "events").write_bytes(b"\xef\xbb\xbf  " + orjson.dumps(ev(1, "x").to_json()))
    assert log_format(tmp_path / "events", "auto") == "jsonl"
    (tmp_path / "log").write_text(HEADER)
    assert log_format(tmp_path / "log", "auto") == "stream-csv"
    assert log_format(tmp_path / "missing", "auto") == "stream-csv"  # (reading it says why)
    assert log_format(tmp_path / "a.jsonl", "stream-csv") == "stream-csv"


def test_jsonl_rows(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(orjson.dumps(ev(1, "page_view").to_json()) + b"\n\n{bad\n")
    rejected: list[tuple[int, str]] = []
    rows = list(read_jsonl(path, rejected))
    assert [r.event.event_id for r in rows] == ["e1"]
    assert [n for n, _ in rejected] == [3]


@pytest.mark.parametrize("hold", [True, False])
def test_a_log_without_one_valid_event_is_an_error_before_any_row(
    tmp_path: Path, hold: bool
) -> None:
    """Every row rejected (a stream-CSV read as JSON lines, say) is a mistake to name,
    not a run on nothing; an empty log is not."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"x": 1}\n{bad\n')
    rejected: list[tuple[int, str]] = []
    with pytest.raises(ConfigError, match=r"not one valid event in 2 rows read as jsonl \(row 1:"):
        in_time_order(path, "jsonl", rejected, hold=hold)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    rows, in_order = in_time_order(empty, "jsonl", [], hold=hold)
    assert (list(rows), in_order) == ([], True)
    path.write_bytes(path.read_bytes() + orjson.dumps(ev(1, "page_view").to_json()) + b"\n")
    rows, _ = in_time_order(path, "jsonl", [], hold=hold)
    assert [r.event.event_id for r in rows] == ["e1"]


def test_stream_csv_rows_are_checked_as_json_events_are(tmp_path: Path) -> None:
    """A row whose event a channel system could not send as JSON (an id or a type too
    long, no type) is rejected with the same reason, not sent to be dead-lettered; its
    JSON twin gets the same answer."""
    path = tmp_path / "log.csv"
    long_id, long_type = "c" * 500, "t" * 300
    path.write_text(
        HEADER
        + f"2011-10-01 10:00:00+00:00,{long_id},web,page_view,,k1,,\n"
        + f"2011-10-01 10:01:00+00:00,c2,web,{long_type},,k2,,\n"
        + "2011-10-01 10:02:00+00:00,c3,web,,,k3,,\n"
        + "2011-10-01 10:03:00+00:00,c4,web,page_view,,k4,,\n"
    )
    rejected: list[tuple[int, str]] = []
    rows = list(read_stream_csv(path, rejected))
    assert [r.event.customer_id for r in rows] == ["c4"]
    reasons = dict(rejected)
    assert reasons[1].startswith("customer_id length: 500 chars")
    assert reasons[2].startswith("type not a short string")
    assert reasons[3] == "event_type missing"
    as_json = tmp_path / "log.jsonl"
    as_json.write_bytes(
        orjson.dumps({**ev(1, "page_view").to_json(), "customer_id": long_id}) + b"\n"
    )
    json_rejected: list[tuple[int, str]] = []
    assert list(read_jsonl(as_json, json_rejected)) == []
    assert json_rejected[0][1] == reasons[1]


def test_a_quote_left_open_refuses_the_file(tmp_path: Path) -> None:
    """The rest of the file would be read as one field: the rows after it lost unsaid."""
    path = tmp_path / "log.csv"
    path.write_text(
        HEADER
        + "2011-10-01 10:00:00+00:00,c1,web,page_view,,k1,,\n"
        + '2011-10-01 10:01:00+00:00,"c2,web,page_view,,k2,,\n'
        + "2011-10-01 10:02:00+00:00,c3,web,page_view,,k3,,\n"
    )
    opened = r"log\.csv: row 2 and after cannot be read as CSV: .* \(a quote left open\?\)"
    with pytest.raises(ConfigError, match=opened):
        list(read_stream_csv(path, []))
    with pytest.raises(ConfigError, match="cannot be read as CSV"):
        has_file_labels(path)


def test_a_json_error_names_the_position_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"event_id":"x"\n')
    rejected: list[tuple[int, str]] = []
    assert list(read_jsonl(path, rejected)) == []
    assert "line 1 column" in rejected[0][1], rejected
