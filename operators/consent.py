"""Consent: what the engine may do with whom, from the customer's own statements.

A ``consent`` event states one thing: a ``purpose`` (``marketing``, ``profiling``,
``contact``), optionally for one ``channel``, ``granted`` or not.  A customer's
:class:`Consents` keeps the latest statement per purpose and channel (``*``: every
channel), with its event time and source; the latest in event time wins, whatever
order the events arrive in, and at the same instant a refusal wins over a grant.
What holds before any statement is the :class:`ConsentPolicy`'s default
(``CX_CONSENT_DEFAULT``).

What each purpose governs:

- ``marketing``: an action of the catalog with ``purpose = "marketing"`` (every
  ``kind = "sales"`` action) is offered only where it is granted, on the channel the
  action is taken on (the contact's, or the outbound channel).
- ``contact``: a proactive action goes out only on channels where it is granted.
- ``profiling``: refused, the customer is not scored and not learned from (see
  :mod:`operators.customer` and :mod:`operators.decide`).

>>> c = Consents()
>>> c.observe("marketing", None, False, 10, "email")
True
>>> c.observe("marketing", "sms", True, 20, "app")     # later, and for sms only
True
>>> policy = ConsentPolicy()
>>> policy.allows(c, "marketing", "sms"), policy.allows(c, "marketing", "voice")
(True, False)
>>> c.observe("marketing", None, True, 5, "web")       # older than what is known
False
>>> policy.allows(None, "profiling", "voice")          # no statement: the default
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from operators.errors import ConfigError

PURPOSES: Final[tuple[str, ...]] = ("marketing", "profiling", "contact")
ANY: Final = "*"  # a statement for every channel
# A statement: (granted, event time ms, source)
Statement = tuple[bool, int, str]


def _rank(s: Statement) -> tuple[int, bool, str]:
    """The order of statements: later first; at the same time a refusal; then the source
    (so that the result does not depend on the order events arrive in)."""
    return (s[1], not s[0], s[2])


class Consents:
    """A customer's latest consent statements: (purpose, channel or ``*``) -> statement.

    Picklable; bounded by the purposes times the channels a customer names.
    """

    __slots__ = ("latest",)

    def __init__(self, latest: Iterable[tuple[tuple[str, str], Statement]] = ()) -> None:
        self.latest: dict[tuple[str, str], Statement] = dict(latest)

    def __bool__(self) -> bool:
        return bool(self.latest)

    def observe(
        self, purpose: str, channel: str | None, granted: bool, ts: int, source: str
    ) -> bool:
        """A statement; True when it is now the latest for its purpose and channel
        (False: an older one, or the same again)."""
        key = (purpose, ANY if channel is None or purpose == "profiling" else channel)
        new: Statement = (granted, ts, source)
        known = self.latest.get(key)
        if known is not None and _rank(known) >= _rank(new):
            return False
        self.latest[key] = new
        return True

    def statement(self, purpose: str, channel: str | None) -> Statement | None:
        """The statement that governs ``purpose`` on ``channel``: the latest of the
        channel's own and the one for every channel; None if there is neither."""
        general = self.latest.get((purpose, ANY))
        if channel is None or channel == ANY or purpose == "profiling":
            return general
        own = self.latest.get((purpose, channel))
        if own is None or (general is not None and _rank(general) > _rank(own)):
            return general
        return own

    def copy(self) -> Consents:
        """A copy, to travel with a moment (the customer's own keeps changing)."""
        return Consents(self.latest.items())

    def snapshot(self) -> tuple[tuple[tuple[str, str], Statement], ...]:
        return tuple(sorted(self.latest.items()))

    def as_dict(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The statements as JSON: purpose -> channel (``*``: all) -> granted, at, source."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (purpose, channel), (granted, ts, source) in sorted(self.latest.items()):
            out.setdefault(purpose, {})[channel] = {"granted": granted, "at": ts, "source": source}
        return out


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    """What holds before a customer says anything: purpose -> granted (``CX_CONSENT_DEFAULT``).

    Most customers say nothing: for them (``consents`` None) every answer is worked out
    once, here, not at each contact.
    """

    default: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(PURPOSES, True))
    all_granted: bool = field(init=False, default=True)  # no purpose denied by default
    _objected: bool = field(init=False, default=False)  # profiling denied by default
    _view: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "all_granted", all(self.default.get(p, True) for p in PURPOSES))
        set_(self, "_objected", not self.default.get("profiling", True))
        view = {
            p: {"granted": self.default.get(p, True), "at": None, "source": "default"}
            for p in PURPOSES
        }
        set_(self, "_view", view)

    def allows(self, consents: Consents | None, purpose: str, channel: str | None) -> bool:
        found = consents.statement(purpose, channel) if consents else None
        return self.default.get(purpose, True) if found is None else found[0]

    def objected(self, consents: Consents | None) -> bool:
        """Whether the customer objects to profiling (no score, no learning)."""
        if not consents:
            return self._objected
        return not self.allows(consents, "profiling", None)

    def refusal(self, consents: Consents | None, purpose: str, channel: str | None) -> str | None:
        """Why ``purpose`` is not allowed on ``channel``, in words; None if it is.

        >>> ConsentPolicy({"marketing": False}).refusal(None, "marketing", "voice")
        'no marketing consent (none given; the default is denied)'
        >>> c = Consents([(("marketing", "*"), (False, 1764547200000, "email"))])
        >>> ConsentPolicy().refusal(c, "marketing", "voice")
        'no marketing consent (withdrawn 2025-12-01 via email)'
        """
        found = consents.statement(purpose, channel) if consents else None
        if found is None:
            if self.default.get(purpose, True):
                return None
            return f"no {purpose} consent (none given; the default is denied)"
        granted, ts, source = found
        if granted:
            return None
        own = consents.latest.get((purpose, channel)) if consents and channel else None
        on = f" on {channel}" if own == found else ""
        return f"no {purpose} consent{on} (withdrawn {_day(ts)} via {source})"

    def view(self, consents: Consents | None, channel: str | None) -> dict[str, dict[str, Any]]:
        """The consent state as it applies on ``channel``, per purpose (an alert's
        ``consent``): granted, at (event time; None: the default), source.  For a
        customer who said nothing it is one shared object: read it, do not change it."""
        if not consents:
            return self._view
        out: dict[str, dict[str, Any]] = {}
        for purpose in PURPOSES:
            found = consents.statement(purpose, channel) if consents else None
            if found is None:
                out[purpose] = {
                    "granted": self.default.get(purpose, True),
                    "at": None,
                    "source": "default",
                }
            else:
                out[purpose] = {"granted": found[0], "at": found[1], "source": found[2]}
        return out


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d")


def parse_consent_default(text: str) -> dict[str, bool]:
    """``CX_CONSENT_DEFAULT``: ``granted`` or ``denied`` for every purpose, or a list of
    ``purpose=granted|denied`` (purposes not named: granted).

    >>> parse_consent_default("denied")
    {'marketing': False, 'profiling': False, 'contact': False}
    >>> parse_consent_default("marketing=denied, contact=granted")
    {'marketing': False, 'profiling': True, 'contact': True}
    >>> parse_consent_default("email=denied")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    operators.errors.ConfigError: CX_CONSENT_DEFAULT='email=denied': unknown purpose 'email' ...
    """
    words = {"granted": True, "denied": False}
    value = text.strip().lower()
    if value in words:
        return dict.fromkeys(PURPOSES, words[value])
    out = dict.fromkeys(PURPOSES, True)
    named: set[str] = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        purpose, sep, state = (s.strip() for s in part.partition("="))
        if not sep or state not in words:
            raise ConfigError(
                f"CX_CONSENT_DEFAULT={text!r}: write granted, denied, or "
                "purpose=granted|denied, ... (e.g. marketing=denied)"
            )
        if purpose not in PURPOSES:
            raise ConfigError(
                f"CX_CONSENT_DEFAULT={text!r}: unknown purpose {purpose!r} "
                f"(use {', '.join(PURPOSES)})"
            )
        if purpose in named:
            raise ConfigError(f"CX_CONSENT_DEFAULT={text!r}: {purpose} is named twice")
        named.add(purpose)
        out[purpose] = words[state]
    return out
