from __future__ import annotations

from contracts.settings import GatePolicy
from pipeline.gate import decide

POLICY = GatePolicy(max_mape=0.08, max_rmse=700, min_r2=0.97, min_mape_improvement=0.0005)
GOOD = {"mape": 0.062, "rmse": 515.0, "r2": 0.983}


def test_gate_empty_registry_approves_a_model_that_passes_the_floors() -> None:
    decision = decide(GOOD, None, POLICY)
    assert decision.approve
    assert "first model" in decision.reason


def test_gate_floor_failure_rejects_even_with_empty_registry() -> None:
    decision = decide({"mape": 0.125, "rmse": 990.0, "r2": 0.937}, None, POLICY)
    assert not decision.approve
    assert "MAPE 12.50% is above the floor 8.00%" in decision.reason
    assert "R² 0.9370 is below the floor 0.9700" in decision.reason


def test_gate_rejects_a_candidate_that_does_not_beat_production_by_the_margin() -> None:
    decision = decide(
        {"mape": 0.0613, "rmse": 512.0, "r2": 0.983},
        {"mape": 0.0610, "rmse": 510.0, "r2": 0.983},
        POLICY,
        production_version=3,
    )
    assert not decision.approve
    assert decision.reason.startswith(
        "Rejected: MAPE 6.130% vs production v3 6.100% on the frozen holdout: 0.030 points worse"
    )


def test_gate_approves_a_candidate_better_by_the_margin() -> None:
    decision = decide(
        {"mape": 0.0600, "rmse": 505.0, "r2": 0.984},
        {"mape": 0.0610, "rmse": 510.0, "r2": 0.983},
        POLICY,
        production_version=3,
    )
    assert decision.approve
    assert "0.100 points better (needs 0.050)" in decision.reason


def test_gate_margin_is_configurable_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACET_GATE_MIN_MAPE_IMPROVEMENT", "0.002")
    decision = decide(
        {"mape": 0.0600, "rmse": 505.0, "r2": 0.984},
        {"mape": 0.0610, "rmse": 510.0, "r2": 0.983},
        GatePolicy(),
    )
    assert not decision.approve


def test_gate_prints_the_exact_gap_where_rounding_would_mislead() -> None:
    # 6.18 % vs 6.23 % rounds to a 0.05-point win; the exact gap is 0.046 points: rejected
    decision = decide(
        {"mape": 0.06184, "rmse": 505.0, "r2": 0.984},
        {"mape": 0.06230, "rmse": 510.0, "r2": 0.983},
        POLICY,
        production_version=1,
    )
    assert not decision.approve
    assert "6.184% vs production v1 6.230%" in decision.reason
    assert "0.046 points better; needs to be at least 0.050 points better" in decision.reason


def test_gate_names_the_holdout_it_judged_on() -> None:
    decision = decide(GOOD, {"mape": 0.07, "rmse": 600, "r2": 0.98}, POLICY, holdout="recent data")
    assert "on recent data" in decision.reason
