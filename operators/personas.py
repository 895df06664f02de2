"""Personas: online clustering of customers' journey features at contact moments.

A :class:`Personas` model (one per model shard) standardises a few
behavioural features of the journey (value, tenure, contacts, complaints,
sentiment, purchases, browsing, payment failures, digital and voice share)
as River's ``preprocessing.StandardScaler`` does and clusters them as River's
online ``cluster.KMeans`` does (``halflife``, Euclidean), on a fixed feature
order with lists instead of dicts, distances by ``math.dist`` (from the Python
source about 11 us a contact, where River's two took 35; compiled about 5: the tests
check the clusters against River's).  Each contact moment teaches the model and gets
its customer's persona: an id (``p0`` .. ``p5``, the cluster) and a name
made of the two traits that set the cluster's centre most apart from the
average customer ("high value, digital first", traits in a fixed order).
Names are worked out again every :data:`RENAME_EVERY` contacts as the
centres move; before
``warmup`` contacts there is no persona.  Ids are per model shard: with
several model shards, compare personas by name.

>>> personas = Personas(warmup=10)
>>> x = {"value_log": 5.0, "channel:web": 2.0, "contacts_7d": 0.0}
>>> [personas.learn_predict_one(x) for _ in range(9)][-1] is None
True
>>> persona = personas.learn_predict_one(x)
>>> persona.persona_id.startswith("p"), isinstance(persona.name, str)
(True, True)
"""

from __future__ import annotations

import math
import random
from typing import Final

from mypy_extensions import mypyc_attr

from operators.values import record

# (a static: compiled code would look ``math.log1p`` up by name at every call)
_log1p: Final = math.log1p

K = 6
WARMUP: Final = 200
RENAME_EVERY: Final = 200
HALFLIFE: Final = 0.05  # how far a contact moves its cluster's centre

# (feature, sign of the centre's standard score) -> the trait's words
TRAITS: Final = {
    ("value", 1): "high value",
    ("value", -1): "low value",
    ("tenure", 1): "long-standing",
    ("tenure", -1): "newcomer",
    ("contacts", 1): "frequent caller",
    ("contacts", -1): "rarely calls",
    ("complaints", 1): "complainer",
    ("complaints", -1): "no complaints",
    ("sentiment", 1): "happy",
    ("sentiment", -1): "unhappy",
    ("purchases", 1): "regular buyer",
    ("purchases", -1): "rarely buys",
    ("browsing", 1): "browser",
    ("browsing", -1): "rarely browses",
    ("payment_failures", 1): "payment trouble",
    ("payment_failures", -1): "pays on time",
    ("digital", 1): "digital first",
    ("digital", -1): "offline",
    ("voice", 1): "voice first",
    ("voice", -1): "avoids the phone",
}


# The features, in a fixed order (each has its two traits above)
NAMES: Final[tuple[str, ...]] = (
    "value",
    "tenure",
    "contacts",
    "complaints",
    "sentiment",
    "purchases",
    "browsing",
    "payment_failures",
    "digital",
    "voice",
)


@record  # (made per contact: a frozen dataclass's __init__ costs 4 to 5 times more)
class Persona:
    persona_id: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.persona_id, "name": self.name}


def persona_features(x: dict[str, float]) -> dict[str, float]:
    """The behavioural features personas are made of, from the model's features.

    >>> f = persona_features({"channel:web": 1.0, "channel:voice": 3.0, "complaints_total": 2.0})
    >>> f["digital"], f["voice"], round(f["complaints"], 3)
    (0.25, 0.75, 1.099)
    """
    return dict(zip(NAMES, _feature_values(x), strict=True))


def _feature_values(x: dict[str, float]) -> list[float]:
    """:func:`persona_features`'s values in :data:`NAMES` order (no dict made: a contact's)."""
    web = app = voice = total = 0.0
    for name, value in x.items():
        if name.startswith("channel:"):
            total += value
            if name == "channel:web":
                web = value
            elif name == "channel:app":
                app = value
            elif name == "channel:voice":
                voice = value
    total = total or 1.0
    # (``x.get`` each time: compiled, a C lookup in the dict; a bound ``get`` is a call)
    return [
        x.get("value_log", 0.0),
        x.get("tenure_log", 0.0),
        x.get("contacts_7d", 0.0),
        _log1p(x.get("complaints_total", 0.0)),
        x.get("sentiment", 0.0),
        _log1p(x.get("purchases", 0.0)),
        x.get("page_views_log", 0.0),
        x.get("payment_failures_30d", 0.0),
        (web + app) / total,
        voice / total,
    ]


@mypyc_attr(native_class=False)
class Personas:
    """Standard scaler + online k-means, in River's ``learn_one``/``predict_one`` naming."""

    def __init__(self, *, k: int = K, warmup: int = WARMUP, seed: int = 42) -> None:
        rng = random.Random(seed)
        self.halflife = HALFLIFE
        # per feature (in NAMES order): count, mean, variance (Welford, as River)
        self.scale = [[0.0, 0.0, 0.0] for _ in NAMES]
        self.centers = [[rng.gauss(0.0, 1.0) for _ in NAMES] for _ in range(k)]
        self.warmup = warmup
        self.n_learned = 0
        self.names: dict[int, str] = {}
        self.sizes = [0] * k  # contacts assigned to each persona since the start

    def _standardised(self, x: dict[str, float], *, learn: bool) -> list[float]:
        out = []
        scale = self.scale
        # (by index: compiled, a strict zip's items are untyped and their arithmetic generic)
        for i, xi in enumerate(_feature_values(x)):
            s = scale[i]
            if learn:
                n = s[0] + 1.0
                old = s[1]
                s[1] = mean = old + (xi - old) / n
                s[2] += ((xi - old) * (xi - mean) - s[2]) / n
                s[0] = n
            var = s[2]
            out.append((xi - s[1]) / math.sqrt(var) if var else 0.0)
        return out

    def _closest(self, z: list[float]) -> int:
        best, best_d = 0, math.inf
        for c, center in enumerate(self.centers):
            d = math.dist(center, z)  # (in C: a quarter of the time of a loop here)
            if d < best_d:  # the first of equals, as min() picks
                best, best_d = c, d
        return best

    def learn_predict_one(self, x: dict[str, float]) -> Persona | None:
        """Learn from one contact moment's features; its persona (None while warming up)."""
        z = self._standardised(x, learn=True)
        c = self._closest(z)
        center = self.centers[c]
        h = self.halflife
        for i, zi in enumerate(z):
            center[i] += h * (zi - center[i])
        self.n_learned += 1
        if self.n_learned < self.warmup:
            return None
        if not self.names or self.n_learned % RENAME_EVERY == 0:
            self.names = self._names()
        self.sizes[c] += 1
        return Persona(f"p{c}", self.names[c])

    def predict_one(self, x: dict[str, float]) -> Persona | None:
        if self.n_learned < self.warmup or not self.names:
            return None
        c = self._closest(self._standardised(x, learn=False))
        return Persona(f"p{c}", self.names[c])

    def name_of(self, persona_id: str) -> str:
        """A persona's name now (its centre moves: the name given at a contact may have
        changed since)."""
        return self.names.get(int(persona_id[1:]), "")

    def _names(self) -> dict[int, str]:
        """Each cluster's two strongest traits: its centre's largest standard scores."""
        names = {}
        for c, centre in enumerate(self.centers):
            ranked = sorted(
                ((abs(v), k, 1 if v > 0 else -1) for k, v in zip(NAMES, centre, strict=True)),
                reverse=True,
            )
            top = sorted(ranked[:2], key=_trait_order)  # "a, b" never flips to "b, a"
            names[c] = ", ".join(TRAITS[(k, sign)] for _, k, sign in top) or "average"
        return names

    def stats(self) -> dict[str, object]:
        """Persona names and sizes, for the model shard's status."""
        return {
            "personas": {
                f"p{c}": {"name": self.names.get(c, ""), "contacts": n}
                for c, n in enumerate(self.sizes)
            }
        }


ORDER: Final = {name: i for i, name in enumerate(NAMES)}


def _trait_order(trait: tuple[float, str, int]) -> int:
    """A trait's place among the features (``(weight, name, sign)``): a name's pair always
    reads in one order."""
    return ORDER[trait[1]]
