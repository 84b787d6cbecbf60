"""The approval gate: absolute floors, then "beats production on the same holdout by a margin"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.settings import GatePolicy


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str


def decide(
    candidate: dict[str, Any],
    production: dict[str, Any] | None,
    policy: GatePolicy,
    *,
    production_version: int | None = None,
) -> Decision:
    """Approve only if the candidate passes every floor and beats production by the margin.

    `candidate` and `production` are holdout metrics (mape as a fraction, rmse in USD, r2).
    """
    failures = []
    if candidate["mape"] > policy.max_mape:
        failures.append(f"MAPE {candidate['mape']:.2%} is above the floor {policy.max_mape:.2%}")
    if candidate["rmse"] > policy.max_rmse:
        failures.append(
            f"RMSE {candidate['rmse']:.0f} USD is above the floor {policy.max_rmse:.0f}"
        )
    if candidate["r2"] < policy.min_r2:
        failures.append(f"R² {candidate['r2']:.4f} is below the floor {policy.min_r2:.4f}")
    if failures:
        return Decision(False, "Rejected: " + "; ".join(failures) + ".")
    if production is None:
        return Decision(
            True,
            f"Approved: first model (empty registry); MAPE {candidate['mape']:.2%}, "
            f"RMSE {candidate['rmse']:.0f} USD, R² {candidate['r2']:.4f} pass the floors.",
        )
    name = f"production v{production_version}" if production_version else "production"
    improvement = production["mape"] - candidate["mape"]
    comparison = f"MAPE {candidate['mape']:.2%} vs {name} {production['mape']:.2%}"
    if improvement < policy.min_mape_improvement:
        return Decision(
            False,
            f"Rejected: {comparison} on the frozen holdout; needs to be at least "
            f"{policy.min_mape_improvement * 100:.2f} points better.",
        )
    return Decision(
        True,
        f"Approved: {comparison} on the frozen holdout "
        f"({improvement * 100:.2f} points better; RMSE {candidate['rmse']:.0f} vs "
        f"{production['rmse']:.0f} USD).",
    )
