"""The real state machine, run by moto, with the real handlers and training job (local compute).

Tests run in order on one deployment, like a jeweller's week: a first batch with bad rows, the same
event delivered twice, a crashing training job, a corrupt batch, two batches at once, a rollback.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pandas as pd
import pytest
from typer.testing import CliRunner

from contracts.names import (
    PARAM_PRODUCTION_MODEL,
    STEP_FUNCTIONS,
    AslSubstitution,
    Env,
    step_function_name,
)
from local_emulation.cli import app
from local_emulation.emulator import EmbeddedEmulator
from local_emulation.provision import Deployment, provision
from local_emulation.simulate import Change, make_batches
from local_emulation.triggers import ExecutionResult, drain, start, wait_for
from training import registry

pytestmark = pytest.mark.slow
BUILD_DATASET = step_function_name(STEP_FUNCTIONS[AslSubstitution.BUILD_DATASET_FUNCTION_ARN])


@pytest.fixture(scope="module")
def deployment(aws_emulator: EmbeddedEmulator) -> Deployment:
    return provision(archive_only=True, poll_seconds=1)


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
    return [wait_for(sfn, arn, timeout=300) for arn in arns]


def packages(deployment: Deployment) -> list[registry.PackageRecord]:
    return registry.list_packages(boto3.client("sagemaker"), deployment.model_package_group)


def production_version(deployment: Deployment) -> int | None:
    current = registry.production(packages(deployment))
    return current.version if current else None


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
        boto3.client("ssm").get_parameter(Name=PARAM_PRODUCTION_MODEL)["Parameter"]["Value"]
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


def _set_training_hyperparameters(value: dict[str, str]) -> None:
    client = boto3.client("lambda")
    variables = client.get_function_configuration(FunctionName=BUILD_DATASET)["Environment"][
        "Variables"
    ]
    variables[Env.TRAINING_HYPERPARAMETERS.value] = json.dumps(value)
    client.update_function_configuration(
        FunctionName=BUILD_DATASET, Environment={"Variables": variables}
    )


def test_training_job_crash_fails_the_run_visibly_and_keeps_production(
    deployment: Deployment,
) -> None:
    # GIVEN a training configuration the training code refuses
    _set_training_hyperparameters({"lgb_num_leaves": "many"})
    batch = make_batches(1, rows=2000, start=1)[0]
    try:
        land(deployment, batch.name, batch.frame)
        (result,) = run_all(deployment)
    finally:
        _set_training_hyperparameters({})
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


def test_shuffled_prices_are_rejected_and_production_unchanged(deployment: Deployment) -> None:
    before = production_version(deployment)
    batch = make_batches(1, rows=2000, changes=[Change.SHUFFLE], start=2)[0]
    land(deployment, batch.name, batch.frame)
    (result,) = run_all(deployment)
    assert result.status == "SUCCEEDED", result.cause
    latest = packages(deployment)[-1]
    assert latest.status == "Rejected"
    assert "above the floor" in latest.description
    assert production_version(deployment) == before


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
    current = registry.production(records)
    assert current is not None and current.approved_at == max(r.approved_at for r in approved)
    assert all(r.status in {"Approved", "Rejected"} for r in records)


def test_rollback_makes_an_earlier_version_production_again(deployment: Deployment) -> None:
    result = CliRunner().invoke(app, ["rollback", "1"])
    assert result.exit_code == 0, result.output
    assert production_version(deployment) == 1
    pointer = json.loads(
        boto3.client("ssm").get_parameter(Name=PARAM_PRODUCTION_MODEL)["Parameter"]["Value"]
    )
    assert pointer["version"] == 1
    missing = CliRunner().invoke(app, ["rollback", "99"])
    assert missing.exit_code == 2
    assert "no model version 99" in missing.output


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
