"""The default model beats a sanity floor on the frozen holdout (targets live in the benchmark)."""

from __future__ import annotations

from training.predict import PriceModel


def test_default_model_is_useful_on_holdout(default_model: tuple[PriceModel, object]) -> None:
    model, _ = default_model
    holdout = model.metadata["metrics"]["holdout"]
    # Far looser than the targets (6% MAPE): this catches a broken pipeline, not a tuning miss.
    assert holdout["mape"] < 0.08
    assert holdout["r2"] > 0.97
    assert len(model.metadata["metrics"]["holdout_deciles"]) == 10


def test_default_model_records_provenance(default_model: tuple[PriceModel, object]) -> None:
    model, _ = default_model
    meta = model.metadata
    for key in (
        "dataset_hash",
        "holdout_hash",
        "code_version",
        "created_at",
        "schema_version",
        "files",
    ):
        assert meta[key], key
    assert meta["model_family"] == "lightgbm"
