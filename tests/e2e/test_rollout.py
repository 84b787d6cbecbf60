"""Safe rollout on the embedded emulator, watched through real HTTP traffic.

The deploy function (its real code, run by the emulator's Lambda) publishes pinned versions of the
serving function and starts CodeDeploy deployments; the emulator's stand-in for CodeDeploy shifts
the `live` alias and evaluates the same three alarms on what the local gateway and serving
publish; the local gateway routes each request by the alias's weights. Requests flow the whole
time, and every answer is kept.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from contracts.names import Env, PackageMetadata, StageNames
from contracts.rollout import SERVING_ALIAS, RolloutEnv, rollback_alarms, rollout_policy
from contracts.schema import example_diamond
from local_emulation.cli import app
from local_emulation.emulator import EmbeddedEmulator, aws_environment
from local_emulation.gateway import Gateway
from local_emulation.processes import free_port
from local_emulation.provision import Deployment, provision, serving_environment
from local_emulation.rollout_view import Answer, BackgroundTraffic
from local_emulation.simulate import make_batches
from local_emulation.triggers import drain, wait_for
from pipeline import lake
from tests.e2e.rollout_speed import rollouts_at
from training import registry
from training.artifact_store import pack, sha256
from training.registry import read_pointer

pytestmark = pytest.mark.slow
STAGE = "rollout"
NAMES = StageNames(STAGE)
SPEEDUP = 60.0
PERIOD = rollout_policy(STAGE).period_seconds / SPEEDUP


@pytest.fixture(scope="module")
def emulator(aws_emulator: EmbeddedEmulator) -> Iterator[EmbeddedEmulator]:
    with rollouts_at(aws_emulator, SPEEDUP) as compressed:
        yield compressed


@pytest.fixture(scope="module")
def deployment(emulator: EmbeddedEmulator) -> Deployment:
    return provision(stage=STAGE, archive_only=True, poll_seconds=1)


@pytest.fixture(scope="module")
def gateway(deployment: Deployment) -> Iterator[Gateway]:
    environment = (
        aws_environment()
        | serving_environment(deployment)
        | {Env.LOCAL_GATEWAY_FUNCTION.value: NAMES.serving_function}
    )
    with Gateway(free_port(), workers=1, environment=environment) as running:
        yield running


def publish(
    deployment: Deployment, model_dir: Path, *, recorded_sha: str | None = None
) -> registry.PackageRecord:
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    tarball = pack(model_dir)
    key = f"test-models/{uuid.uuid4().hex[:8]}/model.tar.gz"
    s3.put_object(Bucket=deployment.artifacts_bucket, Key=key, Body=tarball)
    return registry.register(
        sagemaker,
        deployment.model_package_group,
        model_data_url=f"s3://{deployment.artifacts_bucket}/{key}",
        image="local",
        metadata={PackageMetadata.ARTIFACT_SHA256.value: recorded_sha or sha256(tarball)},
        description=f"test model from {model_dir.name}",
    )


def approve(emulator: EmbeddedEmulator, record: registry.PackageRecord) -> registry.PackageRecord:
    """Approve as the pipeline or a person does; the registry's event starts the rollout."""
    registry.set_status(
        boto3.client("sagemaker"), record, registry.ApprovalStatus.APPROVED, "test approval"
    )
    emulator.settle(timeout=120)
    return registry.describe(boto3.client("sagemaker"), record.arn)


def production() -> int | None:
    return read_pointer(boto3.client("ssm"), NAMES.production_parameter).version


def latest_deployment() -> dict[str, object]:
    codedeploy = boto3.client("codedeploy")
    ids = codedeploy.list_deployments(
        applicationName=NAMES.rollout_application, deploymentGroupName=NAMES.rollout_group
    )["deployments"]
    infos = [codedeploy.get_deployment(deploymentId=i)["deploymentInfo"] for i in ids]
    return max(infos, key=lambda info: info["createTime"])


def alias() -> dict[str, object]:
    return dict(
        boto3.client("lambda").get_alias(FunctionName=NAMES.serving_function, Name=SERVING_ALIAS)
    )


def pinned_version_of(version: str) -> int:
    configuration = boto3.client("lambda").get_function_configuration(
        FunctionName=NAMES.serving_function, Qualifier=version
    )
    pin = json.loads(configuration["Environment"]["Variables"][RolloutEnv.MODEL_PIN.value])
    return int(pin["version"])


def served_version(gateway: Gateway) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    connection.request(
        "POST",
        f"/{gateway.stage}/v1/prices",
        json.dumps(example_diamond()),
        {"Content-Type": "application/json"},
    )
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer.get("model_version")


@pytest.fixture(scope="module")
def first(
    emulator: EmbeddedEmulator, deployment: Deployment, gateway: Gateway, served_model_dir: Path
) -> registry.PackageRecord:
    """The first model: nothing to compare with, so it is production at once, and the gateway
    serves it once it has followed the alias."""
    record = approve(emulator, publish(deployment, served_model_dir))
    assert production() == record.version
    deadline = time.monotonic() + 30
    while served_version(gateway) != record.version and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_version(gateway) == record.version
    return record


def test_a_canary_completes_and_the_alias_ends_on_the_new_version_with_no_failed_request(
    emulator: EmbeddedEmulator,
    deployment: Deployment,
    gateway: Gateway,
    first: registry.PackageRecord,
    served_model_dir: Path,
) -> None:
    # GIVEN production, and traffic flowing through the gateway
    with BackgroundTraffic(gateway.port, gateway.stage) as traffic:
        assert traffic.wait_until_flowing()
        # WHEN an equally good model is approved
        candidate = approve(emulator, publish(deployment, served_model_dir))
        time.sleep(1)
    # THEN CodeDeploy (the stand-in) shifted 10 %, then all, and production followed
    info = latest_deployment()
    timeline = "\n".join(info["deploymentStatusMessages"])  # type: ignore[arg-type]
    assert info["status"] == "Succeeded", timeline
    assert "10 % of live" in timeline and "100 % of live" in timeline
    assert production() == candidate.version
    live = alias()
    assert pinned_version_of(str(live["FunctionVersion"])) == candidate.version
    assert not (live.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    # AND no request failed, some were answered by the canary while it held 10 %, and the last
    # ones by the new production
    assert traffic.answers and not traffic.failed()
    versions = [a[2] for a in traffic.answers]
    assert first.version in versions and candidate.version in versions
    assert versions[-1] == candidate.version
    assert registry.describe(boto3.client("sagemaker"), candidate.arn).approved_at


def test_a_candidate_whose_prices_disagree_is_rolled_back_within_an_evaluation_period(
    emulator: EmbeddedEmulator,
    deployment: Deployment,
    gateway: Gateway,
    first: registry.PackageRecord,
    mislabelled_model_dir: Path,
) -> None:
    before = production()
    live_before = alias()["FunctionVersion"]
    with BackgroundTraffic(gateway.port, gateway.stage) as traffic:
        assert traffic.wait_until_flowing()
        bad = approve(emulator, publish(deployment, mislabelled_model_dir))
    info = latest_deployment()
    timeline = info["deploymentStatusMessages"]
    assert info["status"] == "Stopped", timeline
    disagreement = rollback_alarms(NAMES, rollout_policy(STAGE), "prod")[2].name
    assert disagreement in str(info["additionalDeploymentStatusInfo"])
    # THEN production and the alias are as they were, the package says why it was rolled back
    assert production() == before
    assert alias()["FunctionVersion"] == live_before
    assert bad.status == registry.ApprovalStatus.REJECTED
    assert "Rolled back during rollout" in bad.description and disagreement in bad.description
    # AND the canary answered for at most the evaluation that first held its data
    assert not traffic.failed()
    _assert_prompt("disagreement", timeline, [a for a in traffic.answers if a[2] == bad.version])


def test_a_canary_that_answers_errors_is_rolled_back_and_production_is_unchanged(
    emulator: EmbeddedEmulator,
    deployment: Deployment,
    gateway: Gateway,
    first: registry.PackageRecord,
    served_model_dir: Path,
) -> None:
    before = production()
    live_before = alias()["FunctionVersion"]
    with BackgroundTraffic(gateway.port, gateway.stage) as traffic:
        assert traffic.wait_until_flowing()
        # an artifact that does not match its recorded sha256: the canary cannot load it
        broken = approve(emulator, publish(deployment, served_model_dir, recorded_sha="0" * 64))
        time.sleep(1)
    info = latest_deployment()
    assert info["status"] == "Stopped", info["deploymentStatusMessages"]
    timeline = info["deploymentStatusMessages"]
    errors_alarm = rollback_alarms(NAMES, rollout_policy(STAGE), "prod")[0].name
    assert errors_alarm in str(info["additionalDeploymentStatusInfo"])
    assert production() == before and alias()["FunctionVersion"] == live_before
    assert broken.status == registry.ApprovalStatus.REJECTED
    # the failures were the canary's share only, and ended with the rollback
    failed = traffic.failed()
    assert failed and {status for _, status, _ in failed} == {503}
    assert len(failed) < 0.5 * len(traffic.answers)
    assert traffic.answers[-1][1] == 200
    _assert_prompt("errors", timeline, failed)


def _seconds(timeline: object, text: str) -> float:
    line = next(line for line in timeline if text in line)  # type: ignore[attr-defined]
    return float(line.split("s ", 1)[0].lstrip("+"))


def _assert_prompt(kind: str, timeline: object, canary_answers: list[Answer]) -> None:
    """The canary answered for at most two periods: an alarm needs one period holding its data
    (CloudWatch's as the stand-in's), and traffic may reach the canary just after a tick. The
    gateway builds a version before routing to it (locally that is a cold start of the whole app),
    so the time from the shift itself is printed, not bounded tightly."""
    assert canary_answers, "no request reached the canary"
    span = canary_answers[-1][0] - canary_answers[0][0]
    shifted, rolled = _seconds(timeline, "10 % of live"), _seconds(timeline, "rolled back")
    print(
        f"{kind}: the canary answered for {span:.2f} s; rolled back {rolled - shifted:.2f} s after "
        f"the shift (period {PERIOD:.2f} s)"
    )
    assert span <= 2 * PERIOD + 0.5, timeline
    assert rolled - shifted <= 5 * PERIOD, timeline


SHADOW_STAGE = "shadow"
SHADOW_NAMES = StageNames(SHADOW_STAGE)


def test_a_shadow_logs_both_prices_for_its_sample_then_hands_over_to_the_canary(
    emulator: EmbeddedEmulator, served_model_dir: Path, mislabelled_model_dir: Path
) -> None:
    # GIVEN a stage whose candidates spend 3 minutes (3 s here) in shadow on half the requests
    shadowed = provision(stage=SHADOW_STAGE, archive_only=True, shadow=(0.5, 3))
    environment = (
        aws_environment()
        | serving_environment(shadowed)
        | {
            Env.LOCAL_GATEWAY_FUNCTION.value: SHADOW_NAMES.serving_function,
            Env.STAGE.value: SHADOW_STAGE,
        }
    )
    with Gateway(free_port(), workers=1, environment=environment) as gateway:
        current = approve(emulator, publish(shadowed, served_model_dir))
        deadline = time.monotonic() + 30
        while served_version(gateway) != current.version and time.monotonic() < deadline:
            time.sleep(0.2)
        with BackgroundTraffic(gateway.port, gateway.stage) as traffic:
            time.sleep(0.5)
            candidate = publish(shadowed, mislabelled_model_dir)
            registry.set_status(
                boto3.client("sagemaker"), candidate, registry.ApprovalStatus.APPROVED, "test"
            )
            time.sleep(2)
            # WHILE in shadow, production answers every request
            in_shadow = list(traffic.answers)
            emulator.settle(timeout=120)
    assert not traffic.failed()
    # THEN production answered throughout the shadow, and the candidate never did before its canary
    assert {version for _, _, version in in_shadow} == {current.version}
    # AND the inference log holds both prices for the sampled half, with their gap
    s3 = boto3.client("s3")
    rows = []
    for key in lake.list_keys(s3, shadowed.data_bucket, "inference/"):
        frame = lake.read_csv(s3, shadowed.data_bucket, key)
        rows += frame.to_dict("records")
    shadowed_rows = [r for r in rows if r.get("compared_role") == "shadow"]
    began = min(r["logged_at"] for r in shadowed_rows)
    canary = min(r["logged_at"] for r in rows if r["model_version"] == candidate.version)
    during = [r for r in rows if began <= r["logged_at"] < canary]
    # every answer of the shadow period came from production; about half were compared
    assert {r["model_version"] for r in during} == {current.version}
    share = sum(r.get("compared_role") == "shadow" for r in during) / len(during)
    assert len(during) > 50 and 0.35 < share < 0.65, (share, len(during))
    assert {int(r["compared_version"]) for r in shadowed_rows} == {candidate.version}
    # AND the shadow's report says where they disagree, by decile of production's price
    key = f"reports/rollouts/v{candidate.version}-shadow.json"
    report = json.loads(s3.get_object(Bucket=shadowed.data_bucket, Key=key)["Body"].read())
    assert report["compared"] > 0 and len(report["deciles"]) == 10
    assert report["disagreeing_share"] > 0.3  # the mislabelled colours
    # AND then the canary ran (and, for this model, rolled back)
    rejected = registry.describe(boto3.client("sagemaker"), candidate.arn)
    assert rejected.status == registry.ApprovalStatus.REJECTED, rejected.description
    assert read_pointer(boto3.client("ssm"), SHADOW_NAMES.production_parameter).version == (
        current.version
    )


MANUAL_STAGE = "manual"


def test_with_manual_approval_the_pipeline_waits_and_facet_approve_starts_the_rollout(
    emulator: EmbeddedEmulator,
) -> None:
    # GIVEN a stage that approves by hand (prod's default), and a batch of fresh appraisals
    manual = provision(stage=MANUAL_STAGE, archive_only=True, poll_seconds=1, approval="manual")
    names = StageNames(MANUAL_STAGE)
    (batch,) = make_batches(1, rows=2000)
    boto3.client("s3").put_object(
        Bucket=manual.data_bucket,
        Key=f"raw/{batch.name}",
        Body=batch.frame.to_csv(index=False).encode(),
    )
    sfn = boto3.client("stepfunctions")
    (arn,) = drain(boto3.client("sqs"), sfn, manual.trigger_queue_url, manual.state_machine_arn, 1)
    result = wait_for(sfn, arn, timeout=300)
    emulator.settle()
    # THEN the gate passed it, and it waits for a person with the pipeline's evidence
    assert result.status == "SUCCEEDED", result.cause
    deployment_step = result.output["deployment"]  # type: ignore[index]
    assert not deployment_step["deployed"] and "waits for approval" in deployment_step["reason"]
    (pending,) = registry.list_packages(boto3.client("sagemaker"), names.model_package_group)
    assert pending.status == registry.ApprovalStatus.PENDING
    assert "approves manually" in pending.description
    assert read_pointer(boto3.client("ssm"), names.production_parameter).arn is None
    # WHEN a person approves it with the CLI, the approval event rolls it out
    cli = {Env.STAGE.value: MANUAL_STAGE}
    approved = CliRunner().invoke(app, ["approve", str(pending.version)], env=cli)
    assert approved.exit_code == 0, approved.output
    assert read_pointer(boto3.client("ssm"), names.production_parameter).arn == pending.arn
    # AND `facet rollout` shows the alias on a version pinned to it, the policy and the alarms
    shown = CliRunner().invoke(app, ["rollout"], env=cli)
    assert shown.exit_code == 0, shown.output
    assert f"model v{pending.version}" in shown.output and "approval manual" in shown.output
    for alarm in rollback_alarms(names, rollout_policy(MANUAL_STAGE), "prod"):
        assert alarm.name in shown.output
