"""The two places local_emulation plugs into moto. An upgrade that moves either fails here, loudly.

Each test drives the seam through the real AWS API against the embedded emulator and checks that
our compute, not moto's default, answered.
"""

from __future__ import annotations

import inspect
import io
import json
import tarfile
import time
import zipfile
from importlib import metadata
from typing import Any

import boto3
import pytest

from local_emulation.emulator import EmbeddedEmulator

HANDLER_CODE = """
import os, sys

def handler(event, context):
    return {
        "echo": event,
        "module_file": __file__,
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "greeting": os.environ.get("GREETING"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
    }

def fails(event, context):
    raise ValueError("the batch has no rows")

def sleeps(event, context):
    import time
    time.sleep(30)

def records(event, context):
    import boto3, json
    boto3.client("s3").put_object(
        Bucket=os.environ["RECORD_BUCKET"], Key="delivered.json", Body=json.dumps(event)
    )
"""


RECORD_BUCKET = "seam-records"


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("seam_probe.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lambda_client(aws_emulator: EmbeddedEmulator) -> Any:
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="seam-probe-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = boto3.client("lambda")
    for name, handler, timeout in [
        ("seam-probe", "handler", 10),
        ("seam-fails", "fails", 10),
        ("seam-sleeps", "sleeps", 2),
        ("seam-records", "records", 10),
    ]:
        client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=f"seam_probe.{handler}",
            Code={"ZipFile": _zip(HANDLER_CODE)},
            Timeout=timeout,
            MemorySize=512,
            Environment={
                "Variables": {
                    "GREETING": "hello from the function's environment",
                    "RECORD_BUCKET": RECORD_BUCKET,
                }
            },
        )
    return client


def test_moto_is_the_pinned_version() -> None:
    assert metadata.version("moto") == "5.2.5"


def test_lambda_seam_signature_is_what_we_patch(aws_emulator: EmbeddedEmulator) -> None:
    from moto.awslambda.models import LambdaFunction

    assert aws_emulator.seams is not None
    moto_original = aws_emulator.seams.originals["invoke"]
    assert moto_original.__qualname__ == "LambdaFunction._invoke_lambda"
    assert list(inspect.signature(moto_original).parameters) == ["self", "event"]
    source = inspect.getsource(LambdaFunction)
    for attribute in (
        "self.code_bytes",
        "self.handler",
        "self.environment_vars",
        "self.timeout",
        "def save_logs",
    ):
        assert attribute in source, attribute


def test_lambda_seam_runs_the_functions_own_handler(lambda_client: Any) -> None:
    response = lambda_client.invoke(
        FunctionName="seam-probe", Payload=json.dumps({"n": 1}).encode()
    )
    body = json.loads(response["Payload"].read())
    assert "FunctionError" not in response
    assert body["echo"] == {"n": 1}
    assert body["module_file"].startswith(body["task_root"])  # code from the function's zip
    assert body["greeting"] == "hello from the function's environment"
    assert body["function_name"] == "seam-probe"
    assert body["memory"] == 512
    assert 0 < body["remaining_ms"] <= 10_000


def test_lambda_seam_reports_handler_errors_as_the_lambda_api_does(lambda_client: Any) -> None:
    response = lambda_client.invoke(FunctionName="seam-fails", Payload=b"{}")
    body = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Handled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "the batch has no rows"


def test_lambda_seam_enforces_the_timeout(lambda_client: Any) -> None:
    started = time.monotonic()
    response = lambda_client.invoke(FunctionName="seam-sleeps", Payload=b"{}")
    body = json.loads(response["Payload"].read())
    assert time.monotonic() - started < 15
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in body["errorMessage"]


def test_training_seam_signature_is_what_we_patch(aws_emulator: EmbeddedEmulator) -> None:
    from moto.sagemaker.models import FakeTrainingJob

    assert aws_emulator.seams is not None
    moto_original = aws_emulator.seams.originals["create_training_job"]
    assert moto_original.__module__ == "moto.sagemaker.models"
    parameters = inspect.signature(moto_original).parameters
    for name in (
        "training_job_name",
        "hyper_parameters",
        "algorithm_specification",
        "input_data_config",
        "output_data_config",
        "stopping_condition",
    ):
        assert name in parameters, name
    source = inspect.getsource(FakeTrainingJob)
    for attribute in (
        "training_job_status",
        "secondary_status",
        "model_artifacts",
        "final_metric_data_list",
    ):
        assert attribute in source, attribute


def source_tarball(entry: str) -> bytes:
    """sourcedir.tar.gz holding one entry point, entry.py."""
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as archive:
        info = tarfile.TarInfo("entry.py")
        info.size = len(entry)
        archive.addfile(info, io.BytesIO(entry.encode()))
    return tarball.getvalue()


def test_training_seam_runs_the_job_and_drives_its_status(aws_emulator: EmbeddedEmulator) -> None:
    # GIVEN code that writes a model and prints a metric, and an input channel
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    s3.create_bucket(Bucket="seam-bucket")
    entry = (
        "import json, os, pathlib\n"
        "config = pathlib.Path(os.environ['SM_INPUT_CONFIG_DIR'])\n"
        "hps = json.loads((config / 'hyperparameters.json').read_text())\n"
        "rows = pathlib.Path(os.environ['SM_CHANNEL_TRAIN'], 'rows.csv').read_text()\n"
        "pathlib.Path(os.environ['SM_MODEL_DIR'], 'model.txt').write_text(rows + hps['depth'])\n"
        "print('quality=0.75;')\n"
    )
    s3.put_object(Bucket="seam-bucket", Key="code/src.tar.gz", Body=source_tarball(entry))
    s3.put_object(Bucket="seam-bucket", Key="data/rows.csv", Body=b"a,b\n1,2\n")
    # WHEN the job is created through the API
    sagemaker.create_training_job(
        TrainingJobName="seam-job",
        AlgorithmSpecification={
            "TrainingImage": "local",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "quality", "Regex": "quality=([0-9.]+);"}],
        },
        HyperParameters={
            "depth": "3",
            "sagemaker_program": "entry.py",
            "sagemaker_submit_directory": "s3://seam-bucket/code/src.tar.gz",
        },
        RoleArn="arn:aws:iam::123456789012:role/x",
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://seam-bucket/data/"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://seam-bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    first = sagemaker.describe_training_job(TrainingJobName="seam-job")
    deadline = time.monotonic() + 60
    job = first
    while job["TrainingJobStatus"] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = sagemaker.describe_training_job(TrainingJobName="seam-job")
    # THEN it started InProgress (not moto's instant Completed) and finished with our results
    assert first["TrainingJobStatus"] == "InProgress"
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["FinalMetricDataList"][0]["MetricName"] == "quality"
    assert job["FinalMetricDataList"][0]["Value"] == 0.75
    assert job["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "quality"
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://seam-bucket/out/seam-job/output/model.tar.gz"
    body = s3.get_object(Bucket="seam-bucket", Key="out/seam-job/output/model.tar.gz")[
        "Body"
    ].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        member = archive.extractfile("model.txt")
        assert member is not None
        assert member.read().decode() == "a,b\n1,2\n3"


def test_registry_and_eventbridge_seams_are_what_we_patch(aws_emulator: EmbeddedEmulator) -> None:
    assert aws_emulator.seams is not None
    update = aws_emulator.seams.originals["update_model_package"]
    assert update.__qualname__ == "SageMakerModelBackend.update_model_package"
    assert list(inspect.signature(update).parameters) == [
        "self",
        "model_package_arn",
        "model_approval_status",
        "approval_description",
        "customer_metadata_properties",
        "customer_metadata_properties_to_remove",
        "additional_inference_specifications_to_add",
    ]
    send = aws_emulator.seams.originals["send_to_targets"]
    assert send.__qualname__ == "Rule.send_to_targets"
    assert list(inspect.signature(send).parameters) == ["self", "original_event", "transform_input"]


def _package(sagemaker: Any, group: str) -> str:
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={
                "Containers": [{"Image": "x", "ModelDataUrl": "s3://b/m.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties={"dataset_hash": "abc"},
        )["ModelPackageArn"]
    )


def test_registry_seam_keeps_what_is_not_sent_and_emits_the_state_change_event(
    aws_emulator: EmbeddedEmulator,
) -> None:
    from contracts.names import model_package_state_pattern

    sagemaker, sqs, events = (boto3.client(s) for s in ("sagemaker", "sqs", "events"))
    group = "seam-registry-group"
    queue = sqs.create_queue(QueueName="seam-registry-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="seam-registry", EventPattern=json.dumps(model_package_state_pattern(group))
    )
    events.put_targets(Rule="seam-registry", Targets=[{"Id": "q", "Arn": queue_arn}])
    arn = _package(sagemaker, group)
    # WHEN the status alone changes, as the console does
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    # THEN nothing else changed, and the registry's event reached EventBridge
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["CustomerMetadataProperties"] == {"dataset_hash": "abc"}
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)["Messages"]
    event = json.loads(messages[0]["Body"])
    assert event["detail-type"] == "SageMaker Model Package State Change"
    assert event["detail"] == {
        "ModelPackageGroupName": group,
        "ModelPackageVersion": 1,
        "ModelPackageArn": arn,
        "ModelApprovalStatus": "Approved",
        "ModelPackageStatus": "Completed",
    }
    # AND an update that does not change the status emits nothing
    sagemaker.update_model_package(ModelPackageArn=arn, ApprovalDescription="note")
    assert not sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages")
    assert (
        sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    )


def test_eventbridge_seam_delivers_to_lambda_targets(
    aws_emulator: EmbeddedEmulator, lambda_client: Any
) -> None:
    s3, events = boto3.client("s3"), boto3.client("events")
    s3.create_bucket(Bucket=RECORD_BUCKET)
    target = lambda_client.get_function(FunctionName="seam-records")["Configuration"]["FunctionArn"]
    events.put_rule(Name="seam-to-lambda", EventPattern=json.dumps({"source": ["facet.probe"]}))
    events.put_targets(Rule="seam-to-lambda", Targets=[{"Id": "f", "Arn": target}])
    events.put_events(Entries=[{"Source": "facet.probe", "DetailType": "probe", "Detail": "{}"}])
    assert aws_emulator.seams is not None
    aws_emulator.seams.deliveries.wait(timeout=30)
    delivered = json.loads(s3.get_object(Bucket=RECORD_BUCKET, Key="delivered.json")["Body"].read())
    assert delivered["source"] == "facet.probe" and delivered["detail-type"] == "probe"


def run_a_nested_job(emulator: EmbeddedEmulator, entry: str) -> dict[str, Any]:
    """One training job with an Environment on `emulator`, run to its end."""
    assert emulator.seams is not None
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    s3.create_bucket(Bucket="nested-bucket")
    s3.put_object(Bucket="nested-bucket", Key="code.tar.gz", Body=source_tarball(entry))
    s3.put_object(Bucket="nested-bucket", Key="data/rows.csv", Body=b"a\n1\n")
    sagemaker.create_training_job(
        TrainingJobName="nested-job",
        AlgorithmSpecification={"TrainingImage": "local", "TrainingInputMode": "File"},
        HyperParameters={
            "sagemaker_program": "entry.py",
            "sagemaker_submit_directory": "s3://nested-bucket/code.tar.gz",
        },
        Environment={"GREETING": "from the request"},
        RoleArn="arn:aws:iam::123456789012:role/x",
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://nested-bucket/data/",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://nested-bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    emulator.seams.runner.wait(60)
    return dict(sagemaker.describe_training_job(TrainingJobName="nested-job"))


def test_a_second_emulator_runs_each_job_once_with_the_requests_environment(
    aws_emulator: EmbeddedEmulator, tmp_path: Any
) -> None:
    # GIVEN the session's emulator, and a second one started in the same process (as a test's
    # own open_session does): the second finds the first one's seams installed
    from moto.sagemaker.models import SageMakerModelBackend

    assert aws_emulator.seams is not None
    outer_seam = SageMakerModelBackend.create_training_job
    outer_jobs = len(aws_emulator.seams.runner.threads)
    entry = (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['SM_MODEL_DIR'], 'env.txt').write_text(os.environ['GREETING'])\n"
    )
    with EmbeddedEmulator(work_dir=tmp_path) as inner:
        assert inner.seams is not None
        # WHEN a training job is created with an Environment
        job = run_a_nested_job(inner, entry)
        s3 = boto3.client("s3")
        # THEN it ran once, in the emulator it was sent to, with the request's Environment
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        assert len(inner.seams.runner.threads) == 1
        assert len(aws_emulator.seams.runner.threads) == outer_jobs
        body = s3.get_object(Bucket="nested-bucket", Key="out/nested-job/output/model.tar.gz")
        with tarfile.open(fileobj=io.BytesIO(body["Body"].read()), mode="r:gz") as archive:
            member = archive.extractfile("env.txt")
            assert member is not None and member.read() == b"from the request"
    # AND the session emulator's seam is back, and the work directory it was given is kept
    assert SageMakerModelBackend.create_training_job is outer_seam
    assert any(tmp_path.glob("nested-job-*/opt/ml/model/env.txt"))


def test_an_emulator_removes_the_work_directory_it_made_when_it_stops(
    aws_emulator: EmbeddedEmulator,
) -> None:
    # GIVEN an emulator that made its own work directory, where a training job has run
    entry = "import os, pathlib\npathlib.Path(os.environ['SM_MODEL_DIR'], 'x').write_text('1')\n"
    with EmbeddedEmulator() as inner:
        work_dir = inner.work_dir
        job = run_a_nested_job(inner, entry)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        assert any(work_dir.glob("nested-job-*/opt/ml/model/x"))
    # WHEN it stops, THEN nothing of it is left on disk
    assert not work_dir.exists()
