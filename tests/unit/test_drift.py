from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.drift import drift_report, ks_statistic, summarize
from training.train import ClassicSplit


def test_drift_same_distribution_is_stable(classic: ClassicSplit) -> None:
    reference, current = classic.training.iloc[::2], classic.training.iloc[1::2]
    drifts = drift_report(reference, current)
    assert all(d.level == "stable" for d in drifts)
    assert summarize(drifts).startswith("no feature drifted")


def test_drift_larger_stones_shift_size_features(classic: ClassicSplit) -> None:
    heavy = classic.training.loc[
        classic.training["carat"] > classic.training["carat"].quantile(0.6)
    ]
    drifts = {d.feature: d for d in drift_report(classic.training, heavy)}
    for feature in ("carat", "x", "y", "z", "price"):
        assert drifts[feature].level == "shifted", (feature, drifts[feature].psi)
    assert drifts["carat"].ks is not None and drifts["carat"].ks > 0.3


def test_drift_category_mix_change_detected(classic: ClassicSplit) -> None:
    only_ideal = classic.training.loc[classic.training["cut"] == "Ideal"]
    drifts = {d.feature: d for d in drift_report(classic.training, only_ideal)}
    assert drifts["cut"].level == "shifted"
    assert drifts["cut"].ks is None


def test_drift_without_price_column_skips_price(classic: ClassicSplit) -> None:
    unlabelled = classic.training.drop(columns=["price"])
    features = {d.feature for d in drift_report(classic.training, unlabelled)}
    assert "price" not in features
    assert isinstance(unlabelled, pd.DataFrame)


@pytest.mark.parametrize("shift", [0.0, 0.1, 1.0])
def test_ks_statistic_agrees_with_scipy(shift: float) -> None:
    from scipy import stats

    generator = np.random.default_rng(3)
    reference = np.round(generator.normal(size=700), 2)  # ties, as in recorded carats
    current = np.round(generator.normal(loc=shift, size=450), 2)
    expected = stats.ks_2samp(reference, current).statistic
    assert ks_statistic(reference, current) == pytest.approx(expected, abs=1e-12)
