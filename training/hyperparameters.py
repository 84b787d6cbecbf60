"""Training hyperparameters, parsed from the strings SageMaker passes in hyperparameters.json."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

CANDIDATES: Final = ("linear", "tree", "lightgbm", "mlp")
DEFAULT_CANDIDATES: Final = ("linear", "tree", "lightgbm")


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or its value cannot be used."""


@dataclass(frozen=True)
class Hyperparameters:
    models: tuple[str, ...] = DEFAULT_CANDIDATES
    seed: int = 42
    lgb_learning_rate: float = 0.1
    lgb_num_leaves: int = 31
    lgb_max_depth: int = 5
    lgb_max_rounds: int = 600
    lgb_max_bin: int = 1023
    lgb_min_child_samples: int = 20
    lgb_monotone: bool = True
    lgb_shape_features: bool = True
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
        "mlp_epochs": params.mlp_epochs,
        "mlp_learning_rate": params.mlp_learning_rate,
        "mlp_batch_size": params.mlp_batch_size,
    }
    for name, value in positive.items():
        if not value > 0:
            raise HyperparameterError(f"hyperparameter {name}={value} must be greater than 0")
    if params.lgb_num_leaves < 2:
        raise HyperparameterError("hyperparameter lgb_num_leaves must be at least 2")
    return params
