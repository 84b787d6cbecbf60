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
    assert decision.reason.startswith("Rejected: MAPE 6.13% vs production v3 6.10%")


def test_gate_approves_a_candidate_better_by_the_margin() -> None:
    decision = decide(
        {"mape": 0.0600, "rmse": 505.0, "r2": 0.984},
        {"mape": 0.0610, "rmse": 510.0, "r2": 0.983},
        POLICY,
        production_version=3,
    )
    assert decision.approve
    assert "0.10 points better" in decision.reason


def test_gate_margin_is_configurable_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACET_GATE_MIN_MAPE_IMPROVEMENT", "0.002")
    decision = decide(
        {"mape": 0.0600, "rmse": 505.0, "r2": 0.984},
        {"mape": 0.0610, "rmse": 510.0, "r2": 0.983},
        GatePolicy(),
    )
    assert not decision.approve
