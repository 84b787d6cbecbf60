"""Training hyperparameters, parsed from the strings SageMaker passes in hyperparameters.json."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

from contracts.schema import FEATURE_NAMES
from training.features import DERIVED

CANDIDATES: Final = ("linear", "tree", "lightgbm", "mlp")
DEFAULT_CANDIDATES: Final = ("linear", "tree", "lightgbm")


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or its value cannot be used."""


@dataclass(frozen=True)
class Hyperparameters:
    models: tuple[str, ...] = DEFAULT_CANDIDATES
    seed: int = 42
    # Chosen by the frontier search (benchmarks/bench_model_frontier.py, docs/model-card.md): the
    # best validation MAPE whose one price with its exact explanation has p99 <= 5 ms and whose
    # 5,000 explained rows take <= 10 s on the serving Lambda's one CPU.
    lgb_learning_rate: float = 0.1163
    lgb_num_leaves: int = 65
    lgb_max_depth: int = 6
    lgb_max_rounds: int = 2000
    lgb_max_bin: int = 255
    lgb_min_child_samples: int = 19
    lgb_monotone: bool = True
    lgb_shape_features: bool = True
    lgb_lambda_l2: float = 6.73
    lgb_feature_fraction: float = 0.874
    lgb_bagging_fraction: float = 0.873
    # Several boosters on different seeds, averaged: explanations stay exact (SHAP is linear).
    lgb_ensemble_seeds: int = 1
    # Columns the boosters may not split on (feature selection): schema or derived column names.
    # x is carried by carat, y and the shape ratios; dropping it did not cost validation MAPE.
    lgb_ignore_features: tuple[str, ...] = ("x",)
    tree_max_depths: tuple[int, ...] = (10, 14, 18)
    mlp_hidden: tuple[int, ...] = (64, 64)
    mlp_epochs: int = 60
    mlp_learning_rate: float = 0.003
    mlp_batch_size: int = 256
    extra: dict[str, str] = field(default_factory=dict)

    def to_strings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        return out


def _parse(name: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return lowered in {"true", "1", "yes"}
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            items = [item.strip() for item in text.split(",") if item.strip()]
            if default and isinstance(default[0], int):
                return tuple(int(item) for item in items)
            return tuple(items)
    except ValueError:
        kind = type(default).__name__ if not isinstance(default, tuple) else "comma-separated list"
        raise HyperparameterError(f"hyperparameter {name}={text!r} is not a valid {kind}") from None
    return text


def parse_hyperparameters(raw: dict[str, str]) -> Hyperparameters:
    """Typed hyperparameters; a bad value fails with a message naming the hyperparameter."""
    defaults = Hyperparameters()
    known = {f.name for f in fields(Hyperparameters)} - {"extra"}
    values: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for name, text in raw.items():
        if name in known:
            values[name] = _parse(name, str(text), getattr(defaults, name))
        elif name.startswith("sagemaker_") or name.startswith("_"):
            extra[name] = str(text)  # set by SageMaker itself, not ours to interpret
        else:
            raise HyperparameterError(
                f"unknown hyperparameter {name!r}; known: {', '.join(sorted(known))}"
            )
    params = Hyperparameters(**values, extra=extra)
    if params.models == ("all",):
        params = Hyperparameters(**{**values, "models": CANDIDATES}, extra=extra)
    unknown = [m for m in params.models if m not in CANDIDATES]
    if unknown or not params.models:
        raise HyperparameterError(
            f"hyperparameter models={','.join(params.models)!r}: "
            f"choose from {', '.join(CANDIDATES)} or all"
        )
    positive = {
        "lgb_learning_rate": params.lgb_learning_rate,
        "lgb_num_leaves": params.lgb_num_leaves,
        "lgb_max_rounds": params.lgb_max_rounds,
        "lgb_max_bin": params.lgb_max_bin,
        "lgb_max_depth": params.lgb_max_depth,
        "lgb_min_child_samples": params.lgb_min_child_samples,
        "lgb_feature_fraction": params.lgb_feature_fraction,
        "lgb_bagging_fraction": params.lgb_bagging_fraction,
        "lgb_ensemble_seeds": params.lgb_ensemble_seeds,
        "mlp_epochs": params.mlp_epochs,
        "mlp_learning_rate": params.mlp_learning_rate,
        "mlp_batch_size": params.mlp_batch_size,
    }
    for name, value in positive.items():
        if not value > 0:
            raise HyperparameterError(f"hyperparameter {name}={value} must be greater than 0")
    for name in ("lgb_feature_fraction", "lgb_bagging_fraction"):
        if getattr(params, name) > 1:
            raise HyperparameterError(f"hyperparameter {name}={getattr(params, name)} is above 1")
    if params.lgb_lambda_l2 < 0:
        raise HyperparameterError(
            f"hyperparameter lgb_lambda_l2={params.lgb_lambda_l2} must not be negative"
        )
    selectable = (*FEATURE_NAMES, *DERIVED)
    unknown_columns = [name for name in params.lgb_ignore_features if name not in selectable]
    if unknown_columns:
        raise HyperparameterError(
            f"hyperparameter lgb_ignore_features names unknown columns {unknown_columns}; "
            f"choose from {', '.join(selectable)}"
        )
    if params.lgb_num_leaves < 2:
        raise HyperparameterError("hyperparameter lgb_num_leaves must be at least 2")
    return params
