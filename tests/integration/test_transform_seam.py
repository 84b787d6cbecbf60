"""The emulator's batch transform seam on its own: moto's CreateTransformJob runs the serving
image's hosting entry point per instance, drives the job's status, and fails with a reason."""

from __future__ import annotations

import inspect
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from contracts.names import CONTAINER_MODEL_DIR, LOCAL_SERVING_IMAGE, Env
from contracts.schema import FEATURE_NAMES, scored_columns
from local_emulation.emulator import EmbeddedEmulator
from local_emulation.simulate import make_catalogue
from serving.pricing import price_table
from training.artifact_store import pack
from training.predict import load_model


def test_transform_seam_signature_is_what_we_patch(aws_emulator: EmbeddedEmulator) -> None:
    from moto.sagemaker.models import FakeTransformJob, SageMakerModelBackend

    from local_emulation.emulator import _moto_own

    parameters = inspect.signature(_moto_own(SageMakerModelBackend.create_transform_job)).parameters
    for name in ("transform_job_name", "model_name", "transform_input", "transform_output"):
        assert name in parameters, name
    source = inspect.getsource(FakeTransformJob)
    for attribute in ("transform_job_status", "failure_reason", "transform_end_time"):
        assert attribute in source, attribute


@pytest.fixture(scope="module")
def setup(aws_emulator: EmbeddedEmulator, served_model_dir: Path) -> dict[str, Any]:
    bucket = f"transform-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="model/model.tar.gz", Body=pack(served_model_dir))
    return {"bucket": bucket, "model_data": f"s3://{bucket}/model/model.tar.gz"}


def _run(setup: dict[str, Any], body: bytes, *, image: str = LOCAL_SERVING_IMAGE) -> dict[str, Any]:
    sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
    name = f"job-{uuid.uuid4().hex[:10]}"
    s3.put_object(Bucket=setup["bucket"], Key=f"{name}/input/part-00000.csv", Body=body)
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/transform",
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": setup["model_data"],
            "Environment": {Env.MODEL_DIR.value: CONTAINER_MODEL_DIR},
        },
    )
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=name,
        MaxPayloadInMB=1,
        BatchStrategy="MultiRecord",
        Environment={Env.EXPLAIN.value: "false"},
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{setup['bucket']}/{name}/input/",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{setup['bucket']}/{name}/output/",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )
    statuses = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = sagemaker.describe_transform_job(TransformJobName=name)
        statuses.append(job["TransformJobStatus"])
        if statuses[-1] in {"Completed", "Failed", "Stopped"}:
            break
        time.sleep(0.2)
    return {"name": name, "job": job, "statuses": statuses}


def test_a_job_runs_the_hosting_entry_point_and_writes_one_line_per_input_line(
    setup: dict[str, Any], served_model_dir: Path
) -> None:
    stones = make_catalogue(60_000, seed=5)  # ~2.4 MB: three mini-batches at 1 MB
    run = _run(setup, stones.to_csv(index=False, header=False).encode())
    assert run["job"]["TransformJobStatus"] == "Completed", run["job"].get("FailureReason")
    assert run["statuses"][0] == "InProgress"
    body = boto3.client("s3").get_object(
        Bucket=setup["bucket"], Key=f"{run['name']}/output/part-00000.csv.out"
    )["Body"]
    scored = pd.read_csv(body, header=None, names=list(scored_columns(False)))
    # one line per stone, in order, wherever the mini-batches were cut: the model's own prices
    expected = price_table(
        load_model(served_model_dir),
        stones.loc[:, list(FEATURE_NAMES)].to_dict("records"),
        explain=False,
    ).prices
    assert scored["price_usd"].tolist() == [round(p, 2) for p in expected.tolist()]


def test_a_container_that_refuses_a_mini_batch_fails_the_job_with_its_message(
    setup: dict[str, Any],
) -> None:
    good = make_catalogue(10, seed=6).to_csv(index=False, header=False)
    run = _run(setup, (good + "0.3,Superb,E,SI1,61.0,55.0,4.3,4.3,2.6\n").encode())
    assert run["job"]["TransformJobStatus"] == "Failed"
    reason = run["job"]["FailureReason"]
    assert "422" in reason and "cut" in reason and "part-00000.csv lines 1-11" in reason


def test_an_image_the_emulator_cannot_run_fails_the_job_saying_so(setup: dict[str, Any]) -> None:
    run = _run(setup, b"0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6\n", image="123.dkr.ecr/other:1")
    assert run["job"]["TransformJobStatus"] == "Failed"
    assert "cannot run here" in run["job"]["FailureReason"]
