"""Signed tokens (JWT, HS256) carrying agent id, queues, role and expiry.

Time is passed in: ``verify`` checks expiry against ``now``, not a clock.

>>> from cxstream.settings import Secret
>>> key = Secret("k" * 32)
>>> t = mint(key, agent_id="a1", queues=("billing",), role="agent", now=1000.0, ttl_s=60)
>>> verify(key, t, now=1030.0)
Claims(agent_id='a1', queues=('billing',), role='agent', expires_at=1060)
>>> verify(key, t, now=2000.0)
Traceback (most recent call last):
...
operators.errors.AuthError: token expired 940 s ago
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from cxstream.settings import Secret
from operators.errors import AuthError

# agent, supervisor: /ws; ingest: events on /ingest; privacy: forget events on /ingest
ROLES = ("agent", "supervisor", "ingest", "privacy")
ALGORITHM = "HS256"
ISSUER = "cxstream"


@dataclass(frozen=True, slots=True)
class Claims:
    agent_id: str
    queues: tuple[str, ...]
    role: str
    expires_at: int


def mint(
    secret: Secret,
    *,
    agent_id: str,
    queues: Sequence[str],
    role: str,
    now: float,
    ttl_s: float,
) -> str:
    """A token for ``agent_id`` valid for ``ttl_s`` seconds from ``now``."""
    if role not in ROLES:
        raise AuthError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if not agent_id or len(agent_id) > 128:
        raise AuthError("agent id must be 1-128 characters")
    if ttl_s <= 0:
        raise AuthError(f"token lifetime {ttl_s} s: must be positive")
    payload = {
        "iss": ISSUER,
        "sub": agent_id,
        "queues": list(dict.fromkeys(queues)),
        "role": role,
        "iat": int(now),
        "exp": int(now + ttl_s),
    }
    return jwt.encode(payload, secret.reveal(), algorithm=ALGORITHM)


def verify(secret: Secret, token: object, *, now: float) -> Claims:
    """The claims of a valid token; :class:`AuthError` saying why otherwise."""
    if not isinstance(token, str) or not token:
        raise AuthError("token missing")
    try:
        payload = jwt.decode(
            token,
            secret.reveal(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "sub"]},
        )
    except jwt.InvalidSignatureError as exc:
        raise AuthError("token signature does not match") from exc
    except jwt.DecodeError as exc:  # (its own words are the decoder's: padding, utf-8, segments)
        raise AuthError("token invalid: malformed (cut short or mistyped? copy it whole)") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(f"token invalid: {str(exc).lower()}") from exc
    exp = payload.get("exp")
    if not isinstance(exp, int):
        raise AuthError("token expiry not an integer")
    if now >= exp:
        raise AuthError(f"token expired {int(now - exp)} s ago")
    sub, queues, role = payload.get("sub"), payload.get("queues", []), payload.get("role")
    if not isinstance(sub, str) or role not in ROLES:
        raise AuthError("token claims malformed")
    if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
        raise AuthError("token queues malformed")
    return Claims(sub, tuple(queues), role, exp)
