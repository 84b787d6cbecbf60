"""Stages side by side: staging and prod synthesize offline, share no physical name with dev or
with each other, and carry the policies infra/stages.py declares for them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.names import Env, StageNames
from contracts.rollout import rollback_alarms, rollout_policy
from infra.stages import PROFILES
from tests.infra.conftest import NAME_PROPERTIES, Synthesized, literal_text
from tests.infra.test_stacks import expected_policies, resources, stateful_policies


@pytest.fixture(scope="module")
def stages(
    synthesized: Synthesized, synthesized_stage: Callable[[str], Synthesized]
) -> dict[str, Synthesized]:
    return {
        "dev": synthesized,
        "staging": synthesized_stage("staging"),
        "prod": synthesized_stage("prod"),
    }


def physical_names(synthesized: Synthesized) -> set[str]:
    names = set(synthesized.stacks.values())
    for stack in synthesized.stacks:
        for resource in synthesized.raw(stack)["Resources"].values():
            if resource["Type"] in ("AWS::ApiGateway::Model", "AWS::Lambda::Alias"):
                continue  # a model's name is local to its API, an alias's to its function
            properties = resource.get("Properties", {})
            for key in NAME_PROPERTIES:
                name = literal_text(properties.get(key))
                if name is not None:
                    names.add(name)
    return names


def test_stages_share_no_physical_name(stages: dict[str, Synthesized]) -> None:
    seen: dict[str, str] = {}
    for stage, synthesized in stages.items():
        names = physical_names(synthesized)
        assert len(names) > 30, stage  # buckets, functions, rules, log groups, stacks, ...
        for name in names:
            assert name not in seen, f"{name} is in {seen.get(name)} and {stage}"
            seen[name] = stage
            assert re.search(rf"(^|[-/]){stage}([-/]|$)", name), (stage, name)


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_each_stage_carries_its_declared_policies(
    stages: dict[str, Synthesized], stage: str
) -> None:
    synthesized, profile = stages[stage], PROFILES[stage]
    found = stateful_policies(synthesized)
    for kind, expected in expected_policies(profile).items():
        assert found[kind] == {(expected, expected)}, (stage, kind)
    auto_delete = resources(synthesized, "FacetDataLake", "Custom::S3AutoDeleteObjects")
    assert bool(auto_delete) == (profile.data.policy.name == "DESTROY")
    (function,) = [
        f["Properties"]
        for f in resources(synthesized, "FacetServing", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "serving.handler.handler"
    ]
    assert function.get("ReservedConcurrentExecutions", 0) == profile.reserved_concurrency
    (api_stage,) = resources(synthesized, "FacetServing", "AWS::ApiGateway::Stage").values()
    settings: dict[str, Any] = api_stage["Properties"]["MethodSettings"][0]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        profile.throttle.rate,
        profile.throttle.burst,
    )
    retention = {
        g["Properties"].get("RetentionInDays")
        for g in resources(synthesized, "FacetServing", "AWS::Logs::LogGroup").values()
        if "aws/lambda" in json.dumps(g["Properties"].get("LogGroupName", ""))
    }
    days = {"TWO_WEEKS": 14, "ONE_MONTH": 30, "THREE_MONTHS": 90}
    assert retention == {days[profile.log_retention.name]}
    alarms = resources(synthesized, "FacetMonitoring", "AWS::CloudWatch::Alarm").values()
    thresholds = {
        a["Properties"]["AlarmDescription"][:20]: a["Properties"]["Threshold"] for a in alarms
    }
    assert thresholds["The price API return"] == profile.api_5xx_alarm
    assert any(v == profile.api_latency_alarm_ms for v in thresholds.values())
    # the rollout: approval and shadow for the deploy function, canary and alarms for CodeDeploy
    policy, names = rollout_policy(stage), StageNames(stage)
    (deploy,) = [
        f["Properties"]["Environment"]["Variables"]
        for f in resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == names.step_function("deploy_model")
    ]
    assert deploy[Env.APPROVAL_MODE.value] == policy.approval
    assert float(deploy[Env.SHADOW_SAMPLE.value]) == policy.shadow_sample
    assert int(deploy[Env.SHADOW_MINUTES.value]) == policy.shadow_minutes
    assert deploy[Env.ROLLOUT_GROUP.value] == names.rollout_group
    (group,) = resources(synthesized, "FacetServing", "AWS::CodeDeploy::DeploymentGroup").values()
    assert group["Properties"]["DeploymentConfigName"] == policy.deployment_config
    rollout_alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]["Threshold"]
        for a in resources(synthesized, "FacetServing", "AWS::CloudWatch::Alarm").values()
    }
    assert rollout_alarms == {
        rule.name: rule.threshold for rule in rollback_alarms(names, policy, "prod")
    }


def test_templates_of_every_stage_exist(stages: dict[str, Synthesized]) -> None:
    for synthesized in stages.values():
        assert len(list(Path(synthesized.outdir).glob("*.template.json"))) == 5
