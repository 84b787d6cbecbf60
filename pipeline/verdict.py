"""The verdict on a labelled batch, from production's own predictions on it, before any training.

Production's log-residuals (log price - log predicted) on its frozen holdout say how wrong it is
on data it was judged on. On a new batch they tell three stories apart:

- *consistent*: centred and as spread as on the holdout: the batch is more of the same market;
- *market shift*: the whole distribution moved (its median beyond the threshold) but keeps the
  holdout's spread: the feature-price structure holds, the price level changed;
- *inconsistent labels*: far more spread than on the holdout, or far more stones with large
  errors: prices that contradict everything known (shuffled, swapped, garbage). Such a batch must
  never reach training.

Spread is measured robustly (1.4826 x median absolute deviation) so that a few odd stones do not
move it, and the share of stones beyond the holdout's 99th percentile of absolute error catches
corruption of a part of a batch, which a robust spread by design ignores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from contracts.settings import VerdictPolicy

MAD_TO_SIGMA = 1.4826
DECILES = 10


class VerdictKind(StrEnum):
    CONSISTENT = "consistent"
    MARKET_SHIFT = "market_shift"
    INCONSISTENT = "inconsistent"
    UNJUDGED = "unjudged"  # no production model to judge by (an empty registry): accepted

    @property
    def trainable(self) -> bool:
        return self is not VerdictKind.INCONSISTENT


@dataclass(frozen=True)
class ResidualStats:
    """Production's log-residuals on a set of stones, summarized."""

    rows: int
    median: float
    spread: float  # robust sigma of the log-residuals
    outlier_share: float  # share beyond the holdout's 99th percentile of |residual - median|
    mape: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "median": self.median,
            "spread": self.spread,
            "outlier_share": self.outlier_share,
            "mape": self.mape,
        }


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    reason: str
    batch: ResidualStats | None = None
    holdout: ResidualStats | None = None
    shift: float = 0.0  # the batch's price level vs production's, as a fraction (+0.15 = +15 %)
    shift_log: float = 0.0
    spread_ratio: float = 1.0
    decile_shifts: tuple[float, ...] = ()  # per decile of production's predicted price
    histogram: dict[str, list[float]] | None = None  # for the report's chart

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "batch": self.batch.to_dict() if self.batch else None,
            "holdout": self.holdout.to_dict() if self.holdout else None,
            "shift": self.shift,
            "shift_log": self.shift_log,
            "spread_ratio": self.spread_ratio,
            "decile_shifts": list(self.decile_shifts),
            "histogram": self.histogram,
        }


def log_residuals(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(actual, dtype=float)) - np.log(np.asarray(predicted, dtype=float))


def _spread(residuals: np.ndarray) -> float:
    centre = np.median(residuals)
    return float(MAD_TO_SIGMA * np.median(np.abs(residuals - centre)))


def _stats(residuals: np.ndarray, outlier_limit: float) -> ResidualStats:
    centre = float(np.median(residuals))
    return ResidualStats(
        rows=len(residuals),
        median=centre,
        spread=_spread(residuals),
        outlier_share=float(np.mean(np.abs(residuals - centre) > outlier_limit)),
        mape=float(np.mean(np.abs(np.expm1(-residuals)))),
    )


def decile_shifts(residuals: np.ndarray, predicted: np.ndarray) -> tuple[float, ...]:
    """The batch's median shift (fraction) in each decile of production's predicted price."""
    order = np.argsort(predicted, kind="stable")
    return tuple(
        float(np.expm1(np.median(residuals[part])))
        for part in np.array_split(order, DECILES)
        if len(part)
    )


def residual_histogram(
    batch_residuals: np.ndarray, holdout_residuals: np.ndarray, bins: int = 40
) -> dict[str, list[float]]:
    """Both residual distributions as densities on shared edges (price ratio, not log)."""
    low, high = np.quantile(np.concatenate([batch_residuals, holdout_residuals]), [0.005, 0.995])
    edges = np.linspace(min(low, -0.3), max(high, 0.3), bins + 1)
    batch_density = np.histogram(np.clip(batch_residuals, edges[0], edges[-1]), edges)[0]
    holdout_density = np.histogram(np.clip(holdout_residuals, edges[0], edges[-1]), edges)[0]
    return {
        "edges": [float(e) for e in np.expm1(edges)],
        "batch": [float(c) / max(len(batch_residuals), 1) for c in batch_density],
        "holdout": [float(c) / max(len(holdout_residuals), 1) for c in holdout_density],
    }


def judge(
    batch_residuals: np.ndarray,
    holdout_residuals: np.ndarray,
    policy: VerdictPolicy,
    *,
    batch_predicted: np.ndarray | None = None,
    production_version: int | None = None,
) -> Verdict:
    """The verdict on a batch, from production's log-residuals on it and on its holdout."""
    batch_residuals = np.asarray(batch_residuals, dtype=float)
    holdout_residuals = np.asarray(holdout_residuals, dtype=float)
    centred = np.abs(holdout_residuals - np.median(holdout_residuals))
    outlier_limit = float(np.quantile(centred, 0.99))
    holdout = _stats(holdout_residuals, outlier_limit)
    batch = _stats(batch_residuals, outlier_limit)
    # The holdout's own bias is production's, not the market's: measure the batch against it.
    shift_log = batch.median - holdout.median
    ratio = batch.spread / holdout.spread if holdout.spread > 0 else float("inf")
    deciles = (
        decile_shifts(batch_residuals - holdout.median, batch_predicted)
        if batch_predicted is not None and len(batch_residuals) >= DECILES
        else ()
    )
    name = f" v{production_version}" if production_version is not None else ""

    def verdict(kind: VerdictKind, reason: str) -> Verdict:
        return Verdict(
            kind,
            reason,
            batch=batch,
            holdout=holdout,
            shift=float(np.expm1(shift_log)),
            shift_log=shift_log,
            spread_ratio=ratio,
            decile_shifts=deciles,
            histogram=residual_histogram(
                batch_residuals - holdout.median, holdout_residuals - holdout.median
            ),
        )

    if batch.rows < policy.min_rows:
        return verdict(
            VerdictKind.CONSISTENT,
            f"Consistent (not judged: {batch.rows} rows, fewer than {policy.min_rows}).",
        )
    too_spread = ratio > policy.max_spread_ratio
    too_many_outliers = (
        batch.rows >= policy.min_rows_for_outliers
        and batch.outlier_share > policy.max_outlier_share
    )
    if too_spread or too_many_outliers:
        return verdict(
            VerdictKind.INCONSISTENT,
            f"Inconsistent labels: production's errors on the batch spread {ratio:.2f}x as wide "
            f"as on its holdout (limit {policy.max_spread_ratio:.2f}x), and "
            f"{batch.outlier_share:.1%} of stones are off by more than "
            f"{np.expm1(outlier_limit):.0%} (holdout: 1.0%, limit "
            f"{policy.max_outlier_share:.1%}). The batch contradicts what production knows: "
            "quarantined, and no model is trained on it.",
        )
    if abs(shift_log) > math.log1p(policy.shift_threshold):
        return verdict(
            VerdictKind.MARKET_SHIFT,
            f"Market shift: prices {np.expm1(shift_log):+.1%} against production{name} "
            f"(threshold ±{policy.shift_threshold:.0%}), with the holdout's spread "
            f"({ratio:.2f}x): the price level moved, the structure holds.",
        )
    return verdict(
        VerdictKind.CONSISTENT,
        f"Consistent: prices {np.expm1(shift_log):+.1%} against production{name} "
        f"(threshold ±{policy.shift_threshold:.0%}), spread {ratio:.2f}x the holdout's.",
    )
