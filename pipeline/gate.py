"""The approval gate: absolute floors, then "beats production on the same holdout by a margin"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.settings import GatePolicy

FROZEN = "the frozen holdout"


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
    holdout: str = FROZEN,
) -> Decision:
    """Approve only if the candidate passes every floor and beats production by the margin.

    `candidate` and `production` are metrics on the same holdout (mape as a fraction, rmse in
    USD, r2); `holdout` names it in the reason.
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
        return Decision(False, "Rejected: " + "; ".join(failures) + f" (on {holdout}).")
    if production is None:
        return Decision(
            True,
            f"Approved: first model (empty registry); MAPE {candidate['mape']:.2%}, "
            f"RMSE {candidate['rmse']:.0f} USD, R² {candidate['r2']:.4f} pass the floors "
            f"(on {holdout}).",
        )
    name = f"production v{production_version}" if production_version else "production"
    improvement = production["mape"] - candidate["mape"]
    # Exact figures: rounded to two decimals, 6.18 % vs 6.23 % would look like a 0.05-point win.
    comparison = f"MAPE {candidate['mape']:.3%} vs {name} {production['mape']:.3%} on {holdout}"
    needed = policy.min_mape_improvement * 100
    if improvement < policy.min_mape_improvement:
        verb = "better" if improvement >= 0 else "worse"
        return Decision(
            False,
            f"Rejected: {comparison}: {abs(improvement) * 100:.3f} points {verb}; needs to be at "
            f"least {needed:.3f} points better.",
        )
    return Decision(
        True,
        f"Approved: {comparison}: {improvement * 100:.3f} points better (needs {needed:.3f}); "
        f"RMSE {candidate['rmse']:.0f} vs {production['rmse']:.0f} USD.",
    )
