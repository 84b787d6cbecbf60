"""The one ASL file: placeholders, states in plain words, retries and catches on every task."""

from __future__ import annotations

import json
import re

import pytest

from contracts.names import STEP_FUNCTIONS, AslSubstitution
from pipeline.definition import (
    ASL_PATH,
    SubstitutionError,
    expected_substitutions,
    placeholders,
    raw_definition,
    state_names,
    substitute,
)

DOCUMENT = json.loads(raw_definition())
TASKS = {name: state for name, state in DOCUMENT["States"].items() if state["Type"] == "Task"}


def test_asl_is_json_in_jsonpath_mode() -> None:
    assert DOCUMENT["QueryLanguage"] == "JSONPath"
    assert "Arguments" not in raw_definition() and "{%" not in raw_definition()


def test_asl_placeholders_are_exactly_the_shared_substitution_names() -> None:
    assert placeholders() == expected_substitutions()


def test_asl_every_step_function_has_a_placeholder() -> None:
    assert set(STEP_FUNCTIONS) == {s for s in AslSubstitution if s.value.endswith("FunctionArn")}


def test_asl_state_names_are_plain_words() -> None:
    for name in state_names():
        assert re.fullmatch(r"[A-Z][a-z]+( [a-z]+)*\??", name.replace("SageMaker", "Sagemaker")), (
            name
        )


def test_asl_every_task_retries_and_catches() -> None:
    for name, state in TASKS.items():
        assert any(c["ErrorEquals"] == ["States.ALL"] for c in state.get("Catch", [])), name
        if name != "Get training failure reason":
            assert all(r.get("BackoffRate", 1) >= 2 for r in state.get("Retry", [])), name
            assert state.get("Retry"), name


def test_asl_every_catch_leads_to_recorded_failure() -> None:
    targets = {c["Next"] for state in TASKS.values() for c in state.get("Catch", [])}
    assert targets <= {"Record failure", "Pipeline failed without a report"}
    assert DOCUMENT["States"]["Pipeline failed"]["CausePath"] == "$.failure.cause"


def test_asl_training_uses_request_response_and_a_poll_loop() -> None:
    assert TASKS["Start training job"]["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob"
    assert not any(state["Resource"].endswith(".sync") for state in TASKS.values())
    assert DOCUMENT["States"]["Wait for training job"]["Next"] == "Check training job"
    assert DOCUMENT["States"]["Training finished?"]["Default"] == "Wait for training job"


def test_substitute_fills_every_placeholder() -> None:
    values = {name: f"value-{name}" for name in expected_substitutions()}
    text = substitute(values)
    assert "${" not in text
    assert (
        json.loads(text)["States"]["Validate batch"]["Resource"] == "value-ValidateBatchFunctionArn"
    )


def test_substitute_refuses_missing_or_unknown_names() -> None:
    values = {name: "x" for name in expected_substitutions()}
    values.pop("TrainingImage")
    with pytest.raises(SubstitutionError, match="missing values: \\['TrainingImage'\\]"):
        substitute(values)
    with pytest.raises(SubstitutionError, match="unknown names: \\['Nope'\\]"):
        substitute({**values, "TrainingImage": "i", "Nope": "x"})


def test_asl_file_lives_in_pipeline_package() -> None:
    assert ASL_PATH.parent.name == "pipeline"
