"""The verdict on a labelled batch at its thresholds, on synthetic residuals with known statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contracts.settings import VerdictPolicy
from pipeline.verdict import VerdictKind, judge

POLICY = VerdictPolicy()
RNG = np.random.default_rng(7)
# Production's log-residuals on its holdout: centred exactly, robust sigma 0.08.
_raw = RNG.normal(0.0, 0.08, 20_001)
HOLDOUT = _raw - np.median(_raw)


def batch_like_holdout(*, scale: float = 1.0, shift_log: float = 0.0) -> np.ndarray:
    """A batch whose spread is exactly `scale` times the holdout's, moved by `shift_log`."""
    return HOLDOUT * scale + shift_log


def test_a_batch_like_the_holdout_is_consistent() -> None:
    verdict = judge(batch_like_holdout(), HOLDOUT, POLICY)
    assert verdict.kind is VerdictKind.CONSISTENT
    assert verdict.spread_ratio == pytest.approx(1.0) and verdict.shift == pytest.approx(0.0)


@pytest.mark.parametrize("direction", [1, -1])
def test_shift_just_inside_the_threshold_is_consistent(direction: int) -> None:
    inside = direction * math.log1p(POLICY.shift_threshold) * 0.99
    assert (
        judge(batch_like_holdout(shift_log=inside), HOLDOUT, POLICY).kind is VerdictKind.CONSISTENT
    )


@pytest.mark.parametrize("direction", [1, -1])
def test_shift_just_outside_the_threshold_is_a_market_shift(direction: int) -> None:
    outside = direction * math.log1p(POLICY.shift_threshold) * 1.01
    verdict = judge(batch_like_holdout(shift_log=outside), HOLDOUT, POLICY)
    assert verdict.kind is VerdictKind.MARKET_SHIFT
    assert verdict.shift == pytest.approx(math.expm1(outside))
    assert "Market shift" in verdict.reason


def test_a_fifteen_percent_market_is_a_shift_measured_per_decile() -> None:
    predicted = np.exp(RNG.uniform(6, 9, len(HOLDOUT)))
    verdict = judge(
        batch_like_holdout(shift_log=math.log(1.15)), HOLDOUT, POLICY, batch_predicted=predicted
    )
    assert verdict.kind is VerdictKind.MARKET_SHIFT
    assert verdict.shift == pytest.approx(0.15)
    assert len(verdict.decile_shifts) == 10
    assert all(abs(d - 0.15) < 0.02 for d in verdict.decile_shifts)


# A wider spread also puts more stones beyond the holdout's 99th percentile: to test the spread
# limit alone, the outlier limit is lifted.
SPREAD_ONLY = VerdictPolicy(max_outlier_share=1.0)


def test_spread_just_inside_the_limit_is_not_inconsistent() -> None:
    verdict = judge(batch_like_holdout(scale=POLICY.max_spread_ratio * 0.99), HOLDOUT, SPREAD_ONLY)
    assert verdict.kind is VerdictKind.CONSISTENT


def test_spread_just_outside_the_limit_is_inconsistent_even_with_a_shift() -> None:
    verdict = judge(
        batch_like_holdout(scale=POLICY.max_spread_ratio * 1.01, shift_log=0.2),
        HOLDOUT,
        SPREAD_ONLY,
    )
    assert verdict.kind is VerdictKind.INCONSISTENT
    assert not verdict.kind.trainable and "quarantined" in verdict.reason


def with_outliers(share: float, rows: int = 5_000) -> np.ndarray:
    batch = RNG.choice(HOLDOUT, rows)
    limit = np.quantile(np.abs(HOLDOUT), 0.99)
    inliers = batch[np.abs(batch) <= limit]
    count = round(share * rows)
    far = np.full(count, 3 * limit) * np.where(np.arange(count) % 2 == 0, 1, -1)
    return np.concatenate([inliers[: rows - count], far])


def test_outlier_share_just_inside_the_limit_is_not_inconsistent() -> None:
    verdict = judge(with_outliers(POLICY.max_outlier_share - 0.002), HOLDOUT, POLICY)
    assert verdict.kind is VerdictKind.CONSISTENT
    assert verdict.batch is not None and verdict.batch.outlier_share < POLICY.max_outlier_share


def test_outlier_share_just_outside_the_limit_is_inconsistent() -> None:
    verdict = judge(with_outliers(POLICY.max_outlier_share + 0.002), HOLDOUT, POLICY)
    assert verdict.kind is VerdictKind.INCONSISTENT
    assert verdict.spread_ratio < POLICY.max_spread_ratio  # caught by the share, not the spread


def test_shuffled_prices_are_inconsistent() -> None:
    prices = np.exp(RNG.normal(8, 1, 5_000))
    predicted = prices * np.exp(RNG.normal(0, 0.08, 5_000))
    shuffled = RNG.permutation(prices)
    verdict = judge(np.log(shuffled / predicted), HOLDOUT, POLICY)
    assert verdict.kind is VerdictKind.INCONSISTENT and verdict.spread_ratio > 10


def test_tiny_batches_are_not_judged() -> None:
    tiny = batch_like_holdout(scale=5)[: POLICY.min_rows - 1]
    verdict = judge(tiny, HOLDOUT, POLICY)
    assert verdict.kind is VerdictKind.CONSISTENT and "not judged" in verdict.reason


def test_the_outlier_share_needs_enough_rows() -> None:
    small = with_outliers(0.2, rows=POLICY.min_rows_for_outliers - 1)
    big = with_outliers(0.2, rows=POLICY.min_rows_for_outliers)
    assert judge(big, HOLDOUT, POLICY).kind is VerdictKind.INCONSISTENT
    assert judge(small, HOLDOUT, POLICY).batch.outlier_share > POLICY.max_outlier_share  # type: ignore[union-attr]
    assert judge(small, HOLDOUT, POLICY).spread_ratio < POLICY.max_spread_ratio
    assert judge(small, HOLDOUT, POLICY).kind is not VerdictKind.INCONSISTENT
