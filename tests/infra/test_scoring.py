"""The bulk scoring flow as synthesized: its state machine from the shared ASL file, the batch
transform job's configuration, the catalogue trigger, expiry, and IAM scoped to scoring/."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from contracts.names import (
    RAW_BATCH_EVENT_TEMPLATE,
    SCORING_HANDLER_MODULE,
    SCORING_INCOMING_PREFIX,
    SCORING_STEP_FUNCTIONS,
    TRANSFORM_MAX_PAYLOAD_MB,
    Env,
    StageNames,
)
from infra.stages import PROFILES
from pipeline.definition import SCORING_ASL_PATH, expected_scoring_substitutions, state_names
from tests.infra.conftest import Synthesized
from tests.infra.test_stacks import _statements, resources, state_machine

NAMES = StageNames("dev")
SCORING_FUNCTIONS = {NAMES.step_function(h) for h in SCORING_STEP_FUNCTIONS.values()}


def _transform_state() -> dict[str, Any]:
    states: dict[str, Any] = json.loads(SCORING_ASL_PATH.read_text())["States"]
    return states["Start transform job"]["Parameters"]


def test_the_scoring_state_machine_is_its_asl_file_with_every_substitution(
    synthesized: Synthesized,
) -> None:
    machine = state_machine(synthesized, NAMES.scoring_state_machine)["Properties"]
    asset = synthesized.outdir / f"asset.{machine['DefinitionS3Location']['Key']}"
    assert asset.read_text() == SCORING_ASL_PATH.read_text()
    assert set(machine["DefinitionSubstitutions"]) == expected_scoring_substitutions()
    assert machine["DefinitionSubstitutions"]["TransformInstanceType"] == "ml.m5.xlarge"
    # the output is encrypted with the lake's own key
    key = machine["DefinitionSubstitutions"]["LakeKeyArn"]
    assert "Fn::ImportValue" in json.dumps(key) or "Fn::GetAtt" in json.dumps(key)
    functions = resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function")
    for placeholder, handler in SCORING_STEP_FUNCTIONS.items():
        logical_id = machine["DefinitionSubstitutions"][placeholder.value]["Fn::GetAtt"][0]
        function = functions[logical_id]["Properties"]
        assert function["FunctionName"] == NAMES.step_function(handler)
        assert function["ImageConfig"]["Command"] == [f"{SCORING_HANDLER_MODULE}.{handler}"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert {"Prepare catalogue", "Start transform job", "Join results"} <= state_names(
        SCORING_ASL_PATH.read_text()
    )


def test_the_transform_job_splits_by_line_assembles_by_line_within_the_payload_bound() -> None:
    job = _transform_state()
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == "text/csv"
    assert job["BatchStrategy"] == "MultiRecord"
    assert job["MaxPayloadInMB"] == TRANSFORM_MAX_PAYLOAD_MB
    assert job["TransformOutput"] == {
        "S3OutputPath.$": "$.scoring.output_s3_uri",
        "Accept": "text/csv",
        "AssembleWith": "Line",
        "KmsKeyId": "${LakeKeyArn}",
    }
    assert job["TransformResources"]["InstanceCount.$"] == "$.scoring.instance_count"
    assert job["ModelName.$"] == job["TransformJobName.$"] == "$.scoring.job_name"
    states = json.loads(SCORING_ASL_PATH.read_text())["States"]
    model = states["Create model"]["Parameters"]
    assert model["PrimaryContainer"]["ModelPackageName.$"] == "$.scoring.package_arn"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_instance_count_is_the_stages(
    stage: str, synthesized: Synthesized, synthesized_stage: Callable[[str], Synthesized]
) -> None:
    app = synthesized if stage == "dev" else synthesized_stage(stage)
    names = StageNames(stage)
    (prepare,) = [
        f["Properties"]["Environment"]["Variables"]
        for f in resources(app, "FacetTrainingPipeline", "AWS::Lambda::Function").values()
        if f["Properties"]["FunctionName"] == names.step_function("prepare_catalogue")
    ]
    assert int(prepare[Env.TRANSFORM_INSTANCE_COUNT.value]) == PROFILES[stage].transform_instances


def test_a_catalogue_under_incoming_starts_the_scoring_flow(synthesized: Synthesized) -> None:
    (rule,) = [
        r["Properties"]
        for r in resources(synthesized, "FacetTrainingPipeline", "AWS::Events::Rule").values()
        if r["Properties"].get("Name") == NAMES.catalogue_rule
    ]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": SCORING_INCOMING_PREFIX}]
    (target,) = rule["Targets"]
    assert "ScoringFlowStateMachine" in json.dumps(target["Arn"])
    assert target["InputTransformer"]["InputTemplate"] == RAW_BATCH_EVENT_TEMPLATE
    assert "DeadLetterConfig" in target


def test_scoring_prefixes_expire(synthesized: Synthesized) -> None:
    rules = {
        rule["Id"]: rule
        for b in resources(synthesized, "FacetDataLake", "AWS::S3::Bucket").values()
        for rule in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    }
    assert rules["scoring-incoming"]["Prefix"] == "scoring/incoming/"
    assert rules["scoring-work"]["ExpirationInDays"] == 7
    assert rules["scoring-results"]["ExpirationInDays"] == 90


def _role_statements(synthesized: Synthesized, marker: str) -> list[dict[str, Any]]:
    return [s for where, s in _statements(synthesized) if marker in where]


def _s3_resources(statements: list[dict[str, Any]]) -> list[str]:
    found = []
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if any(a.startswith("s3:") and a != "s3:ListBucket" for a in actions):
            resources_ = statement["Resource"]
            found += [
                json.dumps(r)
                for r in (resources_ if isinstance(resources_, list) else [resources_])
            ]
    return found


def test_scoring_step_functions_touch_only_the_scoring_prefixes(synthesized: Synthesized) -> None:
    roles = {
        logical_id: f["Properties"]["Role"]["Fn::GetAtt"][0]
        for logical_id, f in resources(
            synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function"
        ).items()
        if f["Properties"].get("FunctionName") in SCORING_FUNCTIONS
    }
    assert len(roles) == 3
    for role in roles.values():
        policies = [
            p["Properties"]["PolicyDocument"]["Statement"]
            for p in resources(synthesized, "FacetTrainingPipeline", "AWS::IAM::Policy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
        ]
        objects = _s3_resources([s for statements in policies for s in statements])
        assert objects, role
        assert all("/scoring/" in text for text in objects), (role, objects)
        actions = {a for statements in policies for s in statements for a in _as_list(s["Action"])}
        sagemaker = {a for a in actions if a.startswith("sagemaker:")}
        # only the failure step deletes the run's model (its own test below)
        assert sagemaker <= ({"sagemaker:DeleteModel"} if "RecordScoring" in role else set()), (
            role,
            sagemaker,
        )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_transform_role_reads_its_input_and_the_model_and_writes_only_scoring_work(
    synthesized: Synthesized,
) -> None:
    statements = _role_statements(synthesized, "TransformRole")
    objects = _s3_resources(statements)
    assert objects
    for text in objects:
        assert "/scoring/work/*" in text or "/training-jobs/*" in text, text
    writes = [
        json.dumps(s["Resource"]) for s in statements if "s3:PutObject" in _as_list(s["Action"])
    ]
    assert writes and all("/scoring/work/*" in w for w in writes)
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert "ecr:BatchGetImage" in actions  # the serving image


def test_only_the_failure_step_may_delete_a_scoring_model(synthesized: Synthesized) -> None:
    statements = _role_statements(synthesized, "RecordScoringFailure")
    (deleting,) = [s for s in statements if "sagemaker:DeleteModel" in _as_list(s["Action"])]
    assert _as_list(deleting["Action"]) == ["sagemaker:DeleteModel"]
    assert f"model/{NAMES.transform_job_prefix}-*" in json.dumps(deleting["Resource"])
    for other in ("PrepareCatalogue", "JoinScores"):
        actions = {a for s in _role_statements(synthesized, other) for a in _as_list(s["Action"])}
        assert not any(a.startswith("sagemaker:") and "Delete" in a for a in actions), other


def test_the_scoring_state_machine_may_only_create_the_stages_jobs_and_models(
    synthesized: Synthesized,
) -> None:
    statements = _role_statements(synthesized, "ScoringFlowStateMachineRole")
    sagemaker = [
        s for s in statements if any(a.startswith("sagemaker:") for a in _as_list(s["Action"]))
    ]
    by_action = {a: json.dumps(s["Resource"]) for s in sagemaker for a in _as_list(s["Action"])}
    assert (
        f"transform-job/{NAMES.transform_job_prefix}-*" in by_action["sagemaker:CreateTransformJob"]
    )
    assert f"model/{NAMES.transform_job_prefix}-*" in by_action["sagemaker:CreateModel"]
    assert by_action["sagemaker:DeleteModel"] == by_action["sagemaker:CreateModel"]
    assert NAMES.model_package_group in by_action["sagemaker:DescribeModelPackage"]
    (passing,) = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert "TransformRole" in json.dumps(passing["Resource"])
