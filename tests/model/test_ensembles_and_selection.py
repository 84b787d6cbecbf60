"""Seed ensembles and feature selection keep explanations exact and the artifact verifiable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contracts.schema import FEATURE_NAMES
from training.explain import explain
from training.hyperparameters import parse_hyperparameters
from training.predict import LIGHTGBM_FILE, ArtifactError, PriceModel, load_model
from training.train import ClassicSplit, train_and_evaluate

SMALL = {"models": "lightgbm", "lgb_max_rounds": "60"}


@pytest.fixture(scope="module")
def ensemble(classic: ClassicSplit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = parse_hyperparameters(
        {**SMALL, "lgb_ensemble_seeds": "3", "lgb_ignore_features": "depth,x_over_y"}
    )
    directory = tmp_path_factory.mktemp("ensemble")
    train_and_evaluate(classic.training, classic.holdout, params).save(directory)
    return directory


def test_an_ensemble_is_the_mean_of_its_members_and_its_explanations_add_up(
    ensemble: Path, classic: ClassicSplit
) -> None:
    model = load_model(ensemble)
    boosters = model.predictor.boosters  # type: ignore[attr-defined]
    assert len(boosters) == 3
    rows = classic.holdout.head(300).reset_index(drop=True)
    matrix = model.transform.transform(rows)
    members = np.stack([booster.predict(matrix) for booster in boosters])
    assert not np.allclose(members[0], members[1])  # different seeds, different members
    assert np.allclose(model.predict_log(rows), members.mean(axis=0))
    prices = model.predict(rows)
    for explanation, price in zip(explain(model, rows), prices, strict=True):
        assert abs(explanation.reconstructed_price() - price) < 0.01


def test_an_ignored_feature_contributes_nothing_and_changes_no_price(
    ensemble: Path, classic: ClassicSplit
) -> None:
    model: PriceModel = load_model(ensemble)
    rows = classic.holdout.head(300).reset_index(drop=True)
    contributions = model.contributions(rows)
    assert np.all(contributions.by_feature[:, FEATURE_NAMES.index("depth")] == 0.0)
    moved = rows.assign(depth=rows["depth"] + 3.0)
    assert np.array_equal(model.predict(moved), model.predict(rows))
    assert model.metadata["hyperparameters"]["ignored_features"] == ["depth", "x_over_y"]


def test_an_altered_ensemble_member_is_refused(ensemble: Path, tmp_path: Path) -> None:
    altered = tmp_path / "altered"
    altered.mkdir()
    for path in ensemble.iterdir():
        (altered / path.name).write_bytes(path.read_bytes())
    text = (altered / LIGHTGBM_FILE).read_text()
    last = text.rindex("leaf_value=")
    (altered / LIGHTGBM_FILE).write_text(text[:last] + "leaf_value=9" + text[last + 11 :])
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        load_model(altered)
