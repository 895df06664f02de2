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
