"""The engine's parts built from the settings: the same code for every command.

``cxstream run`` (the flow), ``cxstream evaluate`` and the benchmarks build the
customer logic's configuration, the trends' and the churn model from here, so a
setting means the same wherever it is read.
"""

from __future__ import annotations

from collections.abc import Callable

from cxstream.settings import Settings
from operators.churn import ChurnModel
from operators.consent import ConsentPolicy, parse_consent_default
from operators.customer import CustomerConfig
from operators.experience import LiveConfig
from operators.journey import DAY_MS, FEATURE_NAMES
from operators.nba import Catalog
from operators.proactive import ProactiveConfig
from operators.trends import TrendConfig


def customer_config(settings: Settings, catalog: Catalog | None = None) -> CustomerConfig:
    """A customer's journey, labels, profile writes and silences; with ``catalog``
    (and CX_PROACTIVE on), its proactive rules."""
    proactive = settings.proactive and catalog is not None
    return CustomerConfig(
        retention_s=settings.retention_days * 86_400,
        horizon_ms=int(settings.horizon_days * DAY_MS),
        label_mode=settings.label_mode,
        profile_interval_s=settings.profile_interval_ms / 1000,
        silence_ratio=settings.silence_ratio,
        triggers=catalog.triggers if proactive and catalog is not None else (),
        proactive=proactive,
        silence_journey=proactive and catalog is not None and catalog.proactive.model_triggers,
        consent=consent_policy(settings),
    )


def consent_policy(settings: Settings) -> ConsentPolicy:
    """What holds before a customer's own consent statement (CX_CONSENT_DEFAULT)."""
    return ConsentPolicy(parse_consent_default(settings.consent_default))


def proactive_config(settings: Settings, catalog: Catalog) -> ProactiveConfig:
    """Proactive retention: the settings (queue, cool-down, hold-out) and the catalog's
    ``[proactive]`` table."""
    table = catalog.proactive
    return ProactiveConfig(
        enabled=settings.proactive,
        queue=settings.proactive_queue,
        cooldown_days=settings.proactive_cooldown_days,
        holdout=settings.proactive_holdout,
        caps=table.caps,
        quiet_hours=table.quiet_hours,
        contact_gap_hours=table.contact_gap_hours,
        risk_step=table.risk_step,
        expires_hours=table.expires_hours,
        default_value=table.default_value,
        model_triggers=table.model_triggers,
        uplift_prior_sd=table.uplift_prior_sd,
    )


def trend_config(settings: Settings) -> TrendConfig:
    """The sliding counts of complaints and contacts, and when a count is a spike."""
    return TrendConfig(
        window_ms=int(settings.trend_window_min * 60_000),
        threshold=settings.trend_threshold,
        min_count=settings.trend_min_count,
    )


def experience_config(settings: Settings) -> LiveConfig:
    """When a drop of NPS, CSAT or CES from the previous window is a trend alert."""
    return LiveConfig(z=settings.experience_z, min_n=settings.experience_min_n)


def model_factory(settings: Settings, *, external_labels: bool = False) -> Callable[[], ChurnModel]:
    """A new churn model (champion and challenger) for each model shard; with
    ``external_labels`` its labels come from a file (``cxstream evaluate``)."""

    def new_model() -> ChurnModel:
        return ChurnModel(
            challenger=None if settings.challenger == "none" else settings.challenger,
            promote_margin=settings.promote_margin,
            challenger_every=settings.challenger_every,
            challenger_features=FEATURE_NAMES,
            label_mode="external" if external_labels else settings.label_mode,
            horizon_ms=int(settings.horizon_days * DAY_MS),
        )

    return new_model
