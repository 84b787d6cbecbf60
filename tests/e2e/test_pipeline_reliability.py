"""The real state machine, run by moto, with the real handlers and training job (local compute).

Tests run in order on one deployment, like a jeweller's week: a first batch with bad rows, the same
event delivered twice, a crashing training job, a corrupt batch, two batches at once, a rollback.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from typer.testing import CliRunner

from contracts.names import (
    DATASETS_PREFIX,
    STEP_FUNCTIONS,
    AslSubstitution,
    Env,
    StageNames,
    figure_name,
)
from contracts.settings import Settings
from local_emulation.cli import app
from local_emulation.emulator import EmbeddedEmulator
from local_emulation.provision import Deployment, provision
from local_emulation.simulate import Change, make_batches
from local_emulation.triggers import ExecutionResult, drain, start, wait_for
from pipeline import batches
from serving.model_store import AwsClients, ModelStore
from tests.e2e.rollout_speed import rollouts_at
from training import registry

pytestmark = pytest.mark.slow
NAMES = StageNames()  # the emulator's default stage, as the CLI uses it
BUILD_DATASET = NAMES.step_function(STEP_FUNCTIONS[AslSubstitution.BUILD_DATASET_FUNCTION_ARN])
EVALUATE = NAMES.step_function(STEP_FUNCTIONS[AslSubstitution.EVALUATE_FUNCTION_ARN])
PRODUCTION_POINTER = NAMES.production_parameter


# What this file checks (events, gates, ledger, registry, rollbacks) holds for any model; a
# LightGBM of at most 150 rounds trains and explains in about a third of the default's time, and
# it is the only candidate (it wins against linear and tree anyway: the same model, one fit).
HYPERPARAMETERS = {"lgb_max_rounds": "150"}
MODELS = "lightgbm"


# What this file checks of a deploy is which version ends up in production, not the canary on
# the way (tests/e2e/test_rollout.py does): its rollouts run 600x faster than AWS's instead of
# the emulator's 120x (0.5 s instead of 2.5 s each: idle time on this worker's one CPU).
ROLLOUT_SPEEDUP = 600.0


@pytest.fixture(scope="module")
def deployment(aws_emulator: EmbeddedEmulator) -> Iterator[Deployment]:
    EMULATOR.append(aws_emulator)
    with rollouts_at(aws_emulator, ROLLOUT_SPEEDUP):
        yield provision(
            archive_only=True, poll_seconds=1, models=MODELS, hyperparameters=HYPERPARAMETERS
        )


EMULATOR: list[EmbeddedEmulator] = []


def settle() -> None:
    """Let the registry's state-change events reach the deploy function and the rollouts they
    start finish (asynchronous)."""
    EMULATOR[0].settle()


def land(deployment: Deployment, name: str, frame: pd.DataFrame) -> str:
    key = f"raw/{name}"
    boto3.client("s3").put_object(
        Bucket=deployment.data_bucket, Key=key, Body=frame.to_csv(index=False).encode()
    )
    return key


def run_all(deployment: Deployment) -> list[ExecutionResult]:
    sfn = boto3.client("stepfunctions")
    arns = drain(
        boto3.client("sqs"),
        sfn,
        deployment.trigger_queue_url,
        deployment.state_machine_arn,
        wait_seconds=1,
    )
    assert arns, "the S3 event did not reach the trigger queue"
    results = [wait_for(sfn, arn, timeout=300) for arn in arns]
    settle()
    return results


def packages(deployment: Deployment) -> list[registry.PackageRecord]:
    return registry.list_packages(boto3.client("sagemaker"), deployment.model_package_group)


def production_version(deployment: Deployment) -> int | None:
    """Production, as everything reads it: the pointer the deploy function writes."""
    settle()
    return registry.read_pointer(boto3.client("ssm"), PRODUCTION_POINTER).version


def read_text(deployment: Deployment, key: str) -> str:
    body = boto3.client("s3").get_object(Bucket=deployment.data_bucket, Key=key)["Body"].read()
    return str(body.decode())


def read_csv(deployment: Deployment, key: str) -> pd.DataFrame:
    body = boto3.client("s3").get_object(Bucket=deployment.data_bucket, Key=key)["Body"].read()
    return pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)


BAD_ROWS: dict[int, dict[str, Any]] = {
    7: {"price": "-1"},
    150: {"x": "0"},
    333: {"cut": "Excellent"},
    999: {"carat": "heavy"},
    1200: {"depth": ""},
    1777: {"clarity": "FL"},
    2500: {"y": "31.8"},
    3000: {"table": "NaN"},
    3500: {"color": "Z"},
    4200: {"z": "0"},
    4999: {"price": "free"},
}


def test_first_batch_quarantines_exactly_the_bad_rows_and_becomes_production(
    deployment: Deployment,
) -> None:
    # GIVEN a 5,000-row batch with 11 bad rows of different kinds, and an empty registry
    batch = make_batches(1, rows=5000)[0]
    frame = batch.frame.astype(str)
    for position, change in BAD_ROWS.items():
        for column, value in change.items():
            frame.loc[position, column] = value
    land(deployment, batch.name, frame)
    # WHEN the pipeline runs
    (result,) = run_all(deployment)
    # THEN exactly those rows are quarantined with reasons, nothing else is lost, v1 is production
    assert result.status == "SUCCEEDED", result.cause
    validation = result.output["validation"]  # type: ignore[index]
    assert (
        validation["input_rows"],
        validation["accepted_rows"],
        validation["quarantined_rows"],
    ) == (5000, 4989, 11)
    quarantined = read_csv(deployment, validation["quarantine_key"])
    assert sorted(int(r) - 1 for r in quarantined["row"]) == sorted(BAD_ROWS)
    assert all(quarantined["reasons"].str.len() > 0)
    assert "cut 'Excellent' is not one of Fair, Good, Very Good, Premium, Ideal" in set(
        quarantined["reasons"]
    )
    assert len(read_csv(deployment, validation["validated_key"])) == 4989
    assert [(p.version, p.status) for p in packages(deployment)] == [(1, "Approved")]
    assert production_version(deployment) == 1
    pointer = json.loads(
        boto3.client("ssm").get_parameter(Name=PRODUCTION_POINTER)["Parameter"]["Value"]
    )
    assert pointer["version"] == 1


def test_first_model_is_registered_with_its_provenance(deployment: Deployment) -> None:
    (record,) = packages(deployment)
    for key in (
        "artifact_sha256",
        "dataset_hash",
        "holdout_hash",
        "code_version",
        "holdout_mape",
        "reason",
        "retrain_reason",
        "training_job",
    ):
        assert record.metadata.get(key), key
    assert (
        record.metadata["holdout_hash"]
        == "702c047c2f951581fa843fde9b08b7fa9845f349783b130b1409be56defb797a"
    )
    assert record.model_data_url.endswith("/output/model.tar.gz")
    assert "first model" in record.description


def test_same_event_twice_trains_once(deployment: Deployment) -> None:
    # GIVEN an already processed batch's S3 event, delivered again (EventBridge is at-least-once)
    s3_event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": deployment.data_bucket},
            "object": {"key": "raw/" + make_batches(1)[0].name},
        },
    }
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=deployment.trigger_queue_url, MessageBody=json.dumps(s3_event))
    sqs.send_message(QueueUrl=deployment.trigger_queue_url, MessageBody=json.dumps(s3_event))
    # WHEN both deliveries run
    results = run_all(deployment)
    # THEN both stop at the ledger and the registry still has one version
    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert all(r.output["validation"]["already_processed"] for r in results)  # type: ignore[index]
    assert len(packages(deployment)) == 1


def _set_environment(function: str, name: str, value: str | None) -> None:
    client = boto3.client("lambda")
    variables = client.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    if value is None:
        variables.pop(name, None)
    else:
        variables[name] = value
    client.update_function_configuration(
        FunctionName=function, Environment={"Variables": variables}
    )


def _set_training_hyperparameters(value: dict[str, str]) -> None:
    _set_environment(BUILD_DATASET, Env.TRAINING_HYPERPARAMETERS.value, json.dumps(value))


def test_training_job_crash_fails_the_run_visibly_and_keeps_production(
    deployment: Deployment,
) -> None:
    # GIVEN a training configuration the training code refuses
    _set_training_hyperparameters(HYPERPARAMETERS | {"lgb_num_leaves": "many"})
    batch = make_batches(1, rows=2000, start=1)[0]
    try:
        land(deployment, batch.name, batch.frame)
        (result,) = run_all(deployment)
    finally:
        _set_training_hyperparameters(HYPERPARAMETERS)
    # THEN the execution failed with the job's reason, and production is still v1
    assert result.status == "FAILED"
    assert result.error == "TrainingJobFailed"
    assert "hyperparameter lgb_num_leaves='many' is not a valid int" in (result.cause or "")
    assert production_version(deployment) == 1
    assert len(packages(deployment)) == 1
    report = (
        boto3.client("s3")
        .get_object(Bucket=deployment.data_bucket, Key=f"reports/{result.name}/report.md")["Body"]
        .read()
        .decode()
    )
    assert "lgb_num_leaves='many'" in report and "Production was left unchanged." in report
    models = CliRunner().invoke(app, ["models"])
    assert models.exit_code == 0, models.output
    assert (
        f"{result.name}: TrainingJobFailed: HyperparameterError: "
        "hyperparameter lgb_num_leaves='many'" in models.output
    )
    # AND the batch's ledger claim was released, so delivering it again trains it
    boto3.client("s3").copy_object(
        Bucket=deployment.data_bucket,
        Key=f"raw/{batch.name}",
        CopySource={"Bucket": deployment.data_bucket, "Key": f"raw/{batch.name}"},
        MetadataDirective="REPLACE",
    )
    (retry,) = run_all(deployment)
    assert retry.status == "SUCCEEDED", retry.cause
    assert not retry.output["validation"]["already_processed"]  # type: ignore[index]
    assert len(packages(deployment)) == 2


def training_jobs() -> int:
    return len(boto3.client("sagemaker").list_training_jobs(MaxResults=100)["TrainingJobSummaries"])


def test_shuffled_prices_are_quarantined_before_any_training_job(deployment: Deployment) -> None:
    # GIVEN a production model and a batch whose prices are shuffled between its stones
    before, versions, jobs = (
        production_version(deployment),
        len(packages(deployment)),
        training_jobs(),
    )
    batch = make_batches(1, rows=2000, changes=[Change.SHUFFLE], start=2)[0]
    land(deployment, batch.name, batch.frame)
    # WHEN the pipeline runs
    (result,) = run_all(deployment)
    # THEN the verdict is "inconsistent", the whole batch is in quarantine/ with that reason,
    # no training job was created, nothing was registered, production is unchanged
    assert result.status == "SUCCEEDED", result.cause
    validation = result.output["validation"]  # type: ignore[index]
    assert validation["verdict"]["kind"] == "inconsistent"
    assert validation["verdict"]["spread_ratio"] > 10
    assert "dataset" not in result.output  # type: ignore[operator]
    assert training_jobs() == jobs
    assert len(packages(deployment)) == versions and production_version(deployment) == before
    quarantined = read_csv(deployment, validation["quarantine_key"])
    assert len(quarantined) == 2000
    assert set(quarantined["reason_codes"]) == {"inconsistent_labels"}
    assert validation["validated_key"] is None
    record = batches.find(batches.load_all(boto3.client("s3"), deployment.data_bucket), batch.name)
    assert not record.trainable and record.verdict == "inconsistent"
    # AND the run report says so, with the residual chart
    report = read_text(deployment, f"reports/{result.name}/report.md")
    chart = figure_name("verdict", dt.date.today().isoformat())
    assert "Batch quarantined before training" in report and f"![verdict]({chart})" in report


def test_two_batches_in_quick_succession_give_two_runs_and_a_consistent_registry(
    deployment: Deployment,
) -> None:
    count = len(packages(deployment))
    for batch in make_batches(2, rows=2000, start=3):
        land(deployment, batch.name, batch.frame)
    results = run_all(deployment)
    assert len(results) == 2
    assert all(r.status == "SUCCEEDED" for r in results), [r.cause for r in results]
    records = packages(deployment)
    assert [r.version for r in records] == list(range(1, count + 3))
    approved = [r for r in records if r.status == "Approved"]
    latest = max(approved, key=lambda r: r.approved_at)
    assert production_version(deployment) == latest.version  # the latest approval is production
    assert all(r.status in {"Approved", "Rejected"} for r in records)


def test_rollback_makes_an_earlier_version_production_again(deployment: Deployment) -> None:
    result = CliRunner().invoke(app, ["rollback", "1"])
    assert result.exit_code == 0, result.output
    assert production_version(deployment) == 1
    pointer = json.loads(
        boto3.client("ssm").get_parameter(Name=PRODUCTION_POINTER)["Parameter"]["Value"]
    )
    assert pointer["version"] == 1
    missing = CliRunner().invoke(app, ["rollback", "99"])
    assert missing.exit_code == 2
    assert "no model version 99" in missing.output


def test_an_approval_in_the_console_changes_what_the_api_serves(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # GIVEN production, and another version
    store = ModelStore(
        Settings(model_package_group=deployment.model_package_group, model_refresh_seconds=0),
        lambda: AwsClients(boto3.client("sagemaker"), boto3.client("s3"), boto3.client("ssm")),
        cache_dir=tmp_path_factory.mktemp("console"),
    )
    now = production_version(deployment)
    assert store.get().info.version == now
    older = next(r for r in packages(deployment) if r.version != now)
    # WHEN a person approves it in the SageMaker console (UpdateModelPackage, status only)
    boto3.client("sagemaker").update_model_package(
        ModelPackageArn=older.arn, ModelApprovalStatus="Approved"
    )
    # THEN the registry's event moves the pointer, and the API serves it; nothing else changed
    assert production_version(deployment) == older.version
    store.get()
    store.wait_for_refresh()
    assert store.get().info.version == older.version
    again = registry.find_version(packages(deployment), older.version)
    assert again.artifact_sha256 == older.artifact_sha256 and again.approved_at > older.approved_at
    # AND rejecting production in the console falls back to the latest other approval
    boto3.client("sagemaker").update_model_package(
        ModelPackageArn=older.arn, ModelApprovalStatus="Rejected"
    )
    assert production_version(deployment) == now
    assert CliRunner().invoke(app, ["rollback", "1"]).exit_code == 0


def run_scheduled_check(deployment: Deployment, priced: pd.DataFrame, key: str) -> ExecutionResult:
    """Log `priced` stones as the API would, then run the daily drift check."""
    boto3.client("s3").put_object(
        Bucket=deployment.data_bucket, Key=key, Body=priced.to_csv(index=False).encode()
    )
    sfn = boto3.client("stepfunctions")
    result = wait_for(
        sfn, start(sfn, deployment.state_machine_arn, {"trigger": "schedule"}), timeout=300
    )
    assert result.status == "SUCCEEDED", result.cause
    return result


def test_scheduled_drift_check_without_drift_does_not_retrain(deployment: Deployment) -> None:
    count = len(packages(deployment))
    stones = make_batches(1, rows=500, start=6)[0].frame.drop(columns=["price"])
    result = run_scheduled_check(deployment, stones, "inference/date=2026-02-01/a.csv")
    assert result.output["drift_check"]["retrain"] is False  # type: ignore[index]
    assert "no feature drifted" in result.output["drift_check"]["reason"]  # type: ignore[index]
    assert len(packages(deployment)) == count


def test_scheduled_drift_check_retrains_when_priced_stones_drift(deployment: Deployment) -> None:
    count = len(packages(deployment))
    heavy = make_batches(1, rows=1000, changes=[Change.SIZES], start=7)[0].frame.drop(
        columns=["price"]
    )
    result = run_scheduled_check(deployment, heavy, "inference/date=2026-02-02/b.csv")
    drift_check = result.output["drift_check"]  # type: ignore[index]
    assert drift_check["retrain"] is True
    assert "carat PSI" in drift_check["reason"] and "(shifted)" in drift_check["reason"]
    assert len(packages(deployment)) == count + 1
    assert "scheduled drift check" in packages(deployment)[-1].metadata["retrain_reason"]


def dataset_batches(deployment: Deployment, dataset_hash: str) -> list[str]:
    manifest = json.loads(read_text(deployment, f"{DATASETS_PREFIX}{dataset_hash}/manifest.json"))
    return [b["key"] for b in manifest["batches"]]


def test_a_batch_whose_candidate_loses_by_a_hair_stays_in_the_next_training_set(
    deployment: Deployment,
) -> None:
    # GIVEN a clean batch whose candidate loses the gate (the margin set out of reach)
    first, second = make_batches(2, rows=2000, start=8)
    _set_environment(EVALUATE, "FACET_GATE_MIN_MAPE_IMPROVEMENT", "0.5")
    try:
        land(deployment, first.name, first.frame)
        (lost,) = run_all(deployment)
    finally:
        _set_environment(EVALUATE, "FACET_GATE_MIN_MAPE_IMPROVEMENT", None)
    assert lost.output["evaluation"]["decision"] == "reject"  # type: ignore[index]
    assert "needs to be at least 50.000 points better" in lost.output["evaluation"]["reason"]  # type: ignore[index]
    # WHEN the next batch trains
    land(deployment, second.name, second.frame)
    (following,) = run_all(deployment)
    # THEN the losing candidate's batch is in the next training set (its data was good)
    assert following.status == "SUCCEEDED", following.cause
    used = dataset_batches(deployment, following.output["dataset"]["dataset_hash"])  # type: ignore[index]
    assert f"raw/{first.name}" in used and f"raw/{second.name}" in used


def test_rollback_refuses_a_version_that_was_never_production(deployment: Deployment) -> None:
    never = next(r for r in packages(deployment) if not registry.ever_approved(r))
    refused = CliRunner().invoke(app, ["rollback", str(never.version)])
    assert refused.exit_code == 2 and "was never approved" in refused.output
    assert registry.find_version(packages(deployment), never.version).status == never.status
    forced = CliRunner().invoke(app, ["rollback", str(never.version), "--force"])
    assert forced.exit_code == 0, forced.output
    after = registry.find_version(packages(deployment), never.version)
    assert after.status == "Approved" and never.description in after.description  # both kept
    assert after.metadata["reason"] == never.metadata["reason"]
    assert CliRunner().invoke(app, ["rollback", "1"]).exit_code == 0


def test_a_market_shift_waits_for_approval_and_facet_approve_promotes_it(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # GIVEN production, and a batch of the same kind of stones priced 15 % higher
    before = production_version(deployment)
    store = ModelStore(
        Settings(model_package_group=deployment.model_package_group, model_refresh_seconds=0),
        lambda: AwsClients(boto3.client("sagemaker"), boto3.client("s3"), boto3.client("ssm")),
        cache_dir=tmp_path_factory.mktemp("store"),
    )
    assert store.get().info.version == before
    batch = make_batches(1, rows=5000, changes=[Change.PRICES], start=10)[0]
    land(deployment, batch.name, batch.frame)
    # WHEN the pipeline runs
    (result,) = run_all(deployment)
    # THEN the verdict is a market shift of about +15 %, the candidate wins on recent data and
    # waits for a person; production is unchanged
    assert result.status == "SUCCEEDED", result.cause
    verdict = result.output["validation"]["verdict"]  # type: ignore[index]
    assert verdict["kind"] == "market_shift" and 0.13 < verdict["shift"] < 0.17
    assert all(0.08 < d < 0.22 for d in verdict["decile_shifts"])
    evaluation = result.output["evaluation"]  # type: ignore[index]
    assert evaluation["decision"] == "pending" and evaluation["gate_holdout"] == "recent"
    assert evaluation["recent"]["candidate"]["mape"] < evaluation["recent"]["production"]["mape"]
    pending = packages(deployment)[-1]
    assert pending.status == "PendingManualApproval" and "market shift of +1" in pending.description
    assert production_version(deployment) == before
    # WHEN a person approves it
    approved = CliRunner().invoke(app, ["approve", str(pending.version)])
    # THEN it is production and the API's model store follows
    assert approved.exit_code == 0, approved.output
    assert production_version(deployment) == pending.version
    store.get()
    store.wait_for_refresh()
    assert store.get().info.version == pending.version
    assert (
        "market shift" in registry.find_version(packages(deployment), pending.version).description
    )


def test_with_the_auto_gate_a_market_shift_is_promoted(deployment: Deployment) -> None:
    # GIVEN the gate set to follow a market by itself, and the market moving again
    _set_environment(EVALUATE, "FACET_GATE_ON_SHIFT", "auto")
    batch = make_batches(1, rows=5000, changes=[Change.PRICES], start=11, price_level=1.15)[0]
    try:
        land(deployment, batch.name, batch.frame)
        (result,) = run_all(deployment)
    finally:
        _set_environment(EVALUATE, "FACET_GATE_ON_SHIFT", None)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["validation"]["verdict"]["kind"] == "market_shift"  # type: ignore[index]
    assert result.output["evaluation"]["decision"] == "approve"  # type: ignore[index]
    assert production_version(deployment) == packages(deployment)[-1].version


def test_a_clean_batch_after_a_shift_and_a_corrupt_batch_trains_a_model_that_passes_the_floors(
    deployment: Deployment,
) -> None:
    # GIVEN a shifted market adopted and a corrupt batch quarantined (both above)
    level = 1.15 * 1.15
    corrupt = make_batches(1, rows=2000, changes=[Change.SHUFFLE], start=12, price_level=level)[0]
    land(deployment, corrupt.name, corrupt.frame)
    (quarantined,) = run_all(deployment)
    assert quarantined.output["validation"]["verdict"]["kind"] == "inconsistent"  # type: ignore[index]
    # WHEN fresh appraisals at today's prices arrive
    batch = make_batches(1, rows=3000, start=13, price_level=level)[0]
    land(deployment, batch.name, batch.frame)
    (result,) = run_all(deployment)
    # THEN the verdict is consistent and the candidate passes the floors (on recent data)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["validation"]["verdict"]["kind"] == "consistent"  # type: ignore[index]
    evaluation = result.output["evaluation"]  # type: ignore[index]
    assert (
        "above the floor" not in evaluation["reason"]
        and "below the floor" not in evaluation["reason"]
    )
    assert evaluation["recent"]["candidate"]["mape"] < 0.08
    # AND the corrupt batch is in no training set
    used = dataset_batches(deployment, result.output["dataset"]["dataset_hash"])  # type: ignore[index]
    assert f"raw/{corrupt.name}" not in used and f"raw/{batch.name}" in used


def test_facet_batches_lists_verdicts_and_exclude_keeps_a_batch_out(
    deployment: Deployment,
) -> None:
    listing = CliRunner().invoke(app, ["batches"])
    assert listing.exit_code == 0, listing.output
    assert "inconsistent" in listing.output and "market_shift" in listing.output
    target = make_batches(1, rows=2000, start=8)[0].name
    excluded = CliRunner().invoke(
        app, ["batches", "exclude", target, "--reason", "appraiser's scale was off"]
    )
    assert excluded.exit_code == 0, excluded.output
    s3 = boto3.client("s3")
    record = batches.find(batches.load_all(s3, deployment.data_bucket), target)
    assert record.excluded and not record.trainable
    assert any(e.action == "excluded" for e in record.events)
    lineage = s3.list_objects_v2(Bucket=deployment.data_bucket, Prefix="curated/lineage/")
    assert any(target.split("_")[-1].split(".")[0] in o["Key"] for o in lineage["Contents"])
    again = CliRunner().invoke(app, ["batches", "exclude", target, "--reason", "twice"])
    assert again.exit_code == 2 and "excluded already" in again.output


def test_a_rejected_market_shift_is_found_again_by_the_daily_check(deployment: Deployment) -> None:
    # GIVEN a market shift whose candidate a person rejected: production is still the old level
    batch = make_batches(1, rows=3000, changes=[Change.PRICES], start=14, price_level=1.15**2)[0]
    land(deployment, batch.name, batch.frame)
    (shifted,) = run_all(deployment)
    assert shifted.output["evaluation"]["decision"] == "pending"  # type: ignore[index]
    before = production_version(deployment)
    pending = packages(deployment)[-1].version
    rejected = CliRunner().invoke(
        app, ["reject", str(pending), "--reason", "waiting for the quarterly index"]
    )
    assert rejected.exit_code == 0, rejected.output
    record = registry.find_version(packages(deployment), pending)
    assert record.status == "Rejected" and "quarterly index" in record.description
    assert "market shift" in record.description  # the evidence is kept beside the decision
    # WHEN the daily check runs
    stones = make_batches(1, rows=500, start=15)[0].frame.drop(columns=["price"])
    result = run_scheduled_check(deployment, stones, "inference/date=2026-03-01/c.csv")
    # THEN it judges the labelled batch production was not trained on, finds the shift again,
    # and retrains; the candidate waits for a person again
    drift_check = result.output["drift_check"]  # type: ignore[index]
    assert drift_check["verdict"]["kind"] == "market_shift" and drift_check["retrain"] is True
    assert f"raw/{batch.name}" in drift_check["reason"]
    assert result.output["evaluation"]["decision"] == "pending"  # type: ignore[index]
    assert production_version(deployment) == before


def test_ingesting_a_processed_batch_again_points_at_no_empty_report(
    deployment: Deployment, tmp_path: Path
) -> None:
    batch = make_batches(1, rows=2000, start=8)[0]
    path = batch.write(tmp_path)
    result = CliRunner().invoke(app, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "Skipped: this batch was processed already." in result.output
    assert "(no report: nothing was done in this run)" in result.output
    assert "report: build/reports" not in result.output
