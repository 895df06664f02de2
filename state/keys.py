"""Redis key names, in one place.

>>> events_stream(3), profile_key("c1"), model_key("m0")
('cx:events:3', 'cx:profile:c1', 'cx:model:m0')
"""

ALERTS = "cx:alerts"
DLQ = "cx:dlq"
EVENTS_PREFIX = "cx:events:"


def events_stream(shard: int) -> str:
    return f"{EVENTS_PREFIX}{shard}"


def profile_key(customer_id: str) -> str:
    return f"cx:profile:{customer_id}"


def model_key(shard: str) -> str:
    return f"cx:model:{shard}"
