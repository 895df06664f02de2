from __future__ import annotations

import orjson
import redis

from operators.events import parse_event, shard_of
from state.ingest import send_lines
from tests.conftest import entries, ev


def test_send_lines_shards_valid_events_and_reports_bad_lines(r: redis.Redis) -> None:
    good = [ev(i, "page_view", customer=f"c{i}").to_json() for i in range(10)]
    lines = [orjson.dumps(g) for g in good]
    lines.insert(3, b"{not json")
    lines.insert(5, b"")
    lines.insert(7, orjson.dumps({"event_id": "x"}))
    result = send_lines(r, lines, 4, batch=3)
    assert result.sent == 10
    assert [n for n, _ in result.rejected] == [4, 8]
    assert "not json" in result.rejected[0][1]
    for g in good:
        stream = f"cx:events:{shard_of(g['customer_id'], 4)}"
        datas = [parse_event(f[b"data"]) for _, f in entries(r, stream)]
        assert any(d.event_id == g["event_id"] for d in datas)
    assert len(result.stream_ids) == 10


def test_a_line_too_large_as_the_engine_writes_it_is_rejected_not_sent(r: redis.Redis) -> None:
    # (1e9 is written 1000000000.0: under the limit as sent, over it as written)
    big = orjson.dumps(ev(1, "page_view").to_json()).replace(
        b'"attrs":{}', b'"attrs":{"v":[' + b",".join([b"1e9"] * 7000) + b"]}"
    )
    assert b'"v":[1e9' in big
    result = send_lines(r, [big, orjson.dumps(ev(2, "page_view").to_json())], 4)
    assert result.sent == 1
    [(line, reason)] = result.rejected
    assert line == 1
    assert reason.startswith("too large: ")
    assert "bytes as json, limit 65536" in reason
