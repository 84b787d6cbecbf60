from __future__ import annotations

import pytest

from training.hyperparameters import CANDIDATES, HyperparameterError, parse_hyperparameters


def test_hyperparameters_strings_parsed_to_types() -> None:
    params = parse_hyperparameters(
        {
            "lgb_num_leaves": "15",
            "lgb_learning_rate": "0.05",
            "lgb_monotone": "false",
            "models": "lightgbm,linear",
        }
    )
    assert (params.lgb_num_leaves, params.lgb_learning_rate, params.lgb_monotone) == (
        15,
        0.05,
        False,
    )
    assert params.models == ("lightgbm", "linear")


def test_hyperparameters_all_means_every_candidate() -> None:
    assert parse_hyperparameters({"models": "all"}).models == CANDIDATES


def test_hyperparameters_sagemaker_own_keys_are_kept_aside() -> None:
    params = parse_hyperparameters(
        {"sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://b/k"}
    )
    assert params.extra["sagemaker_program"] == "train.py"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"lgb_learning_rate": "fast"}, "lgb_learning_rate='fast' is not a valid float"),
        ({"lgb_monotone": "maybe"}, "lgb_monotone='maybe' is not a valid bool"),
        ({"mlp_epochs": "0"}, "mlp_epochs=0 must be greater than 0"),
        ({"models": ""}, "choose from"),
        ({"epochs": "3"}, "unknown hyperparameter 'epochs'"),
        ({"lgb_feature_fraction": "1.5"}, "lgb_feature_fraction=1.5 is above 1"),
        ({"lgb_lambda_l2": "-1"}, "lgb_lambda_l2=-1.0 must not be negative"),
        ({"lgb_ensemble_seeds": "0"}, "lgb_ensemble_seeds=0 must be greater than 0"),
        ({"lgb_ignore_features": "x,colour"}, "lgb_ignore_features names unknown columns"),
    ],
)
def test_hyperparameters_bad_value_names_the_hyperparameter(
    raw: dict[str, str], message: str
) -> None:
    with pytest.raises(HyperparameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_hyperparameters(raw)


def test_hyperparameters_round_trip_through_strings() -> None:
    params = parse_hyperparameters({"models": "all", "tree_max_depths": "5,6"})
    assert parse_hyperparameters(params.to_strings()) == params


def test_feature_selection_accepts_schema_and_derived_columns() -> None:
    params = parse_hyperparameters({"lgb_ignore_features": "depth,x_over_y"})
    assert params.lgb_ignore_features == ("depth", "x_over_y")
    assert parse_hyperparameters({"lgb_ignore_features": ""}).lgb_ignore_features == ()
