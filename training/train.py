"""Train every requested candidate, select on validation rows, evaluate on the frozen holdout."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from contracts.names import TRAINING_METRIC_PREFIX
from contracts.schema import LABEL_NAME
from contracts.version import code_version
from training.candidates import FITTERS
from training.data import content_hash, load_classic
from training.evaluate import (
    LeaderboardEntry,
    decile_metrics,
    interval_coverage,
    regression_metrics,
    write_leaderboard,
)
from training.hyperparameters import Hyperparameters
from training.predict import PriceModel
from training.split import (
    ROW_HASH_COLUMN,
    HoldoutManifest,
    assert_disjoint,
    split_holdout,
    split_validation,
    with_row_hashes,
)
from training.validate import ValidationReport, validate_frame

log = logging.getLogger(__name__)
INTERVAL_QUANTILES: Final = (0.1, 0.9)


@dataclass
class TrainingOutcome:
    model: PriceModel
    leaderboard: list[LeaderboardEntry]
    dataset_hash: str
    holdout_hash: str
    notes: dict[str, Any] = field(default_factory=dict)

    def save(self, model_dir: Path, report_dir: Path | None = None) -> None:
        self.model.save(model_dir)
        if report_dir is not None:
            write_leaderboard(self.leaderboard, report_dir)


@dataclass(frozen=True)
class CandidateResult:
    """One fitted candidate, as train_and_evaluate hands it to an observer (e.g. tracking)."""

    entry: LeaderboardEntry
    model: PriceModel
    holdout_prices: np.ndarray
    holdout_predictions: np.ndarray


@dataclass
class ClassicSplit:
    training: pd.DataFrame
    holdout: pd.DataFrame
    manifest: HoldoutManifest
    report: ValidationReport


def prepare_classic() -> ClassicSplit:
    """Validate the shipped classic data and split it into training rows and the frozen holdout.

    Each caller gets its own copy: the split is computed once per process (1.4 s; seeding the
    lake, simulating batches and the demo's bad candidate each ask for it)."""
    return copy.deepcopy(_classic_split())


@functools.cache
def _classic_split() -> ClassicSplit:
    validated = validate_frame(load_classic(), source="classic diamonds.csv")
    training, holdout, manifest = split_holdout(validated.accepted.drop(columns=["row"]))
    return ClassicSplit(training, holdout, manifest, validated.report)


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """Lines SageMaker metric definitions can parse, e.g. `facet-metric holdout_mape=0.0601;`."""
    lines = []
    for scope in ("holdout", "validation"):
        for name, value in metrics[scope].items():
            if name != "rows":
                lines.append(f"{TRAINING_METRIC_PREFIX} {scope}_{name}={value:.6f};")
    return lines


def train_and_evaluate(
    training_rows: pd.DataFrame,
    holdout: pd.DataFrame,
    params: Hyperparameters,
    *,
    sources: list[str] | None = None,
    progress: Callable[[str], None] = log.info,
    on_candidate: Callable[[CandidateResult], None] | None = None,
) -> TrainingOutcome:
    training_rows = with_row_hashes(training_rows)
    holdout = with_row_hashes(holdout)
    holdout_manifest = HoldoutManifest(
        "given",
        0,
        len(holdout),
        content_hash(holdout[ROW_HASH_COLUMN]),
        frozenset(holdout[ROW_HASH_COLUMN]),
    )
    assert_disjoint(training_rows, holdout_manifest)
    fit, validation = split_validation(training_rows)
    progress(
        f"training on {len(training_rows)} rows ({len(fit)} fit + {len(validation)} validation), "
        f"holdout {len(holdout)} rows"
    )
    holdout_prices = holdout[LABEL_NAME].to_numpy()
    validation_prices = validation[LABEL_NAME].to_numpy()
    entries: list[LeaderboardEntry] = []
    fitted_models: dict[str, PriceModel] = {}
    validation_predictions: dict[str, np.ndarray] = {}
    for family in params.models:
        progress(f"fitting {family} ...")
        fitted = FITTERS[family](fit, validation, params)
        holdout_predictions = fitted.model.predict(holdout)
        holdout_metrics = regression_metrics(holdout_prices, holdout_predictions)
        validation_metrics = regression_metrics(validation_prices, fitted.validation_prices)
        entry = LeaderboardEntry(family, validation_metrics, holdout_metrics, fitted.fit_seconds)
        entries.append(entry)
        fitted_models[family] = fitted.model
        validation_predictions[family] = fitted.validation_prices
        progress(
            f"  {family}: validation MAPE {validation_metrics.mape:.2%}, holdout MAPE "
            f"{holdout_metrics.mape:.2%}, RMSE {holdout_metrics.rmse:.0f}, "
            f"R² {holdout_metrics.r2:.4f} "
            f"({fitted.fit_seconds:.1f} s)"
        )
        if on_candidate is not None:
            on_candidate(CandidateResult(entry, fitted.model, holdout_prices, holdout_predictions))
    best = min(entries, key=lambda e: e.validation.mape)
    best.selected = True
    model = fitted_models[best.family]
    predicted_holdout = model.predict(holdout)
    residuals = np.log(validation_prices / validation_predictions[best.family])
    low, high = (float(q) for q in np.quantile(residuals, INTERVAL_QUANTILES))
    metrics: dict[str, Any] = {
        "holdout": best.holdout.to_dict(),
        "validation": best.validation.to_dict(),
        "holdout_deciles": decile_metrics(holdout_prices, predicted_holdout),
        "holdout_interval_coverage": interval_coverage(
            holdout_prices, predicted_holdout * np.exp(low), predicted_holdout * np.exp(high)
        ),
    }
    dataset_hash = content_hash(training_rows[ROW_HASH_COLUMN])
    model.metadata.update(
        {
            "metrics": metrics,
            "interval": {"quantiles": list(INTERVAL_QUANTILES), "log_low": low, "log_high": high},
            "dataset_hash": dataset_hash,
            "dataset_sources": sources or [],
            "holdout_hash": holdout_manifest.holdout_hash,
            "training_rows": len(training_rows),
            "code_version": code_version(),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "leaderboard": [e.to_dict() for e in entries],
        }
    )
    progress(f"selected {best.family} (lowest validation MAPE)")
    return TrainingOutcome(model, entries, dataset_hash, holdout_manifest.holdout_hash)
