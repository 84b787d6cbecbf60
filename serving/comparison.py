"""A second opinion on the same request: the shadow or canary comparison of two models.

A serving version published for a rollout may carry a second pin (contracts.rollout): in shadow,
production answers and the candidate is priced beside it for a sample of requests; in a canary,
the candidate answers and production is priced beside it. Either way both prices go to the
inference log with their gap, and once the rows are written the share of stones whose prices
disagree is published to CloudWatch (`PriceDisagreement`, dimension Role), the canary's model
alarm. The comparison never changes or delays an answer beyond pricing twice: if the compared
model cannot be loaded the request is answered and the comparison skipped (and logged).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts.rollout import PRICE_DISAGREEMENT_METRIC, ComparisonRole, comparison_dimensions
from contracts.settings import Settings
from serving.model_store import AwsClients, ModelStore
from serving.pricing import columns

log = logging.getLogger("facet.serving.comparison")


@dataclass(frozen=True)
class Compared:
    """The compared model's prices for the stones of one request."""

    role: ComparisonRole
    version: int | None
    prices: np.ndarray


@dataclass
class Comparison:
    role: ComparisonRole
    sample: float
    disagreement: float
    store: ModelStore
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_settings(
        cls, settings: Settings, clients: Callable[[], AwsClients]
    ) -> Comparison | None:
        if not settings.compare_pin:
            return None
        pinned = settings.model_copy(update={"model_pin": settings.compare_pin})
        return cls(
            role=settings.compare_role,
            sample=settings.compare_sample,
            disagreement=settings.disagreement,
            store=ModelStore(pinned, clients),
        )

    def prices(self, stones: Sequence[dict[str, Any]]) -> Compared | None:
        """The compared model's prices, for a sampled request; None when not sampled or when
        the compared model is unavailable (the answer does not depend on it)."""
        if self.sample <= 0 or (self.sample < 1 and self.rng.random() >= self.sample):
            return None
        try:
            loaded = self.store.get()
            prices = np.asarray(loaded.model.predict(columns(stones)), dtype=float)
        except Exception as error:  # the answer stands; the comparison is lost, and said so
            log.warning("comparison skipped: %s: %s", type(error).__name__, error)
            return None
        return Compared(self.role, loaded.info.version, prices)


def comparison_fields(
    compared: Compared | None, answered: Sequence[float], disagreement: float
) -> list[dict[str, Any]]:
    """Per stone: the compared price and the gap of the candidate's price to production's."""
    if compared is None:
        return [{} for _ in answered]
    rows = []
    for answered_price, compared_price in zip(answered, compared.prices, strict=True):
        if compared.role is ComparisonRole.CANARY:
            candidate, production = float(answered_price), float(compared_price)
        else:
            candidate, production = float(compared_price), float(answered_price)
        gap = candidate / production - 1.0 if production > 0 else float("inf")
        rows.append(
            {
                "compared_role": compared.role.value,
                "compared_version": "" if compared.version is None else compared.version,
                "compared_price": round(float(compared_price), 2),
                "price_gap": round(gap, 6),
                "disagrees": int(abs(gap) > disagreement),
            }
        )
    return rows


def disagreement_metrics(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudWatch MetricData for written rows: per role, the share of compared stones that
    disagree (as a statistic set, so Average is the share)."""
    counts: dict[str, tuple[int, int]] = {}
    for row in rows:
        role = row.get("compared_role")
        if not role:
            continue
        total, disagreeing = counts.get(role, (0, 0))
        counts[role] = (total + 1, disagreeing + int(row.get("disagrees") or 0))
    return [
        {
            "MetricName": PRICE_DISAGREEMENT_METRIC,
            "Dimensions": [
                {"Name": name, "Value": value}
                for name, value in comparison_dimensions(ComparisonRole(role))
            ],
            "StatisticValues": {
                "SampleCount": float(total),
                "Sum": float(disagreeing),
                "Minimum": 0.0 if disagreeing < total else 1.0,
                "Maximum": 1.0 if disagreeing else 0.0,
            },
            "Unit": "None",
        }
        for role, (total, disagreeing) in counts.items()
    ]


@dataclass
class DisagreementPublisher:
    """Called with the rows the inference log has written: publishes their comparison counts."""

    cloudwatch: Callable[[], Any]
    namespace: str

    def __call__(self, rows: Sequence[dict[str, Any]]) -> None:
        metric_data = disagreement_metrics(rows)
        if not metric_data:
            return
        try:
            self.cloudwatch().put_metric_data(Namespace=self.namespace, MetricData=metric_data)
        except Exception as error:  # the rows are in the lake; only the alarm's input is late
            log.warning("publishing the price disagreement failed: %s", error)
