"""Reading a customer's 360 profile, as the profile sink wrote it (:mod:`state.sinks`).

A profile is the hash ``cx:profile:<customer>`` (``cx:profile:{<shard>}:<customer>``
on a cluster), each field a JSON value.  An erased customer (its digest in
``cx:forgotten``) has no profile, whatever is left or written late under its key.

>>> decode_profile({b"customer_id": b'"c1"', b"risk": b'{"band": "low"}'})
{'customer_id': 'c1', 'risk': {'band': 'low'}}
>>> decode_profile({b"note": b"not json"})
{'note': 'not json'}
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from operators.erasure import forget_digest
from state.keys import FORGOTTEN, KeyNames


def decode_profile(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The profile hash as a JSON object, fields in name order; a value that is not
    JSON (not written by cxstream) is given as text."""
    out: dict[str, Any] = {}
    for name, value in sorted(fields.items()):
        try:
            out[name.decode()] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[name.decode()] = value.decode(errors="replace")
    return out


async def read_profile(
    client: aioredis.Redis, names: KeyNames, customer_id: str
) -> dict[str, Any] | None:
    """The profile of ``customer_id``, or None when there is none or the customer was
    erased.  Redis errors are raised (``redis.exceptions.RedisError``): the caller
    answers that the store is away."""
    digest = forget_digest(customer_id)  # bytes, as the erasure adds it
    if await client.sismember(FORGOTTEN, digest):  # type: ignore[arg-type]
        return None
    fields = await client.hgetall(names.profile(customer_id))
    if not fields:
        return None
    return decode_profile(cast("dict[bytes, bytes]", fields))
