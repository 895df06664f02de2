"""Reading profiles as the profile sink writes them, on a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis

from cxstream.settings import Settings
from state.erasure import erase
from state.keys import KeyNames
from state.profiles import read_profile
from state.redis import connect_async


def read(settings: Settings, names: KeyNames, customer_id: str) -> dict[str, Any] | None:
    async def main() -> dict[str, Any] | None:
        assert settings.redis_url is not None
        client = connect_async(settings.redis_url, cluster=False)
        try:
            return await read_profile(client, names, customer_id)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_a_profile_reads_back_as_written_and_absent_is_none(
    settings: Settings, r: redis.Redis
) -> None:
    names = KeyNames.of(settings)
    fields = {"customer_id": "c1", "risk": {"band": "low", "churn_probability": 0.1}, "n": 3}
    r.hset(names.profile("c1"), mapping={k: orjson.dumps(v) for k, v in fields.items()})
    assert read(settings, names, "c1") == fields
    assert read(settings, names, "c2") is None


def test_tagged_names_on_a_cluster_are_read_under_their_shard(
    settings: Settings, r: redis.Redis
) -> None:
    tagged = KeyNames(shards=4, tagged=True)
    r.hset(tagged.profile("c1"), "customer_id", orjson.dumps("c1"))
    assert read(settings, tagged, "c1") == {"customer_id": "c1"}
    assert read(settings, KeyNames(shards=4), "c1") is None


def test_an_erased_customer_has_no_profile_even_one_written_late(
    settings: Settings, r: redis.Redis
) -> None:
    names = KeyNames.of(settings)
    r.hset(names.profile("gone"), "customer_id", orjson.dumps("gone"))
    erase(r, "gone", shards=names)
    assert not r.exists(names.profile("gone"))
    r.hset(names.profile("gone"), "customer_id", orjson.dumps("gone"))  # a trailing write
    assert read(settings, names, "gone") is None
