"""Load a model artifact and price diamonds with it, using numpy (and lightgbm) only.

Every model family predicts log price as a base value plus one additive contribution per input
column; `PriceModel` maps those columns back to the schema's features. Nothing here fits a model,
so serving can import this module without pandas, scikit-learn or torch.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from contracts.compute import usable_cpus
from contracts.schema import FEATURE_NAMES, SCHEMA_VERSION
from training.features import SEPARATOR, Columns, FeatureTransform

ARTIFACT_FORMAT: Final = 1
METADATA_FILE: Final = "metadata.json"
LIGHTGBM_FILE: Final = "model.txt"
ENSEMBLE_MEMBER_SEPARATOR: Final = "\n# facet: next ensemble member\n"
WEIGHTS_FILE: Final = "weights.npz"


class ArtifactError(Exception):
    """A model artifact is incomplete, corrupted, or written for another schema."""


class Predictor(Protocol):
    @property
    def family(self) -> str: ...

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(base per row, contribution per row and input column), in log-price space."""
        ...

    def predict_log(self, matrix: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path) -> list[str]:
        """Write the model's files into `directory`; return their names."""
        ...


@dataclass(frozen=True)
class LinearPredictor:
    """log price = intercept + coef . x; contribution of column j = coef_j (x_j - mean_j)."""

    coef: np.ndarray
    intercept: float
    reference: np.ndarray
    family: str = "linear"

    def predict_log(self, matrix: np.ndarray) -> np.ndarray:
        return matrix @ self.coef + self.intercept

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base = self.intercept + float(self.reference @ self.coef)
        return np.full(len(matrix), base), (matrix - self.reference) * self.coef

    def save(self, directory: Path) -> list[str]:
        np.savez(
            directory / WEIGHTS_FILE,
            coef=self.coef,
            intercept=np.array([self.intercept]),
            reference=self.reference,
        )
        return [WEIGHTS_FILE]

    @classmethod
    def load(cls, directory: Path) -> LinearPredictor:
        with np.load(directory / WEIGHTS_FILE) as weights:
            return cls(weights["coef"], float(weights["intercept"][0]), weights["reference"])


@dataclass(frozen=True)
class TreePredictor:
    """One regression tree as arrays (scikit-learn's layout); contributions follow the path.

    Each split on the way from root to leaf moves the prediction from the parent's mean to the
    child's; that move is credited to the split's feature (Saabas). The root mean plus the moves
    is exactly the leaf value, so the explanation reconstructs the prediction exactly.
    """

    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    family: str = "tree"

    def _walk(self, matrix: np.ndarray, with_contributions: bool) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(matrix))
        node = np.zeros(len(matrix), dtype=np.int64)
        contributions = np.zeros(matrix.shape) if with_contributions else np.zeros((0, 0))
        active = self.children_left[node] >= 0
        while active.any():
            at = node[active]
            go_left = matrix[rows[active], self.feature[at]] <= self.threshold[at]
            child = np.where(go_left, self.children_left[at], self.children_right[at])
            if with_contributions:
                np.add.at(
                    contributions,
                    (rows[active], self.feature[at]),
                    self.value[child] - self.value[at],
                )
            node[active] = child
            active = self.children_left[node] >= 0
        return self.value[node], contributions

    def predict_log(self, matrix: np.ndarray) -> np.ndarray:
        return self._walk(matrix, with_contributions=False)[0]

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, contributions = self._walk(matrix, with_contributions=True)
        return np.full(len(matrix), float(self.value[0])), contributions

    def save(self, directory: Path) -> list[str]:
        np.savez(
            directory / WEIGHTS_FILE,
            children_left=self.children_left,
            children_right=self.children_right,
            feature=self.feature,
            threshold=self.threshold,
            value=self.value,
        )
        return [WEIGHTS_FILE]

    @classmethod
    def load(cls, directory: Path) -> TreePredictor:
        with np.load(directory / WEIGHTS_FILE) as w:
            return cls(
                w["children_left"], w["children_right"], w["feature"], w["threshold"], w["value"]
            )


class LightGBMPredictor:
    """A LightGBM booster, or several averaged (an ensemble of seeds); contributions are exact
    TreeSHAP values (`pred_contrib`). SHAP values are linear in the model, so the average of the
    members' values is the ensemble's exact explanation and still adds up to its prediction."""

    family = "lightgbm"

    def __init__(self, *model_texts: str) -> None:
        import lightgbm

        if not model_texts:
            raise ValueError("a LightGBM predictor needs at least one booster")
        self.model_texts = model_texts
        self.boosters = [lightgbm.Booster(model_str=text) for text in model_texts]
        # LightGBM boosters are not safe to share across threads while predicting.
        self._lock = threading.Lock()

    def _predict(self, matrix: np.ndarray, **options: Any) -> np.ndarray:
        # threads cost more than they save on few rows; never more than the CPUs usable
        threads = 1 if len(matrix) < 256 else usable_cpus()
        with self._lock:
            total = np.asarray(self.boosters[0].predict(matrix, num_threads=threads, **options))
            for booster in self.boosters[1:]:
                total = total + booster.predict(matrix, num_threads=threads, **options)
        return total / len(self.boosters) if len(self.boosters) > 1 else total

    def predict_log(self, matrix: np.ndarray) -> np.ndarray:
        return self._predict(matrix)

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shap = self._predict(matrix, pred_contrib=True)
        return shap[:, -1], shap[:, :-1]

    def save(self, directory: Path) -> list[str]:
        (directory / LIGHTGBM_FILE).write_text(ENSEMBLE_MEMBER_SEPARATOR.join(self.model_texts))
        return [LIGHTGBM_FILE]

    @classmethod
    def load(cls, directory: Path) -> LightGBMPredictor:
        # One file (so its sha256 in the metadata covers every member); LightGBM's own text
        # format never contains the separator line.
        return cls(*(directory / LIGHTGBM_FILE).read_text().split(ENSEMBLE_MEMBER_SEPARATOR))


@dataclass(frozen=True)
class MLPPredictor:
    """A ReLU multilayer perceptron exported from PyTorch as numpy weights.

    Contributions use DeepLIFT's rescale rule against a reference input (the training mean):
    each ReLU passes on delta-output / delta-input, so the contributions sum exactly to
    f(x) - f(reference), with no sampling or integration error.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    reference: np.ndarray
    family: str = "mlp"

    def _layers(self, matrix: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        pre_activations = []
        hidden = matrix
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            pre = hidden @ weight.T + bias
            pre_activations.append(pre)
            hidden = np.maximum(pre, 0.0)
        output = hidden @ self.weights[-1].T + self.biases[-1]
        return pre_activations, output[:, 0]

    def predict_log(self, matrix: np.ndarray) -> np.ndarray:
        return self._layers(matrix)[1]

    def contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reference = self.reference[None, :]
        pre_x, _ = self._layers(matrix)
        pre_ref, base = self._layers(reference)
        # multiplier[i] maps a change of layer input i to a change of the output, per row.
        multiplier = np.broadcast_to(self.weights[-1], (len(matrix), self.weights[-1].shape[1]))
        for layer in range(len(pre_x) - 1, -1, -1):
            delta_in = pre_x[layer] - pre_ref[layer]
            delta_out = np.maximum(pre_x[layer], 0.0) - np.maximum(pre_ref[layer], 0.0)
            gradient = (pre_x[layer] > 0).astype(np.float64)
            safe = np.abs(delta_in) > 1e-12
            rescale = np.where(safe, delta_out / np.where(safe, delta_in, 1.0), gradient)
            multiplier = (multiplier * rescale) @ self.weights[layer]
        contributions = multiplier * (matrix - reference)
        return np.full(len(matrix), float(base[0])), contributions

    def save(self, directory: Path) -> list[str]:
        arrays = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        arrays |= {f"bias_{i}": b for i, b in enumerate(self.biases)}
        np.savez(directory / WEIGHTS_FILE, reference=self.reference, **arrays)  # type: ignore[arg-type]
        return [WEIGHTS_FILE]

    @classmethod
    def load(cls, directory: Path) -> MLPPredictor:
        with np.load(directory / WEIGHTS_FILE) as w:
            layers = sum(1 for key in w.files if key.startswith("weight_"))
            return cls(
                tuple(w[f"weight_{i}"] for i in range(layers)),
                tuple(w[f"bias_{i}"] for i in range(layers)),
                w["reference"],
            )


PREDICTORS: Final[dict[str, Any]] = {
    "linear": LinearPredictor,
    "tree": TreePredictor,
    "lightgbm": LightGBMPredictor,
    "mlp": MLPPredictor,
}


@dataclass(frozen=True)
class FeatureContributions:
    """Per row: log price = base + sum of contributions, one per schema feature."""

    base: np.ndarray
    by_feature: np.ndarray
    feature_names: tuple[str, ...]

    @property
    def log_price(self) -> np.ndarray:
        return self.base + self.by_feature.sum(axis=1)


class PriceModel:
    """A loaded artifact: the fitted transform, the predictor and the metadata written with them."""

    def __init__(
        self, transform: FeatureTransform, predictor: Predictor, metadata: dict[str, Any]
    ) -> None:
        self.transform = transform
        self.predictor = predictor
        self.metadata = metadata
        # Column -> feature weights: 1 for a feature's own columns; a derived column (owners joined
        # by SEPARATOR) is shared equally, so contributions still sum to the prediction.
        self._column_to_feature = np.zeros((len(transform.column_features), len(FEATURE_NAMES)))
        for column, owners in enumerate(transform.column_features):
            parents = owners.split(SEPARATOR)
            for parent in parents:
                self._column_to_feature[column, FEATURE_NAMES.index(parent)] = 1.0 / len(parents)

    @property
    def family(self) -> str:
        return self.predictor.family

    def predict_log(self, rows: Columns) -> np.ndarray:
        return self.predictor.predict_log(self.transform.transform(rows))

    def predict(self, rows: Columns) -> np.ndarray:
        """Prices in USD."""
        return np.exp(self.predict_log(rows))

    def contributions(self, rows: Columns) -> FeatureContributions:
        base, by_column = self.predictor.contributions(self.transform.transform(rows))
        return FeatureContributions(base, by_column @ self._column_to_feature, FEATURE_NAMES)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        files = self.predictor.save(directory)
        metadata = dict(self.metadata)
        metadata["artifact_format"] = ARTIFACT_FORMAT
        metadata["schema_version"] = SCHEMA_VERSION
        metadata["model_family"] = self.family
        metadata["features"] = list(FEATURE_NAMES)
        metadata["transform"] = self.transform.to_dict()
        metadata["files"] = {name: _sha256(directory / name) for name in files}
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(directory: Path) -> PriceModel:
    """Load an artifact directory; refuse one that is incomplete, altered or for another schema."""
    metadata_path = directory / METADATA_FILE
    if not metadata_path.exists():
        raise ArtifactError(f"{directory}: no {METADATA_FILE}; not a Facet model artifact")
    metadata = json.loads(metadata_path.read_text())
    if str(metadata.get("schema_version")) != SCHEMA_VERSION:
        raise ArtifactError(
            f"{directory}: written for schema version {metadata.get('schema_version')}, "
            f"this code serves schema version {SCHEMA_VERSION}"
        )
    if metadata.get("artifact_format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"{directory}: unknown artifact format {metadata.get('artifact_format')}"
        )
    for name, expected in metadata.get("files", {}).items():
        if not (directory / name).exists():
            raise ArtifactError(f"{directory}: {name} is missing")
        if _sha256(directory / name) != expected:
            raise ArtifactError(f"{directory}: {name} does not match its recorded sha256")
    family = metadata.get("model_family")
    if family not in PREDICTORS:
        raise ArtifactError(f"{directory}: unknown model family {family!r}")
    predictor = PREDICTORS[family].load(directory)
    return PriceModel(FeatureTransform.from_dict(metadata["transform"]), predictor, metadata)
