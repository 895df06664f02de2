from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

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
