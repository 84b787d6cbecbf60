"""How a promoted model reaches traffic: per-model serving versions, shadow, canary, alarms.

One table per stage, read by the CDK app (alias, CodeDeploy deployment group, alarms), by the
deploy function (which version to publish, which deployment to start) and by the local emulation
(the same alarms in the emulator, and the stand-in for CodeDeploy that shifts the alias).

A serving version is pinned: its environment names the one model package it serves
(`ModelPin`), and optionally a second one it compares with (shadow: answer with production,
also price a sample with the candidate; canary: answer with the candidate, also price with
production). Comparisons are logged to inference/ and counted as a CloudWatch metric, the
model alarm of a canary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from contracts.names import StageNames
from contracts.pointer import ProductionPointer

SERVING_ALIAS: Final = "live"
# Lambda's environment is at most 4 KB in all: a pin keeps the package's reason short.
PIN_REASON_CHARS: Final = 200

API_GATEWAY_NAMESPACE: Final = "AWS/ApiGateway"
API_5XX_METRIC: Final = "5XXError"
API_LATENCY_METRIC: Final = "Latency"
API_COUNT_METRIC: Final = "Count"
PRICE_DISAGREEMENT_METRIC: Final = "PriceDisagreement"


class ComparisonRole(StrEnum):
    """Which model answers when a serving version prices with two."""

    SHADOW = "shadow"  # production answers; the candidate is priced beside it, for the record
    CANARY = "canary"  # the candidate answers; production is priced beside it, for the alarm


class RolloutEnv(StrEnum):
    """Environment variables of a serving version (set by the deploy function, not by CDK)."""

    MODEL_PIN = "FACET_MODEL_PIN"
    COMPARE_PIN = "FACET_COMPARE_PIN"
    COMPARE_ROLE = "FACET_COMPARE_ROLE"
    COMPARE_SAMPLE = "FACET_COMPARE_SAMPLE"
    DISAGREEMENT = "FACET_DISAGREEMENT"


class ModelPin(ProductionPointer):
    """The one model package a serving version serves (the pointer's fields, reason shortened)."""

    def to_env(self) -> str:
        data = asdict(self)
        data["reason"] = str(data.get("reason") or "")[:PIN_REASON_CHARS]
        return json.dumps(data)

    @classmethod
    def of(cls, pointer: ProductionPointer) -> ModelPin:
        return cls(**asdict(pointer))


@dataclass(frozen=True)
class DeploymentConfig:
    """A CodeDeploy predefined Lambda deployment configuration: `percent` of traffic for
    `minutes`, then all of it (100 % at once when minutes is 0)."""

    name: str
    percent: int
    minutes: int


DEPLOYMENT_CONFIGS: Final = {
    config.name: config
    for config in (
        DeploymentConfig("CodeDeployDefault.LambdaCanary10Percent5Minutes", 10, 5),
        DeploymentConfig("CodeDeployDefault.LambdaCanary10Percent10Minutes", 10, 10),
        DeploymentConfig("CodeDeployDefault.LambdaCanary10Percent15Minutes", 10, 15),
        DeploymentConfig("CodeDeployDefault.LambdaCanary10Percent30Minutes", 10, 30),
        DeploymentConfig("CodeDeployDefault.LambdaAllAtOnce", 100, 0),
    )
}


@dataclass(frozen=True)
class RolloutPolicy:
    """What a stage does with a model the gate passed."""

    approval: Literal["auto", "manual"]
    deployment_config: str  # a key of DEPLOYMENT_CONFIGS
    shadow_sample: float  # share of requests also priced by the candidate in shadow; 0: no shadow
    shadow_minutes: int
    # A canary price "disagrees" when it differs from production's on the same request by more
    # than this fraction; the model alarm fires when more than `max_disagreement_share` of the
    # compared requests in one evaluation period disagree.
    disagreement: float = 0.10
    max_disagreement_share: float = 0.05
    max_error_rate: float = 0.01  # API 5XXError average (the share of 5xx answers) per period
    max_p99_ms: float = 1000.0
    period_seconds: int = 60

    @property
    def deployment(self) -> DeploymentConfig:
        return DEPLOYMENT_CONFIGS[self.deployment_config]


ROLLOUT_POLICIES: Final = {
    "dev": RolloutPolicy("auto", "CodeDeployDefault.LambdaCanary10Percent5Minutes", 0.0, 0),
    "staging": RolloutPolicy("auto", "CodeDeployDefault.LambdaCanary10Percent5Minutes", 0.25, 30),
    "prod": RolloutPolicy("manual", "CodeDeployDefault.LambdaCanary10Percent10Minutes", 0.10, 60),
}


def rollout_policy(stage: str) -> RolloutPolicy:
    """A stage's policy; a stage outside the table (a developer's own) rolls out as dev does."""
    return ROLLOUT_POLICIES.get(stage, ROLLOUT_POLICIES["dev"])


@dataclass(frozen=True)
class AlarmRule:
    """One rollback alarm, declared the same way in CDK and in the emulator."""

    name: str
    description: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str  # "Average", "Sum", or a percentile such as "p99"
    threshold: float
    period_seconds: int

    def dimension_list(self) -> list[dict[str, str]]:
        return [{"Name": name, "Value": value} for name, value in self.dimensions]


def api_dimensions(names: StageNames, api_stage: str) -> tuple[tuple[str, str], ...]:
    return (("ApiName", names.api_name), ("Stage", api_stage))


def comparison_dimensions(role: ComparisonRole) -> tuple[tuple[str, str], ...]:
    return (("Role", role.value),)


def rollback_alarms(names: StageNames, policy: RolloutPolicy, api_stage: str) -> list[AlarmRule]:
    """The three alarms a canary is guarded by; any of them in ALARM rolls it back."""
    period = policy.period_seconds
    return [
        AlarmRule(
            f"{names.prefix}-rollout-api-5xx",
            f"More than {policy.max_error_rate:.0%} of the API's answers are 5xx",
            API_GATEWAY_NAMESPACE,
            API_5XX_METRIC,
            api_dimensions(names, api_stage),
            "Average",
            policy.max_error_rate,
            period,
        ),
        AlarmRule(
            f"{names.prefix}-rollout-api-p99",
            f"The API's p99 latency is over {policy.max_p99_ms:.0f} ms",
            API_GATEWAY_NAMESPACE,
            API_LATENCY_METRIC,
            api_dimensions(names, api_stage),
            "p99",
            policy.max_p99_ms,
            period,
        ),
        AlarmRule(
            f"{names.prefix}-rollout-price-disagreement",
            f"More than {policy.max_disagreement_share:.0%} of canary prices differ from "
            f"production's by more than {policy.disagreement:.0%}",
            names.metric_namespace,
            PRICE_DISAGREEMENT_METRIC,
            comparison_dimensions(ComparisonRole.CANARY),
            "Average",
            policy.max_disagreement_share,
            period,
        ),
    ]


def appspec(function: str, current: str, target: str) -> str:
    return json.dumps(
        {
            "version": 0.0,
            "Resources": [
                {
                    "serving": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": function,
                            "Alias": SERVING_ALIAS,
                            "CurrentVersion": current,
                            "TargetVersion": target,
                        },
                    }
                }
            ],
        }
    )


def target_of(deployment: dict[str, Any]) -> tuple[str, str, str]:
    """(function, current version, target version) of a Lambda deployment's AppSpec."""
    content = deployment["revision"]["appSpecContent"]["content"]
    (resource,) = json.loads(content)["Resources"]
    properties = next(iter(resource.values()))["Properties"]
    return (
        str(properties["Name"]),
        str(properties["CurrentVersion"]),
        str(properties["TargetVersion"]),
    )
