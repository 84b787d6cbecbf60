"""The pipeline's state, as real executions left it (tests/events/), read by the shared models."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from contracts.names import figure_name
from pipeline.report import outcome_line, write_report
from pipeline.state import RunState

EVENTS = Path(__file__).resolve().parents[1] / "events"


def state(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((EVENTS / name).read_text())
    return loaded


def test_a_market_shift_state_reads_as_a_pending_candidate_judged_on_recent_data() -> None:
    run = RunState.model_validate(state("pipeline_state_market_shift_pending.json"))
    assert run.validation is not None and run.validation.verdict is not None
    assert run.validation.verdict.kind == "market_shift"
    assert run.evaluation is not None and run.evaluation.decision == "pending"
    assert run.evaluation.gate_holdout == "recent" and run.evaluation.recent is not None
    assert (
        run.dataset is not None and [b.verdict for b in run.dataset.batches][-1] == "market_shift"
    )


def test_the_report_of_a_market_shift_shows_the_verdict_the_evidence_and_both_holdouts(
    tmp_path: Path,
) -> None:
    files = write_report(state("pipeline_state_market_shift_pending.json"), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert outcome_line(state("pipeline_state_market_shift_pending.json")).startswith(
        "Waiting for approval: market shift of +14.9%"
    )
    assert "## Verdict on the labels" in report and "**market_shift**" in report
    assert "Shift per decile of production's price" in report
    assert "On the frozen holdout" in report and "On the recent data" in report
    assert "(the gate judged on this)" in report
    verdict = figure_name("verdict", dt.date.today().isoformat())
    assert verdict in files and (tmp_path / verdict).stat().st_size > 1000


def test_the_report_of_inconsistent_labels_says_no_training_started(tmp_path: Path) -> None:
    run = RunState.model_validate(state("pipeline_state_inconsistent_labels.json"))
    assert run.validation is not None and run.validation.rejected_labels
    assert run.dataset is None and run.evaluation is None
    write_report(state("pipeline_state_inconsistent_labels.json"), tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Batch quarantined before training" in report
    assert "No training job was started; production is unchanged." in report
    assert f"![verdict]({figure_name('verdict', dt.date.today().isoformat())})" in report
