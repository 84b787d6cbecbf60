"""A scoring run's SageMaker model lives only as long as its transform job: the state machine
deletes it after a completed job (tests/e2e/test_bulk_scoring.py), the failure step after any
other end."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from contracts.names import Env, StageNames
from pipeline.scoring import record_scoring_failure, results_prefix

REGION = "us-east-1"
NAMES = StageNames("dev")
BUCKET = "facet-dev-data-lake-123456789012-us-east-1"
JOB = f"{NAMES.transform_job_prefix}-20261202T090000-0a1b2c3d"


@pytest.fixture
def lake(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv(Env.DATA_BUCKET.value, BUCKET)
    monkeypatch.setenv(Env.STAGE.value, "dev")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("s3")


def _failed_run(job_name: str) -> dict[str, object]:
    return {
        "bucket": BUCKET,
        "key": "scoring/incoming/spring.csv",
        "event_time": "2026-12-02T09:00:00Z",
        "run": {"execution": "x"},
        "scoring": {"name": "spring-20261202T090000", "job_name": job_name, "accepted_rows": 10},
        "error": {"Error": "TransformFailed", "Cause": "ClientError: the model said no"},
    }


def test_a_failed_runs_model_is_deleted_and_the_summary_says_so(lake: object) -> None:
    # GIVEN a run that created its model, then failed in the transform job
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model(
        ModelName=JOB,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/facet-dev-transform",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/facet-serving:1"},
    )
    # WHEN the failure is recorded
    record_scoring_failure(_failed_run(JOB), None)
    # THEN the model is gone and the summary records it with the reason
    assert sagemaker.list_models(NameContains=JOB)["Models"] == []
    body = boto3.client("s3").get_object(
        Bucket=BUCKET, Key=f"{results_prefix('spring-20261202T090000')}summary.json"
    )["Body"]
    summary = json.loads(body.read())
    assert summary["status"] == "Failed" and summary["run_model"] == "deleted"
    assert "the model said no" in summary["reason"]


def test_a_run_that_failed_before_its_model_still_records_its_failure(lake: object) -> None:
    record_scoring_failure(_failed_run(JOB), None)
    body = boto3.client("s3").get_object(
        Bucket=BUCKET, Key=f"{results_prefix('spring-20261202T090000')}summary.json"
    )["Body"]
    summary = json.loads(body.read())
    assert summary["status"] == "Failed" and summary["run_model"] == "not found"
