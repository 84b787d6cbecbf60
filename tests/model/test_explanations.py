"""Explanations reconstruct every prediction: base price x factors = price, within 1 cent."""

from __future__ import annotations

import numpy as np
import pytest

from training.explain import explain
from training.predict import PriceModel
from training.train import ClassicSplit

FAMILIES = ("linear", "tree", "lightgbm", "mlp")


@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_reconstruct_every_holdout_price_within_a_cent(
    family: str, trained_models: dict[str, PriceModel], classic: ClassicSplit
) -> None:
    model = trained_models[family]
    contributions = model.contributions(classic.holdout)
    predicted = model.predict(classic.holdout)
    reconstructed = np.exp(contributions.base + contributions.by_feature.sum(axis=1))
    assert np.max(np.abs(reconstructed - predicted)) < 0.01


@pytest.mark.parametrize("family", FAMILIES)
def test_explanation_factors_multiply_to_the_price(
    family: str, trained_models: dict[str, PriceModel], classic: ClassicSplit
) -> None:
    rows = classic.holdout.head(200).reset_index(drop=True)
    prices = trained_models[family].predict(rows)
    for explanation, price in zip(explain(trained_models[family], rows), prices, strict=True):
        assert abs(explanation.reconstructed_price() - price) < 0.01
        assert abs(explanation.price - price) < 0.01


def test_explanation_groups_size_and_ranks_factors(
    trained_models: dict[str, PriceModel], classic: ClassicSplit
) -> None:
    (explanation,) = explain(trained_models["lightgbm"], classic.holdout.head(1))
    names = [f.name for f in explanation.factors]
    assert sorted(names) == ["clarity", "color", "cut", "depth", "size", "table"]
    size = next(f for f in explanation.factors if f.name == "size")
    assert set(size.inputs) == {"carat", "x", "y", "z"}
    magnitudes = [abs(f.log_contribution) for f in explanation.factors]
    assert magnitudes == sorted(magnitudes, reverse=True)


def test_lightgbm_contributions_are_exact_shapley_values(
    trained_models: dict[str, PriceModel], classic: ClassicSplit
) -> None:
    # TreeSHAP's efficiency property: base equals the model's mean prediction over training data
    # only in expectation, but every row's values sum exactly to its raw score.
    model = trained_models["lightgbm"]
    rows = classic.holdout.head(500)
    contributions = model.contributions(rows)
    assert np.allclose(contributions.log_price, model.predict_log(rows), atol=1e-9)
    assert np.allclose(contributions.base, contributions.base[0])


def test_linear_contributions_are_coefficient_times_deviation(
    trained_models: dict[str, PriceModel], classic: ClassicSplit
) -> None:
    model = trained_models["linear"]
    rows = classic.holdout.head(3)
    # A stone at the reference point gets no contribution from any feature.
    matrix = model.transform.transform(rows)
    _, by_column = model.predictor.contributions(matrix)
    _, at_reference = model.predictor.contributions(model.predictor.reference[None, :])  # type: ignore[attr-defined]
    assert np.allclose(at_reference, 0.0)
    assert not np.allclose(by_column, 0.0)
