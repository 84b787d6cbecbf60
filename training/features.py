"""The feature transform, fitted on training rows and saved inside the model artifact.

Serving loads the same transform from the artifact, so it cannot drift from training. Only numpy
is needed to apply it (no pandas, scikit-learn or torch), which keeps the serving Lambda small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from contracts.schema import FEATURES, NUMERIC_FEATURES, OrdinalFeature


class Columns(Protocol):
    """Anything that gives a column by feature name: a dict of lists, or a pandas DataFrame."""

    def __getitem__(self, key: str, /) -> Any: ...


# A derived column's owners: its contribution is shared equally among them in explanations.
SEPARATOR = "|"
# Shape of the stone from its measured dimensions: how round it is, and how deep relative to its
# width (the `depth` column is recorded separately and is sometimes inconsistent with x, y, z).
DERIVED: dict[str, tuple[tuple[str, ...], Callable[[dict[str, np.ndarray]], np.ndarray]]] = {
    "x_over_y": (("x", "y"), lambda v: v["x"] / v["y"]),
    "z_over_mean_xy": (("x", "y", "z"), lambda v: v["z"] / ((v["x"] + v["y"]) / 2.0)),
}


class Encoding(StrEnum):
    ORDINAL = "ordinal"  # grades as their rank: what trees want, and monotone constraints need
    ONE_HOT = (
        "one_hot"  # grades as indicator columns (first level dropped): what linear models want
    )


@dataclass(frozen=True)
class FeatureTransform:
    """Clip numerics to the training range, optionally log them, encode grades, optionally scale.

    Clipping to the range seen in training keeps every prediction finite on inputs the schema
    allows but training never saw (an MLP extrapolates wildly otherwise).
    """

    encoding: Encoding
    log_features: tuple[str, ...]
    lower: dict[str, float]
    upper: dict[str, float]
    column_names: tuple[str, ...]
    column_features: tuple[str, ...]
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    derived: tuple[str, ...] = ()

    @classmethod
    def fit(
        cls,
        rows: Columns,
        *,
        encoding: Encoding,
        log_features: Sequence[str] = (),
        standardize: bool = False,
        derived: Sequence[str] = (),
    ) -> FeatureTransform:
        lower = {
            f.name: float(np.min(np.asarray(rows[f.name], dtype=float))) for f in NUMERIC_FEATURES
        }
        upper = {
            f.name: float(np.max(np.asarray(rows[f.name], dtype=float))) for f in NUMERIC_FEATURES
        }
        names, owners = _layout(encoding, tuple(log_features))
        names += tuple(derived)
        owners += tuple(SEPARATOR.join(DERIVED[name][0]) for name in derived)
        unscaled = cls(
            encoding, tuple(log_features), lower, upper, names, owners, derived=tuple(derived)
        )
        if not standardize:
            return unscaled
        matrix = unscaled.transform(rows)
        scale = matrix.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(
            encoding,
            tuple(log_features),
            lower,
            upper,
            names,
            owners,
            tuple(float(v) for v in matrix.mean(axis=0)),
            tuple(float(v) for v in scale),
            tuple(derived),
        )

    def transform(self, rows: Columns) -> np.ndarray:
        """A float64 matrix, one column per `column_names`; `rows` maps feature names to columns."""
        blocks: list[np.ndarray] = []
        clipped: dict[str, np.ndarray] = {}
        for feature in FEATURES:
            if isinstance(feature, OrdinalFeature):
                blocks.append(self._encode_ordinal(feature, rows[feature.name]))
                continue
            values = np.clip(
                np.asarray(rows[feature.name], dtype=np.float64),
                self.lower[feature.name],
                self.upper[feature.name],
            )
            clipped[feature.name] = values
            if feature.name in self.log_features:
                values = np.log(values)
            blocks.append(values[:, None])
        for name in self.derived:
            blocks.append(DERIVED[name][1](clipped)[:, None])
        matrix = np.hstack(blocks)
        if self.mean is not None and self.scale is not None:
            matrix = (matrix - np.asarray(self.mean)) / np.asarray(self.scale)
        return matrix

    def _encode_ordinal(
        self, feature: OrdinalFeature, values: Sequence[Any] | np.ndarray
    ) -> np.ndarray:
        ranks = {level: rank for rank, level in enumerate(feature.levels)}
        codes = np.fromiter((ranks[value] for value in values), dtype=np.int64, count=len(values))
        if self.encoding is Encoding.ORDINAL:
            return codes.astype(np.float64)[:, None]
        indicators = np.zeros((len(codes), len(feature.levels) - 1))
        present = codes > 0
        indicators[np.flatnonzero(present), codes[present] - 1] = 1.0
        return indicators

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureTransform:
        return cls(
            encoding=Encoding(data["encoding"]),
            log_features=tuple(data["log_features"]),
            lower={k: float(v) for k, v in data["lower"].items()},
            upper={k: float(v) for k, v in data["upper"].items()},
            column_names=tuple(data["column_names"]),
            column_features=tuple(data["column_features"]),
            mean=tuple(data["mean"]) if data.get("mean") is not None else None,
            scale=tuple(data["scale"]) if data.get("scale") is not None else None,
            derived=tuple(data.get("derived", ())),
        )


def _layout(
    encoding: Encoding, log_features: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names: list[str] = []
    owners: list[str] = []
    for feature in FEATURES:
        if isinstance(feature, OrdinalFeature) and encoding is Encoding.ONE_HOT:
            for level in feature.levels[1:]:
                names.append(f"{feature.name}={level}")
                owners.append(feature.name)
            continue
        prefix = "log_" if feature.name in log_features else ""
        names.append(prefix + feature.name)
        owners.append(feature.name)
    return tuple(names), tuple(owners)
