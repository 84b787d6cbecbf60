"""One evaluation for every model: holdout metrics, overall and per price decile; a leaderboard."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Metrics:
    rows: int
    rmse: float
    mae: float
    mape: float
    r2: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> Metrics:
    """Metrics in USD; MAPE as a fraction (0.06 = 6%)."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    error = predicted - actual
    total = float(np.sum((actual - actual.mean()) ** 2))
    return Metrics(
        rows=len(actual),
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        mape=float(np.mean(np.abs(error) / actual)),
        r2=1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan"),
    )


def decile_metrics(actual: np.ndarray, predicted: np.ndarray) -> list[dict[str, Any]]:
    """Errors within each tenth of the actual price distribution, cheapest first."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    edges = np.quantile(actual, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, actual, side="right") - 1, 0, 9)
    rows = []
    for d in range(10):
        mask = decile == d
        if not mask.any():
            continue
        m = regression_metrics(actual[mask], predicted[mask])
        rows.append(
            {
                "decile": d + 1,
                "price_from": float(edges[d]),
                "price_to": float(edges[d + 1]),
                "rows": m.rows,
                "mape": m.mape,
                "mae": m.mae,
                "rmse": m.rmse,
            }
        )
    return rows


def interval_coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    return float(np.mean((actual >= low) & (actual <= high)))


@dataclass
class LeaderboardEntry:
    family: str
    validation: Metrics
    holdout: Metrics
    fit_seconds: float
    selected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "validation": self.validation.to_dict(),
            "holdout": self.holdout.to_dict(),
            "fit_seconds": self.fit_seconds,
            "selected": self.selected,
        }


def write_leaderboard(entries: list[LeaderboardEntry], directory: Path) -> tuple[Path, Path]:
    """leaderboard.json and leaderboard.md, best validation MAPE first."""
    ranked = sorted(entries, key=lambda e: e.validation.mape)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "leaderboard.json"
    json_path.write_text(json.dumps([e.to_dict() for e in ranked], indent=2))
    lines = [
        "| model | selected | validation MAPE | holdout MAPE | holdout RMSE (USD) | "
        "holdout MAE (USD) | holdout R² | fit (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in ranked:
        lines.append(
            f"| {e.family} | {'yes' if e.selected else ''} | {e.validation.mape:.2%} | "
            f"{e.holdout.mape:.2%} | {e.holdout.rmse:.0f} | {e.holdout.mae:.0f} | "
            f"{e.holdout.r2:.4f} | {e.fit_seconds:.1f} |"
        )
    md_path = directory / "leaderboard.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
