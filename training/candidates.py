"""Fit the candidate models. All predict log price; each is exported to numpy-loadable weights.

scikit-learn and torch are imported inside the functions that need them, so serving (which imports
`training.predict`) never pays for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contracts.compute import usable_cpus
from contracts.schema import FEATURE_NAMES, LABEL_NAME, MONOTONE_INCREASING
from training.features import DERIVED, Encoding, FeatureTransform
from training.hyperparameters import Hyperparameters
from training.predict import (
    LightGBMPredictor,
    LinearPredictor,
    MLPPredictor,
    PriceModel,
    TreePredictor,
)

log = logging.getLogger(__name__)
LOG_SIZE_FEATURES = ("carat", "x", "y", "z")
TREE_MIN_LEAF = 10


@dataclass
class FittedCandidate:
    """The final model, and prices it predicted for the validation rows *before* it saw them."""

    model: PriceModel
    validation_prices: np.ndarray
    fit_seconds: float
    details: dict[str, object]


def _log_price(rows: pd.DataFrame) -> np.ndarray:
    return np.log(rows[LABEL_NAME].to_numpy(dtype=np.float64))


def _monotone_signs(transform: FeatureTransform) -> list[int]:
    return [1 if owner in MONOTONE_INCREASING else 0 for owner in transform.column_features]


def fit_linear(
    fit: pd.DataFrame, validation: pd.DataFrame, params: Hyperparameters
) -> FittedCandidate:
    """Log-linear regression: log price on log size, depth, table and one-hot grades."""
    from sklearn.linear_model import LinearRegression

    started = time.perf_counter()
    transform = FeatureTransform.fit(fit, encoding=Encoding.ONE_HOT, log_features=LOG_SIZE_FEATURES)
    held_back = LinearRegression().fit(transform.transform(fit), _log_price(fit))
    validation_prices = np.exp(held_back.predict(transform.transform(validation)))
    training = pd.concat([fit, validation], ignore_index=True)
    transform = FeatureTransform.fit(
        training, encoding=Encoding.ONE_HOT, log_features=LOG_SIZE_FEATURES
    )
    matrix = transform.transform(training)
    regression = LinearRegression().fit(matrix, _log_price(training))
    predictor = LinearPredictor(
        np.asarray(regression.coef_, dtype=np.float64),
        float(regression.intercept_),
        matrix.mean(axis=0),
    )
    model = PriceModel(transform, predictor, {"hyperparameters": {}})
    return FittedCandidate(model, validation_prices, time.perf_counter() - started, {})


def fit_tree(
    fit: pd.DataFrame, validation: pd.DataFrame, params: Hyperparameters
) -> FittedCandidate:
    """One regression tree on log price, its depth chosen on the validation rows.

    Not monotone-constrained: scikit-learn's constraint on a single tree cost 4-5 points of MAPE
    here (12.6% vs 7.8% on validation), and the tree is not the default model."""
    from sklearn.tree import DecisionTreeRegressor

    started = time.perf_counter()
    transform = FeatureTransform.fit(fit, encoding=Encoding.ORDINAL)
    fit_matrix, validation_matrix = transform.transform(fit), transform.transform(validation)
    target, validation_target = _log_price(fit), validation[LABEL_NAME].to_numpy()
    best_depth, best_mape = params.tree_max_depths[0], np.inf
    validation_prices = np.zeros(len(validation))
    for depth in params.tree_max_depths:
        tree = DecisionTreeRegressor(
            max_depth=depth, min_samples_leaf=TREE_MIN_LEAF, random_state=params.seed
        ).fit(fit_matrix, target)
        predicted = np.exp(tree.predict(validation_matrix))
        mape = float(np.mean(np.abs(predicted - validation_target) / validation_target))
        if mape < best_mape:
            best_depth, best_mape, validation_prices = depth, mape, predicted
    training = pd.concat([fit, validation], ignore_index=True)
    transform = FeatureTransform.fit(training, encoding=Encoding.ORDINAL)
    tree = DecisionTreeRegressor(
        max_depth=best_depth, min_samples_leaf=TREE_MIN_LEAF, random_state=params.seed
    ).fit(transform.transform(training), _log_price(training))
    structure = tree.tree_
    predictor = TreePredictor(
        structure.children_left.astype(np.int64),
        structure.children_right.astype(np.int64),
        np.maximum(structure.feature, 0).astype(np.int64),
        structure.threshold.astype(np.float64),
        structure.value[:, 0, 0].astype(np.float64),
    )
    model = PriceModel(transform, predictor, {"hyperparameters": {"max_depth": best_depth}})
    return FittedCandidate(
        model, validation_prices, time.perf_counter() - started, {"max_depth": best_depth}
    )


def lightgbm_parameters(params: Hyperparameters, transform: FeatureTransform) -> dict[str, object]:
    options: dict[str, object] = {
        "objective": "regression",
        "learning_rate": params.lgb_learning_rate,
        "num_leaves": params.lgb_num_leaves,
        "max_depth": params.lgb_max_depth,
        "min_child_samples": params.lgb_min_child_samples,
        "max_bin": params.lgb_max_bin,
        "bagging_fraction": params.lgb_bagging_fraction,
        "bagging_freq": 1,
        "feature_fraction": params.lgb_feature_fraction,
        "lambda_l2": params.lgb_lambda_l2,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": usable_cpus(),  # never every core of the host
        "verbose": -1,
    }
    if params.lgb_monotone:
        options["monotone_constraints"] = _monotone_signs(transform)
        options["monotone_constraints_method"] = "advanced"
    return options


def _ignored_columns(params: Hyperparameters, transform: FeatureTransform) -> list[int]:
    ignored = set(params.lgb_ignore_features)
    return [
        i
        for i, (name, owner) in enumerate(
            zip(transform.column_names, transform.column_features, strict=True)
        )
        if name in ignored or owner in ignored
    ]


def _training_matrix(
    rows: pd.DataFrame, transform: FeatureTransform, ignored: list[int]
) -> np.ndarray:
    """The transformed rows with ignored columns made constant, so no tree can split on them
    (their contributions are then exactly zero at prediction time, whatever the input)."""
    matrix = transform.transform(rows)
    matrix[:, ignored] = 0.0
    return matrix


def fit_lightgbm(
    fit: pd.DataFrame, validation: pd.DataFrame, params: Hyperparameters
) -> FittedCandidate:
    """Gradient-boosted trees on log price: rounds chosen by early stopping on the validation
    rows, then refitted on all training rows with that many rounds. With `lgb_ensemble_seeds`
    > 1, that many boosters on different seeds are averaged (in log price)."""
    import lightgbm

    started = time.perf_counter()
    derived = tuple(DERIVED) if params.lgb_shape_features else ()
    transform = FeatureTransform.fit(fit, encoding=Encoding.ORDINAL, derived=derived)
    ignored = _ignored_columns(params, transform)
    names = list(transform.column_names)
    fit_set = lightgbm.Dataset(
        _training_matrix(fit, transform, ignored), _log_price(fit), feature_name=names
    )
    validation_matrix = transform.transform(validation)
    validation_set = lightgbm.Dataset(
        _training_matrix(validation, transform, ignored),
        _log_price(validation),
        feature_name=names,
        reference=fit_set,
    )
    seeds = [params.seed + member for member in range(params.lgb_ensemble_seeds)]
    member_rounds: list[int] = []
    validation_log = np.zeros(len(validation))
    for seed in seeds:
        options = {**lightgbm_parameters(params, transform), "seed": seed}
        search = lightgbm.train(
            options,
            fit_set,
            params.lgb_max_rounds,
            valid_sets=[validation_set],
            callbacks=[lightgbm.early_stopping(50, verbose=False)],
        )
        rounds = max(search.best_iteration, 1)
        member_rounds.append(rounds)
        validation_log += np.asarray(search.predict(validation_matrix, num_iteration=rounds))
        del search
    validation_prices = np.exp(validation_log / len(seeds))
    training = pd.concat([fit, validation], ignore_index=True)
    transform = FeatureTransform.fit(training, encoding=Encoding.ORDINAL, derived=derived)
    training_set = lightgbm.Dataset(
        _training_matrix(training, transform, ignored), _log_price(training), feature_name=names
    )
    texts = []
    for seed, rounds in zip(seeds, member_rounds, strict=True):
        options = {**lightgbm_parameters(params, transform), "seed": seed}
        texts.append(lightgbm.train(options, training_set, rounds).model_to_string())
    predictor = LightGBMPredictor(*texts)
    hyper = {
        k: v
        for k, v in lightgbm_parameters(params, transform).items()
        if k not in {"verbose", "num_threads"}
    }
    details: dict[str, object] = {"rounds": sum(member_rounds)}
    if len(seeds) > 1:
        details["member_rounds"] = member_rounds
    if params.lgb_ignore_features:
        details["ignored_features"] = list(params.lgb_ignore_features)
    model = PriceModel(transform, predictor, {"hyperparameters": {**hyper, **details}})
    return FittedCandidate(model, validation_prices, time.perf_counter() - started, details)


def fit_mlp(
    fit: pd.DataFrame, validation: pd.DataFrame, params: Hyperparameters
) -> FittedCandidate:
    """A ReLU MLP in PyTorch on standardised, clipped inputs; the epoch with the best validation
    loss is kept, and its weights are exported to numpy so serving needs no torch."""
    import torch

    started = time.perf_counter()
    torch.set_num_threads(usable_cpus())
    torch.manual_seed(params.seed)
    transform = FeatureTransform.fit(
        fit, encoding=Encoding.ONE_HOT, log_features=LOG_SIZE_FEATURES, standardize=True
    )
    inputs = torch.tensor(transform.transform(fit), dtype=torch.float32)
    target_mean = float(_log_price(fit).mean())
    targets = torch.tensor(_log_price(fit) - target_mean, dtype=torch.float32)[:, None]
    validation_inputs = torch.tensor(transform.transform(validation), dtype=torch.float32)
    validation_targets = torch.tensor(_log_price(validation) - target_mean, dtype=torch.float32)[
        :, None
    ]
    layers: list[torch.nn.Module] = []
    width = inputs.shape[1]
    for hidden in params.mlp_hidden:
        layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    layers.append(torch.nn.Linear(width, 1))
    network = torch.nn.Sequential(*layers)
    optimiser = torch.optim.Adam(network.parameters(), lr=params.mlp_learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=params.mlp_epochs)
    generator = torch.Generator().manual_seed(params.seed)
    best_loss, best_state, best_epoch = np.inf, None, 0
    for epoch in range(params.mlp_epochs):
        network.train()
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), params.mlp_batch_size):
            batch = order[start : start + params.mlp_batch_size]
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(network(inputs[batch]), targets[batch])
            loss.backward()
            optimiser.step()
        schedule.step()
        network.eval()
        with torch.no_grad():
            validation_loss = float(
                torch.nn.functional.mse_loss(network(validation_inputs), validation_targets)
            )
        if validation_loss < best_loss:
            best_loss, best_epoch = validation_loss, epoch + 1
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    assert best_state is not None
    network.load_state_dict(best_state)
    linear_layers = [m for m in network if isinstance(m, torch.nn.Linear)]
    weights = tuple(m.weight.detach().double().numpy().copy() for m in linear_layers)
    biases = [m.bias.detach().double().numpy().copy() for m in linear_layers]
    biases[-1] = biases[-1] + target_mean
    reference = transform.transform(fit).mean(axis=0)
    predictor = MLPPredictor(weights, tuple(biases), reference)
    model = PriceModel(
        transform,
        predictor,
        {"hyperparameters": {"hidden": list(params.mlp_hidden), "epochs": best_epoch}},
    )
    validation_prices = model.predict(validation)
    return FittedCandidate(
        model, validation_prices, time.perf_counter() - started, {"best_epoch": best_epoch}
    )


FITTERS: dict[str, Callable[[pd.DataFrame, pd.DataFrame, Hyperparameters], FittedCandidate]] = {
    "linear": fit_linear,
    "tree": fit_tree,
    "lightgbm": fit_lightgbm,
    "mlp": fit_mlp,
}

__all__ = ["FEATURE_NAMES", "FITTERS", "FittedCandidate"]
