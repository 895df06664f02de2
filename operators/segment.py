"""Segment calls as cxstream events: a pure mapping, plain values in and out.

Channel systems that already speak Segment's spec (its ``track``, ``identify``,
``page`` and ``screen`` calls, e.g. a Segment webhook destination) send them to
``POST /v1/segment``; each call becomes the event object of the contract, which
is then validated like any other (:func:`operators.events.event_from_obj`).

====================================  =============================================
Segment                               cxstream event
====================================  =============================================
``messageId``                         ``event_id`` (the idempotency key: a retried
                                      call is deduplicated by the flow)
``userId`` (a string, or an integer)  ``customer_id``
``anonymousId``                       ``anonymous_id``
``timestamp``, else                   ``ts`` (RFC 3339)
``originalTimestamp``, ``receivedAt``,
``sentAt``
``context.channel``                   ``channel``: a cxstream channel as it is,
                                      ``browser`` -> web, ``mobile`` -> app, absent or
                                      ``server`` -> ``default_channel`` (``web``; a
                                      ``screen`` call: app); anything else is
                                      rejected as an unknown channel
``type: track`` + ``event``           ``type``: the event name in snake case
                                      (``Order Completed`` -> ``order_completed``), a
                                      few names of Segment's e-commerce spec to the
                                      contract's (:data:`TRACK_ALIASES`)
``type: identify``                    ``type: identify`` (links ``anonymousId`` to
                                      ``userId``); ``traits`` are not kept
``type: page`` / ``screen``           ``type: page_view``
``properties``                        ``attrs`` (a copy); ``amount`` from
                                      ``revenue``, ``total`` or ``value`` when absent
====================================  =============================================

Other calls (``group``, ``alias``) are rejected with the reason.

>>> call = {"type": "track", "event": "Order Completed", "messageId": "m-1",
...         "userId": "c1", "timestamp": "2026-01-05T10:00:00.000Z",
...         "context": {"channel": "browser"}, "properties": {"revenue": 42.5}}
>>> e = from_segment(call)
>>> e["event_id"], e["customer_id"], e["ts"], e["channel"], e["type"], e["attrs"]
('m-1', 'c1', '2026-01-05T10:00:00.000Z', 'web', 'purchase', {'revenue': 42.5, 'amount': 42.5})
>>> from_segment({"type": "identify", "messageId": "m-2", "userId": "c1",
...               "anonymousId": "ck-9", "timestamp": "2026-01-05T10:00:00Z",
...               "traits": {"email": "c1@example.com"}})["type"]
'identify'
>>> from_segment({"type": "alias", "messageId": "m-3"})
Traceback (most recent call last):
...
operators.errors.InvalidEvent: segment type unsupported: 'alias'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from operators.errors import InvalidEvent
from operators.values import NUMBER, json_type

CALLS = ("track", "identify", "page", "screen")
# Segment's context.channel values that name a cxstream channel under another name
CHANNEL_ALIASES: Mapping[str, str] = {"browser": "web", "mobile": "app"}
# Event names of Segment's e-commerce spec (snake-cased) that are a contract type
TRACK_ALIASES: Mapping[str, str] = {
    "order_completed": "purchase",
    "products_searched": "search",
    "product_searched": "search",
    "cart_abandoned": "cart_abandon",
    "subscription_cancelled": "cancel",
    "subscription_canceled": "cancel",
}
TIME_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
AMOUNT_FIELDS = ("revenue", "total", "value")  # what Segment's spec calls an amount
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def event_type(name: str) -> str:
    """A ``track`` call's event name as a contract type: snake case, aliases applied.

    >>> event_type("Order Completed"), event_type("Contact Start"), event_type("page-view")
    ('purchase', 'contact_start', 'page_view')
    """
    snake = _NOT_WORD.sub("_", name.lower()).strip("_")
    return TRACK_ALIASES.get(snake, snake)


def from_segment(call: object, *, default_channel: str = "web") -> dict[str, Any]:
    """The cxstream event object of one Segment call (not validated yet: give it to
    :func:`operators.events.event_from_obj`); :class:`InvalidEvent` for what cannot
    be mapped.  ``call`` is not changed."""
    if not isinstance(call, dict):
        raise InvalidEvent("not an object", f"got {json_type(call)}")
    kind = call.get("type")
    if kind not in CALLS:
        raise InvalidEvent("segment type unsupported", repr(kind)[:40])
    message_id = call.get("messageId")
    if message_id is None:
        raise InvalidEvent("messageId missing", "a segment call needs messageId")
    context = call.get("context")
    channel = context.get("channel") if isinstance(context, dict) else None
    if channel is None or channel == "server":
        channel = "app" if kind == "screen" else default_channel
    out: dict[str, Any] = {
        "event_id": message_id,
        "ts": next((call[f] for f in TIME_FIELDS if call.get(f) is not None), None),
        "channel": CHANNEL_ALIASES.get(channel, channel) if isinstance(channel, str) else channel,
        "type": _type(kind, call.get("event")),
        "attrs": {} if kind == "identify" else _attrs(call.get("properties")),
    }
    if out["ts"] is None:
        raise InvalidEvent("timestamp missing", "a segment call needs timestamp")
    for name, field in (("userId", "customer_id"), ("anonymousId", "anonymous_id")):
        value = call.get(name)
        if type(value) is int:  # some sources send numeric user ids
            value = str(value)
        if value is not None:
            out[field] = value
    return out


def _type(kind: str, event: object) -> str:
    if kind == "identify":
        return "identify"
    if kind in ("page", "screen"):
        return "page_view"
    if not isinstance(event, str) or not event.strip():
        raise InvalidEvent("event missing", "a track call needs event: its name")
    return event_type(event)


def _attrs(properties: object) -> dict[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise InvalidEvent("properties not an object", f"got {json_type(properties)}")
    attrs = dict(properties)
    if "amount" not in attrs:
        for name in AMOUNT_FIELDS:
            value = attrs.get(name)
            if isinstance(value, NUMBER) and not isinstance(value, bool):
                attrs["amount"] = value
                break
    return attrs
