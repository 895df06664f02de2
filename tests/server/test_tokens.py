from __future__ import annotations

import jwt
import pytest

from cxstream.settings import Secret
from operators.errors import AuthError
from server.tokens import Claims, mint, verify

KEY = Secret("k" * 32)


def token(**kw: object) -> str:
    args: dict[str, object] = {
        "agent_id": "a1",
        "queues": ("care", "care", "billing"),
        "role": "agent",
        "now": 100.0,
        "ttl_s": 60.0,
    }
    args.update(kw)
    return mint(KEY, **args)  # type: ignore[arg-type]


def test_round_trip_dedupes_queues() -> None:
    assert verify(KEY, token(), now=120) == Claims("a1", ("care", "billing"), "agent", 160)


@pytest.mark.parametrize(
    ("tok", "message"),
    [
        (None, "token missing"),
        ("", "token missing"),
        ("abc.def", "token invalid: malformed"),
        (token()[:-20], "token invalid: malformed"),  # a link cut short
        (token()[:30], "token invalid: malformed"),
        ("\u00b7" + token()[1:], "token invalid: malformed"),  # not ascii: no decoder's words
        ("a.b.c", "token invalid: malformed"),
        (token(now=0.0, ttl_s=10), "token expired"),
    ],
)
def test_bad_tokens_say_why(tok: object, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        verify(KEY, tok, now=120)


def test_other_key_and_tampering_are_refused() -> None:
    with pytest.raises(AuthError, match="signature"):
        verify(Secret("z" * 32), token(), now=120)
    forged = jwt.encode(
        {"iss": "cxstream", "sub": "a1", "queues": ["vip"], "role": "supervisor", "exp": 999},
        "wrong-key-" + "w" * 30,
        algorithm="HS256",
    )
    with pytest.raises(AuthError):
        verify(KEY, forged, now=120)
    unsigned = jwt.encode({"sub": "a1", "exp": 999}, None, algorithm="none")
    with pytest.raises(AuthError):
        verify(KEY, unsigned, now=120)


def test_minting_refuses_bad_roles_and_lifetimes() -> None:
    with pytest.raises(AuthError, match="role"):
        token(role="admin")
    with pytest.raises(AuthError, match="lifetime"):
        token(ttl_s=0)
    with pytest.raises(AuthError, match="agent id"):
        token(agent_id="")
