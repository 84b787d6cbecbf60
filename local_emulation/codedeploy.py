"""A stand-in for CodeDeploy's Lambda deployments, inside the embedded emulator.

moto records a deployment (CreateDeployment) and does nothing with it. This stand-in does what
CodeDeploy does with a Lambda AppSpec, on the same resources: it shifts the alias named in the
AppSpec (its routing weights, in moto's Lambda) by the deployment configuration's schedule,
evaluates the deployment group's CloudWatch alarms on the metrics in moto's CloudWatch (what
the local gateway and serving publish) every period, and either completes (alias on the target
version) or rolls back (alias on the current version), then emits CodeDeploy's
"Deployment State-change Notification" to EventBridge, whose rule calls the deploy function.

Time is compressed: every interval of the configuration and every alarm period is divided by
`speedup` (FACET_LOCAL_ROLLOUT_SPEEDUP); a 5-minute canary with 60-second alarm periods takes
2.5 s with 0.5-s periods at the default 120x. Fidelity limits: one evaluation period per alarm
(the CDK app declares them so), missing data does not breach (CDK: TreatMissingData.NOT_BREACHING),
and statistics are computed here from the raw data points (moto computes no percentiles).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from contracts.names import DEPLOYMENT_STATE_CHANGE
from contracts.rollout import DEPLOYMENT_CONFIGS, SERVING_ALIAS, target_of
from local_emulation.background import BackgroundThreads

log = logging.getLogger("facet.emulation.codedeploy")
COMPARISONS: Final = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)


def statistic(data: list[Any], name: str) -> float | None:
    """A CloudWatch statistic of moto data points (single values and statistic sets)."""
    values = [float(d.value) for d in data if hasattr(d, "value")]
    sets = [d for d in data if not hasattr(d, "value")]
    count = len(values) + sum(float(d.sample_count) for d in sets)
    if count == 0:
        return None
    total = sum(values) + sum(float(d.sum) for d in sets)
    if name.startswith("p"):  # nearest rank, as CloudWatch's percentiles
        if not values:
            return None
        ordered = sorted(values)
        return ordered[max(1, math.ceil(float(name[1:]) / 100 * len(ordered))) - 1]
    plain: dict[str, Callable[[], float]] = {
        "Sum": lambda: total,
        "SampleCount": lambda: count,
        "Average": lambda: total / count,
        "Maximum": lambda: max([*values, *(float(d.max) for d in sets)]),
        "Minimum": lambda: min([*values, *(float(d.min) for d in sets)]),
    }
    return plain[name]() if name in plain else None


@dataclass(frozen=True)
class AlarmCheck:
    name: str
    breaching: bool
    value: float | None
    threshold: float
    statistic: str

    def describe(self) -> str:
        shown = "no data" if self.value is None else f"{self.statistic} {self.value:.4g}"
        return f"{self.name}: {shown} (threshold {self.threshold:g})"


@dataclass
class LocalCodeDeploy:
    """Runs each created Lambda deployment in a thread; `lambda_client` talks to moto's Lambda,
    `metric_data` and `alarms` read moto's CloudWatch backend, `emit` puts an EventBridge event."""

    speedup: float
    lambda_client: Callable[[], Any]
    metric_data: Callable[[str, str], list[Any]]
    alarms: Callable[[str, str], dict[str, Any]]
    emit: Callable[[str, str, dict[str, Any]], None]
    threads: BackgroundThreads = field(default_factory=BackgroundThreads)

    def start(self, deployment: Any, account: str, region: str) -> None:
        self.threads.start(
            self._run_guarded,
            deployment,
            account,
            region,
            name=f"codedeploy-{deployment.deployment_id[:8]}",
        )

    def wait(self, timeout: float = 60) -> None:
        self.threads.wait(timeout)

    @property
    def busy(self) -> bool:
        return self.threads.busy

    def _run_guarded(self, deployment: Any, account: str, region: str) -> None:
        try:
            self._run(deployment, account, region)
        except Exception as error:  # a deployment that cannot run fails, as CodeDeploy's would
            log.exception("local deployment %s failed", deployment.deployment_id)
            self.finish(deployment, account, region, "Failed", f"{type(error).__name__}: {error}")

    def _run(self, deployment: Any, account: str, region: str) -> None:
        config = DEPLOYMENT_CONFIGS.get(str(deployment.deployment_config_name))
        if config is None:
            raise ValueError(f"unknown configuration {deployment.deployment_config_name}")
        function, current, target = target_of({"revision": deployment.revision})
        run = _Run(self, deployment, account, region, function, current, target)
        deployment.status = "InProgress"
        deployment.start_time = dt.datetime.now(dt.UTC)
        rules = self.alarms(account, region)
        run.checked = [rules[n] for n in _alarm_names(deployment.deployment_group) if n in rules]
        period = min([float(a.period) for a in run.checked] or [60.0]) / self.speedup
        run.note(
            f"{config.name} at {self.speedup:g}x: {config.percent} % for "
            f"{config.minutes * 60 / self.speedup:.1f} s, alarms every {period:.2f} s: "
            + (", ".join(a.name for a in run.checked) or "none")
        )
        lam = self.lambda_client()
        if config.percent < 100 and config.minutes > 0:
            lam.update_alias(
                FunctionName=function,
                Name=SERVING_ALIAS,
                FunctionVersion=current,
                RoutingConfig={"AdditionalVersionWeights": {target: config.percent / 100}},
            )
            run.note(f"{config.percent} % of {SERVING_ALIAS} on version {target}")
            hold_until = time.monotonic() + config.minutes * 60 / self.speedup
            while True:
                time.sleep(min(period, max(0.0, hold_until - time.monotonic())))
                breached = run.breached(period)
                if breached:
                    run.roll_back(breached)
                    return
                if time.monotonic() >= hold_until:
                    break
        lam.update_alias(
            FunctionName=function,
            Name=SERVING_ALIAS,
            FunctionVersion=target,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        run.note(f"100 % of {SERVING_ALIAS} on version {target}: succeeded")
        self.finish(deployment, account, region, "Succeeded", "")

    def finish(self, deployment: Any, account: str, region: str, status: str, reason: str) -> None:
        deployment.status = status
        deployment.complete_time = dt.datetime.now(dt.UTC)
        deployment.additional_deployment_status_info = reason
        state = {"Succeeded": "SUCCESS", "Stopped": "STOP"}.get(status, "FAILURE")
        self.emit(
            account,
            region,
            {
                "Source": "aws.codedeploy",
                "DetailType": DEPLOYMENT_STATE_CHANGE,
                "Resources": [],
                "Detail": json.dumps(
                    {
                        "region": region,
                        "deploymentId": deployment.deployment_id,
                        "instanceGroupId": deployment.deployment_group.deployment_group_id,
                        "deploymentGroup": deployment.deployment_group_name,
                        "application": deployment.application_name,
                        "state": state,
                    }
                ),
            },
        )


@dataclass
class _Run:
    """One deployment being carried out."""

    stand_in: LocalCodeDeploy
    deployment: Any
    account: str
    region: str
    function: str
    current: str
    target: str
    checked: list[Any] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        line = f"+{time.monotonic() - self.started:5.1f}s {text}"
        self.deployment.deployment_status_messages.append(line)
        log.info("%s %s", self.deployment.deployment_id, line)

    def breached(self, period: float) -> list[AlarmCheck]:
        """Evaluate every alarm on the last period's data; set its state as CloudWatch would."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        since = now - dt.timedelta(seconds=period)
        data = [
            d
            for d in self.stand_in.metric_data(self.account, self.region)
            if since <= _naive_utc(d.timestamp) <= now
        ]
        results = []
        for alarm in self.checked:
            wanted = sorted((x.name, x.value) for x in alarm.dimensions)
            matching = [
                d
                for d in data
                if d.namespace == alarm.namespace
                and d.name == alarm.metric_name
                and sorted((x.name, x.value) for x in d.dimensions) == wanted
            ]
            name = alarm.extended_statistic or alarm.statistic
            value = statistic(matching, name)
            compare = COMPARISONS[alarm.comparison_operator]
            breaching = value is not None and compare(value, float(alarm.threshold))
            state = "ALARM" if breaching else "OK"
            if alarm.state_value != state:
                alarm.update_state(
                    f"local rollout: {name} {value} vs {alarm.threshold}", "{}", state
                )
            results.append(AlarmCheck(alarm.name, breaching, value, float(alarm.threshold), name))
        self.note("; ".join(r.describe() for r in results) or "no alarms")
        return [r for r in results if r.breaching]

    def roll_back(self, breached: list[AlarmCheck]) -> None:
        self.stand_in.lambda_client().update_alias(
            FunctionName=self.function,
            Name=SERVING_ALIAS,
            FunctionVersion=self.current,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        reason = (
            "One or more alarms have been activated according to the Amazon CloudWatch "
            "metrics you selected, and the affected deployments have been stopped. Activated "
            "alarms: " + "; ".join(b.describe() for b in breached)
        )
        self.note(f"rolled back: {SERVING_ALIAS} on version {self.current}")
        self.stand_in.finish(self.deployment, self.account, self.region, "Stopped", reason)


def _alarm_names(group: Any) -> list[str]:
    configuration = group.alarm_configuration or {}
    if isinstance(configuration, dict):
        if not configuration.get("enabled", False):
            return []
        return [str(a["name"]) for a in configuration.get("alarms", [])]
    if not getattr(configuration, "enabled", False):
        return []
    return [str(a["name"]) for a in configuration.alarms]
