"""Rolling an approved model out to traffic: pinned Lambda versions shifted by CodeDeploy.

The deploy function runs this when the registry reports an approval and the stage has a
rollout deployment group (contracts.rollout):

1. shadow (if the stage samples one): a version pinned to production that also prices a sample
   with the candidate takes all traffic at once (answers do not change); an EventBridge
   Scheduler one-time schedule ends the period, whose report goes to reports/rollouts/;
2. canary: a version pinned to the candidate that also prices with production (the model
   alarm's input) is published, and CodeDeploy shifts the `live` alias to it with the stage's
   deployment configuration, guarded by the three rollback alarms;
3. CodeDeploy's state-change event comes back here: on success the production pointer names the
   candidate (stamped approved) and a version without the comparison takes over; on a rollback
   the alias is back on production and the package is rejected with the alarm that fired.

A model that was production before (an operator's rollback) goes all at once, without shadow.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd

from contracts.names import Zone
from contracts.pointer import ProductionPointer
from contracts.rollout import (
    DEPLOYMENT_CONFIGS,
    SERVING_ALIAS,
    ComparisonRole,
    ModelPin,
    RolloutEnv,
    RolloutPolicy,
    appspec,
    target_of,
)
from contracts.settings import Settings
from pipeline import lake
from pipeline.promotion import make_production
from training import registry
from training.registry import pointer_to, read_pointer

log = logging.getLogger("facet.pipeline.rollout")
SHADOW_ENDED: Final = "shadow-ended"
ALL_AT_ONCE: Final = "CodeDeployDefault.LambdaAllAtOnce"
ROLLOUT_VARIABLES: Final = frozenset(v.value for v in RolloutEnv)


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    ssm: Any
    lam: Any
    codedeploy: Any
    cloudwatch: Any
    scheduler: Any = None
    s3: Any = None


@dataclass(frozen=True)
class Outcome:
    """What the rollout did, for the function's answer and the log."""

    version: int | None
    message: str


def _wait_for_update(lam: Any, function: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = lam.get_function_configuration(FunctionName=function).get("LastUpdateStatus")
        if status in (None, "Successful"):
            return
        if status == "Failed":
            raise RuntimeError(f"updating {function} failed")
        time.sleep(1)
    raise TimeoutError(f"{function} still updating after {timeout:.0f} s")


def publish_version(
    lam: Any,
    function: str,
    pin: ProductionPointer,
    *,
    compare: ProductionPointer | None = None,
    role: ComparisonRole = ComparisonRole.CANARY,
    sample: float = 1.0,
    disagreement: float = 0.10,
    description: str = "",
) -> str:
    """Publish an immutable version of the serving function pinned to `pin` (and comparing with
    `compare`); the function's other settings are those of $LATEST."""
    current = lam.get_function_configuration(FunctionName=function)
    variables = {
        k: v
        for k, v in (current.get("Environment") or {}).get("Variables", {}).items()
        if k not in ROLLOUT_VARIABLES
    }
    variables[RolloutEnv.MODEL_PIN.value] = ModelPin.of(pin).to_env()
    if compare is not None and compare.arn:
        variables |= {
            RolloutEnv.COMPARE_PIN.value: ModelPin.of(compare).to_env(),
            RolloutEnv.COMPARE_ROLE.value: role.value,
            RolloutEnv.COMPARE_SAMPLE.value: f"{sample:g}",
            RolloutEnv.DISAGREEMENT.value: f"{disagreement:g}",
        }
    lam.update_function_configuration(FunctionName=function, Environment={"Variables": variables})
    _wait_for_update(lam, function)
    published = lam.publish_version(FunctionName=function, Description=description[:256])
    return str(published["Version"])


def serve_now(lam: Any, function: str, pin: ProductionPointer) -> str:
    """Point the alias at a version pinned to `pin` at once (an operator's decision)."""
    version = publish_version(lam, function, pin, description=f"model v{pin.version}")
    lam.update_alias(
        FunctionName=function,
        Name=SERVING_ALIAS,
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    return version


def live_version(lam: Any, function: str) -> str:
    return str(lam.get_alias(FunctionName=function, Name=SERVING_ALIAS)["FunctionVersion"])


def pin_of(lam: Any, function: str, version: str) -> tuple[ModelPin | None, dict[str, str]]:
    variables = (
        lam.get_function_configuration(FunctionName=function, Qualifier=version).get("Environment")
        or {}
    ).get("Variables", {})
    text = variables.get(RolloutEnv.MODEL_PIN.value)
    pin = ModelPin(**vars(ModelPin.from_json(text))) if text else None
    return pin, dict(variables)


def start(
    record: registry.PackageRecord,
    *,
    settings: Settings,
    policy: RolloutPolicy,
    clients: Clients,
    deploy_function_arn: str = "",
) -> Outcome:
    """Begin rolling `record` (just approved) out; production moves when CodeDeploy succeeds."""
    function = settings.names.serving_function
    production = read_pointer(clients.ssm, settings.production_model_param)
    candidate = pointer_to(record)
    lam = clients.lam
    if production.arn is None:
        serve_now(lam, function, candidate)
        _make_production(record, settings, clients)
        return Outcome(record.version, f"v{record.version} is production (the first model)")
    busy = in_progress(clients.codedeploy, settings)
    if busy:
        return Outcome(
            record.version,
            f"v{record.version} waits: {busy} is rolling out; the newest approved version "
            "goes next",
        )
    returning = bool(record.approved_at)
    if policy.shadow_sample > 0 and policy.shadow_minutes > 0 and not returning:
        return _start_shadow(
            record,
            production,
            settings=settings,
            policy=policy,
            clients=clients,
            deploy_function_arn=deploy_function_arn,
        )
    return _start_canary(record, production, settings, policy, clients, returning=returning)


ACTIVE_STATUSES: Final = ["Created", "Queued", "InProgress", "Baking", "Ready"]


def in_progress(codedeploy: Any, settings: Settings) -> str | None:
    """The deployment of the serving alias under way, if any (one at a time, as CodeDeploy)."""
    active = codedeploy.list_deployments(
        applicationName=settings.names.rollout_application,
        deploymentGroupName=settings.rollout_group,
        includeOnlyStatuses=ACTIVE_STATUSES,
    )["deployments"]
    return str(active[0]) if active else None


def _next_waiting(
    settings: Settings, policy: RolloutPolicy, clients: Clients, deploy_function_arn: str
) -> str:
    """After a rollout: start the newest version approved meanwhile; older ones are superseded."""
    records = registry.list_packages(clients.sagemaker, settings.model_package_group)
    production = read_pointer(clients.ssm, settings.production_model_param)
    waiting = [
        r
        for r in records
        if r.status == registry.ApprovalStatus.APPROVED
        and not r.approved_at
        and r.arn != production.arn
    ]
    if not waiting:
        return ""
    newest = max(waiting, key=lambda r: r.version)
    for older in waiting:
        if older is not newest:
            registry.set_status(
                clients.sagemaker,
                older,
                registry.ApprovalStatus.REJECTED,
                f"Superseded by v{newest.version}, approved before v{older.version} was rolled out",
                keep_reason=True,
            )
    started = start(
        newest,
        settings=settings,
        policy=policy,
        clients=clients,
        deploy_function_arn=deploy_function_arn,
    )
    return f" Next: {started.message}"


def _start_canary(
    record: registry.PackageRecord,
    production: ProductionPointer,
    settings: Settings,
    policy: RolloutPolicy,
    clients: Clients,
    *,
    returning: bool,
) -> Outcome:
    function = settings.names.serving_function
    target = publish_version(
        clients.lam,
        function,
        pointer_to(record),
        compare=production,
        role=ComparisonRole.CANARY,
        disagreement=policy.disagreement,
        description=f"model v{record.version} (canary beside v{production.version})",
    )
    config = ALL_AT_ONCE if returning else policy.deployment_config
    deployment = clients.codedeploy.create_deployment(
        applicationName=settings.names.rollout_application,
        deploymentGroupName=settings.rollout_group,
        deploymentConfigName=config,
        description=f"model v{record.version}",
        revision={
            "revisionType": "AppSpecContent",
            "appSpecContent": {
                "content": appspec(function, live_version(clients.lam, function), target)
            },
        },
    )["deploymentId"]
    shift = DEPLOYMENT_CONFIGS[config]
    return Outcome(
        record.version,
        f"v{record.version}: {deployment} shifts {SERVING_ALIAS} to version {target} "
        + (
            "at once (it was production before)"
            if returning
            else f"({shift.percent} % for {shift.minutes} min, then all)"
        ),
    )


def _start_shadow(
    record: registry.PackageRecord,
    production: ProductionPointer,
    *,
    settings: Settings,
    policy: RolloutPolicy,
    clients: Clients,
    deploy_function_arn: str,
) -> Outcome:
    function = settings.names.serving_function
    shadow = publish_version(
        clients.lam,
        function,
        production,
        compare=pointer_to(record),
        role=ComparisonRole.SHADOW,
        sample=policy.shadow_sample,
        disagreement=policy.disagreement,
        description=f"model v{production.version} shadowed by v{record.version}",
    )
    clients.lam.update_alias(FunctionName=function, Name=SERVING_ALIAS, FunctionVersion=shadow)
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=policy.shadow_minutes)
    clients.scheduler.create_schedule(
        Name=settings.names.shadow_schedule(record.version),
        ScheduleExpression=f"at({ends:%Y-%m-%dT%H:%M:%S})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": deploy_function_arn,
            "RoleArn": settings.shadow_scheduler_role,
            "Input": json.dumps(
                {
                    "rollout": SHADOW_ENDED,
                    "package": record.arn,
                    "shadow_version": shadow,
                    "started": dt.datetime.now(dt.UTC).isoformat(),
                }
            ),
        },
    )
    return Outcome(
        record.version,
        f"v{record.version} in shadow beside v{production.version} (version {shadow}, "
        f"{policy.shadow_sample:.0%} of requests) until {ends:%H:%M:%S} UTC",
    )


def end_shadow(
    event: dict[str, Any], *, settings: Settings, policy: RolloutPolicy, clients: Clients
) -> Outcome:
    """The shadow period is over: report how the candidate's prices compared with production's,
    then start the canary (unless the candidate is no longer approved)."""
    record = registry.describe(clients.sagemaker, str(event["package"]))
    summary = ""
    if clients.s3 is not None:
        report = shadow_report(
            clients.s3,
            settings.data_bucket,
            candidate=record.version,
            since=dt.datetime.fromisoformat(str(event["started"])),
            disagreement=policy.disagreement,
        )
        key = f"{Zone.REPORTS.prefix()}rollouts/v{record.version}-shadow"
        lake.write_json(clients.s3, settings.data_bucket, f"{key}.json", report)
        clients.s3.put_object(
            Bucket=settings.data_bucket,
            Key=f"{key}.md",
            Body=shadow_markdown(report).encode(),
            ContentType="text/markdown",
        )
        summary = (
            f" Shadow: {report['compared']} stones compared, "
            f"{report['disagreeing_share']:.1%} disagree (s3://{settings.data_bucket}/{key}.md)."
        )
    if record.status != registry.ApprovalStatus.APPROVED:
        return Outcome(record.version, f"v{record.version} is {record.status}: no canary.{summary}")
    production = read_pointer(clients.ssm, settings.production_model_param)
    started = _start_canary(record, production, settings, policy, clients, returning=False)
    return Outcome(started.version, started.message + summary)


# A shadow report reads at most this many inference objects (newest first): bounded work.
SHADOW_REPORT_MAX_OBJECTS: Final = 2000


def shadow_report(
    s3: Any, bucket: str, *, candidate: int, since: dt.datetime, disagreement: float
) -> dict[str, Any]:
    """How often and where (by decile of production's price) the candidate disagreed in shadow."""
    day = since.astimezone(dt.UTC).date()
    keys = [
        key
        for key in lake.list_keys(s3, bucket, Zone.INFERENCE.prefix())
        if _day_of(key) is not None and _day_of(key) >= day  # type: ignore[operator]
    ]
    frames = []
    for key in sorted(keys)[-SHADOW_REPORT_MAX_OBJECTS:]:
        frame = lake.read_csv(s3, bucket, key)
        if "compared_role" not in frame:
            continue
        frames.append(
            frame[
                (frame["compared_role"] == ComparisonRole.SHADOW.value)
                & (pd.to_numeric(frame["compared_version"], errors="coerce") == candidate)
            ]
        )
    rows = pd.concat(frames) if frames else pd.DataFrame()
    report: dict[str, Any] = {
        "candidate": candidate,
        "since": since.isoformat(),
        "disagreement": disagreement,
        "compared": len(rows),
        "disagreeing_share": 0.0,
        "deciles": [],
    }
    if rows.empty:
        return report
    production = pd.to_numeric(rows["price"], errors="coerce")
    gap = pd.to_numeric(rows["price_gap"], errors="coerce")
    disagrees = gap.abs() > disagreement
    report["disagreeing_share"] = float(disagrees.mean())
    decile = pd.qcut(production.rank(method="first"), 10, labels=False) if len(rows) >= 10 else 0
    grouped = pd.DataFrame({"price": production, "gap": gap, "disagrees": disagrees}).groupby(
        decile
    )
    report["deciles"] = [
        {
            "decile": int(str(number)) + 1,
            "stones": len(group),
            "price_from": round(float(group["price"].min()), 2),
            "price_to": round(float(group["price"].max()), 2),
            "disagreeing_share": round(float(group["disagrees"].mean()), 4),
            "median_gap": round(float(group["gap"].median()), 4),
        }
        for number, group in grouped
    ]
    return report


def _day_of(key: str) -> dt.date | None:
    for part in key.split("/"):
        if part.startswith("date="):
            try:
                return dt.date.fromisoformat(part.removeprefix("date="))
            except ValueError:
                return None
    return None


def shadow_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Shadow of v{report['candidate']} beside production",
        "",
        f"Since {report['since']}: {report['compared']} stones priced by both models; "
        f"{report['disagreeing_share']:.1%} differ by more than "
        f"{report['disagreement']:.0%}.",
        "",
        "| decile of production's price | stones | price (USD) | disagree | median gap |",
        "|---|---:|---|---:|---:|",
    ]
    lines += [
        f"| {d['decile']} | {d['stones']} | {d['price_from']:,.0f}–{d['price_to']:,.0f} | "
        f"{d['disagreeing_share']:.1%} | {d['median_gap']:+.1%} |"
        for d in report["deciles"]
    ]
    return "\n".join(lines) + "\n"


def _make_production(record: registry.PackageRecord, settings: Settings, clients: Clients) -> None:
    make_production(
        record,
        sagemaker=clients.sagemaker,
        ssm=clients.ssm,
        cloudwatch=clients.cloudwatch,
        parameter=settings.production_model_param,
        namespace=settings.names.metric_namespace,
    )


def finish(
    event: dict[str, Any],
    *,
    settings: Settings,
    policy: RolloutPolicy,
    clients: Clients,
    deploy_function_arn: str = "",
) -> Outcome:
    """CodeDeploy's verdict on a deployment: production follows it, or the package is rejected;
    then the newest version approved meanwhile, if any, rolls out."""
    outcome = _conclude(event, settings=settings, clients=clients)
    following = _next_waiting(settings, policy, clients, deploy_function_arn)
    return Outcome(outcome.version, outcome.message + following)


def _conclude(event: dict[str, Any], *, settings: Settings, clients: Clients) -> Outcome:
    detail = event.get("detail") or {}
    deployment = clients.codedeploy.get_deployment(deploymentId=detail["deploymentId"])[
        "deploymentInfo"
    ]
    function, _, target = target_of(deployment)
    pin, _ = pin_of(clients.lam, function, target)
    if pin is None or not pin.arn:
        return Outcome(None, f"{detail['deploymentId']}: version {target} serves no pinned model")
    record = registry.describe(clients.sagemaker, pin.arn)
    state = str(detail.get("state", ""))
    if state == "SUCCESS":
        _make_production(record, settings, clients)
        settled = publish_version(
            clients.lam, function, pin, description=f"model v{record.version}"
        )
        clients.lam.update_alias(
            FunctionName=function,
            Name=SERVING_ALIAS,
            FunctionVersion=settled,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        return Outcome(
            record.version,
            f"v{record.version} is production: {detail['deploymentId']} completed; version "
            f"{settled} serves it without the comparison",
        )
    reason = rollback_reason(deployment)
    if record.status == registry.ApprovalStatus.APPROVED:
        registry.set_status(
            clients.sagemaker,
            record,
            registry.ApprovalStatus.REJECTED,
            f"Rolled back during rollout: {reason}",
            keep_reason=True,
        )
    return Outcome(record.version, f"v{record.version} rolled back: {reason}")


def rollback_reason(deployment: dict[str, Any]) -> str:
    """CodeDeploy's own words: errorInformation (AWS), else the additional status information
    (the emulator's stand-in: moto's GetDeployment has no errorInformation)."""
    error = deployment.get("errorInformation") or {}
    message = str(
        error.get("message")
        or deployment.get("additionalDeploymentStatusInfo")
        or f"deployment {deployment.get('status', 'ended')}"
    )
    return message[:400]
