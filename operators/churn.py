"""The online churn model: River ``StandardScaler | LogisticRegression``.

``predict_proba_one(x)`` scores, ``learn_one(x, y)`` learns from a matured
example (after scoring it first, for the prequential metrics), and
``contributions(x)`` splits the log-odds into per-feature parts so an agent
can be told *why*.

>>> m = ChurnModel()
>>> m.predict_proba_one({"a": 1.0})
0.5
>>> for i in range(200):
...     m.learn_one({"a": float(i % 2)}, i % 2)
>>> m.predict_proba_one({"a": 1.0}) > 0.8 > 0.2 > m.predict_proba_one({"a": 0.0})
True
>>> m.n_learned, m.version
(200, 'logreg-1@200')
"""

from __future__ import annotations

import math

from river import compose, linear_model, metrics, optim, preprocessing


class ChurnModel:
    """Scaler + logistic regression learned one example at a time."""

    family = "logreg"
    generation = 1

    def __init__(self, *, learning_rate: float = 0.05, l2: float = 1e-4) -> None:
        self.scaler = preprocessing.StandardScaler()
        self.lr = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2)
        self.pipeline = compose.Pipeline(self.scaler, self.lr)
        self.n_learned = 0
        self.n_positive = 0
        self.auc = metrics.ROCAUC()
        self.log_loss = metrics.LogLoss()

    @property
    def version(self) -> str:
        return f"{self.family}-{self.generation}@{self.n_learned}"

    def predict_proba_one(self, x: dict[str, float]) -> float:
        proba = self.pipeline.predict_proba_one(x)
        return float(proba.get(True, 0.0))

    def learn_one(self, x: dict[str, float], y: int) -> None:
        """Score ``x`` for the prequential metrics, then learn from it."""
        p = self.predict_proba_one(x)
        self.auc.update(bool(y), p)
        self.log_loss.update(bool(y), p)
        self.pipeline.learn_one(x, bool(y))
        self.n_learned += 1
        self.n_positive += int(y)

    def contributions(self, x: dict[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds (weight x standardised value)."""
        scaled = self.scaler.transform_one(x)
        weights = self.lr.weights
        return {name: float(weights.get(name, 0.0)) * float(v) for name, v in scaled.items()}

    def metrics(self) -> dict[str, float]:
        auc = float(self.auc.get())
        return {
            "n_learned": float(self.n_learned),
            "positive_rate": self.n_positive / self.n_learned if self.n_learned else 0.0,
            "roc_auc": auc if math.isfinite(auc) else 0.5,
            "log_loss": float(self.log_loss.get()),
        }
