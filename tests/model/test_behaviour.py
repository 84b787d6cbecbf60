"""Behavioural tests of the default model: directional expectations and domain edges."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from contracts.schema import CARAT, CLARITY, COLOR, CUT, FEATURES, NUMERIC_FEATURES, OrdinalFeature
from training.predict import PriceModel
from training.train import ClassicSplit


@pytest.fixture(scope="module")
def stones(classic: ClassicSplit) -> pd.DataFrame:
    """500 real holdout stones to perturb."""
    return classic.holdout.sample(500, random_state=7).reset_index(drop=True)


def _lowest_seen_ratio(model: PriceModel, base: pd.DataFrame, change) -> float:  # type: ignore[no-untyped-def]
    before = model.predict(base)
    after = model.predict(change(base.copy()))
    return float(np.min(after / before))


@pytest.mark.parametrize("step", [0.01, 0.05, 0.2, 1.0])
def test_more_carat_never_lowers_the_price(
    default_model: tuple[PriceModel, object], stones: pd.DataFrame, step: float
) -> None:
    model, _ = default_model

    def heavier(frame: pd.DataFrame) -> pd.DataFrame:
        frame["carat"] = np.minimum(frame["carat"] + step, CARAT.maximum)
        return frame

    assert _lowest_seen_ratio(model, stones, heavier) >= 1.0


@pytest.mark.parametrize("grade", [COLOR, CLARITY], ids=lambda g: g.name)
def test_better_grade_never_lowers_the_price(
    default_model: tuple[PriceModel, object], stones: pd.DataFrame, grade: OrdinalFeature
) -> None:
    model, _ = default_model
    for worse, better in itertools.pairwise(grade.levels):
        base = stones.assign(**{grade.name: worse})
        upgraded = base.assign(**{grade.name: better})
        assert np.all(model.predict(upgraded) >= model.predict(base)), (worse, better)


def test_linear_model_is_monotone_in_carat_and_grades(
    trained_models: dict[str, PriceModel], stones: pd.DataFrame
) -> None:
    model = trained_models["linear"]
    heavier = stones.assign(carat=np.minimum(stones["carat"] + 0.1, CARAT.maximum))
    assert np.all(model.predict(heavier) >= model.predict(stones))
    for grade in (COLOR, CLARITY):
        prices = [model.predict(stones.assign(**{grade.name: level})) for level in grade.levels]
        assert all(np.all(b >= a) for a, b in itertools.pairwise(prices)), grade.name


def _edge_stones() -> pd.DataFrame:
    """Every combination of numeric features at the edges of the schema's domain."""
    rows = []
    for edges in itertools.product(*[(f.minimum + 1e-6, f.maximum) for f in NUMERIC_FEATURES]):
        row: dict[str, object] = dict(zip([f.name for f in NUMERIC_FEATURES], edges, strict=True))
        for ordinal, level in zip((CUT, COLOR, CLARITY), ("Fair", "J", "I1"), strict=True):
            row[ordinal.name] = level
        rows.append(row)
    for ordinal in (CUT, COLOR, CLARITY):
        for level in ordinal.levels:
            rows.append({**rows[0], ordinal.name: level})
    return pd.DataFrame(rows)[[f.name for f in FEATURES]]


@pytest.mark.parametrize("family", ["linear", "tree", "lightgbm", "mlp"])
def test_predictions_positive_and_finite_at_domain_edges(
    trained_models: dict[str, PriceModel], family: str
) -> None:
    prices = trained_models[family].predict(_edge_stones())
    assert np.all(np.isfinite(prices))
    assert np.all(prices > 0)
