"""The naming convention of models and figures, built by one function."""

from __future__ import annotations

import pytest

from contracts.names import asset_name, figure_name, model_name


def test_models_are_named_algorithm_dataset_version() -> None:
    assert model_name("lightgbm", 3) == "lgbm_diamonds_v3"
    assert model_name("linear", 12) == "linear_diamonds_v12"
    assert asset_name("mlp", "draft") == "mlp_diamonds_draft"


def test_figures_are_named_topic_dataset_date() -> None:
    assert figure_name("predicted_vs_actual", "2026-12-02") == (
        "predicted-vs-actual_diamonds_2026-12-02.png"
    )
    assert figure_name("Error per decile", "2026-12-02") == (
        "error-per-decile_diamonds_2026-12-02.png"
    )


def test_parts_cannot_add_separators_or_paths() -> None:
    assert asset_name("../tree", "v1/../../x") == "tree_diamonds_v1-x"
    assert asset_name("tree", "v1", dataset="my_data") == "tree_my-data_v1"
    with pytest.raises(ValueError, match="no letters or digits"):
        asset_name("__", "v1")
