"""The local end-to-end against host-mode LocalStack (no Docker), and how LocalStack differs.

The fixture installs LocalStack if needed and starts it on a free port; if that cannot happen the
tests fail (no skip): CI installs it in `make setup`.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from contracts.names import (
    RAW_BATCH_EVENT_PATHS,
    RAW_BATCH_EVENT_TEMPLATE,
    BucketRole,
    StageNames,
    raw_object_event_pattern,
)
from local_emulation import localstack
from local_emulation.emulator import clean_environment, free_port

pytestmark = [pytest.mark.slow, pytest.mark.localstack]


@pytest.fixture(scope="module")
def stack() -> Iterator[localstack.LocalStack]:
    running = localstack.start(free_port(), timeout=120)
    yield running
    running.stop()


def client(stack: localstack.LocalStack, service: str, **config: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, **config),
    )


@pytest.mark.parametrize(
    ("how", "rows"),
    [("flag", "2000"), ("AWS_ENDPOINT_URL", "1500")],  # other rows: the ledger remembers batches
)
def test_demo_runs_end_to_end_with_localstack(
    stack: localstack.LocalStack, tmp_path: Path, how: str, rows: str
) -> None:
    environment = clean_environment()
    command = [
        sys.executable,
        "-m",
        "local_emulation",
        "demo",
        "--batches",
        "1",
        "--rows",
        rows,
        "--exit",
        "--port",
        str(free_port()),
        "--api-port",
        str(free_port()),
    ]
    if how == "flag":
        command += ["--backend", "localstack", "--localstack-url", stack.url]
    else:
        environment["AWS_ENDPOINT_URL"] = stack.url
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    # which service ran where, printed by the run
    for service, backend in (
        ("s3", "LocalStack"),
        ("ssm", "LocalStack"),
        ("events", "LocalStack"),
        ("apigateway", "LocalStack"),
        ("sagemaker", "moto"),
        ("stepfunctions", "moto"),
        ("lambda", "moto"),
    ):
        assert any(
            line.split()[:2] == [service, backend] for line in output.splitlines() if line.strip()
        ), (service, output)
    assert "Approved (production)" in output
    assert "the example stone: $" in output  # the API gateway answered with the registered model
    # the data really went through LocalStack
    s3 = client(stack, "s3")
    account = client(stack, "sts").get_caller_identity()["Account"]
    bucket = StageNames().bucket(BucketRole.DATA_LAKE, account, "us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    for prefix in (
        "raw/diamonds_raw_",
        "validated/diamonds_validated_",
        "curated/datasets/",
        "reports/",
        "curated/ledger/",
    ):
        assert any(k.startswith(prefix) for k in keys), prefix
    apis = [
        a
        for a in client(stack, "apigateway").get_rest_apis()["items"]
        if a["name"] == StageNames().api_name
    ]
    assert apis and client(stack, "apigateway").get_stage(restApiId=apis[0]["id"], stageName="prod")


@pytest.fixture
def raw_rule(stack: localstack.LocalStack) -> dict[str, Any]:
    name = f"lsdiff{int(time.time() * 1000)}"
    s3, sqs, events = client(stack, "s3"), client(stack, "sqs"), client(stack, "events")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(
        Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventPattern=json.dumps(raw_object_event_pattern(name)))
    return {"bucket": name, "queue": queue, "arn": arn, "rule": name}


def first_message(stack: localstack.LocalStack, queue: str) -> dict[str, Any]:
    for _ in range(20):
        messages = (
            client(stack, "sqs")
            .receive_message(QueueUrl=queue, WaitTimeSeconds=1)
            .get("Messages", [])
        )
        if messages:
            return dict(json.loads(messages[0]["Body"]))
    raise AssertionError("no event delivered")


def test_localstack_applies_the_input_transformer_to_s3_events(
    stack: localstack.LocalStack, raw_rule: dict[str, Any]
) -> None:
    transformer = {
        "InputPathsMap": RAW_BATCH_EVENT_PATHS,
        "InputTemplate": RAW_BATCH_EVENT_TEMPLATE,
    }
    client(stack, "events").put_targets(
        Rule=raw_rule["rule"],
        Targets=[{"Id": "q", "Arn": raw_rule["arn"], "InputTransformer": transformer}],
    )
    client(stack, "s3").put_object(Bucket=raw_rule["bucket"], Key="raw/b.csv", Body=b"a\n1\n")
    message = first_message(stack, raw_rule["queue"])
    assert message["trigger"] == "s3" and message["key"] == "raw/b.csv"
    assert len(message["etag"]) == 32  # LocalStack sends `etag` (moto: `eTag`)


def test_localstack_account_is_000000000000(stack: localstack.LocalStack) -> None:
    assert client(stack, "sts").get_caller_identity()["Account"] == "000000000000"


def test_localstack_has_no_sagemaker_in_the_free_edition(stack: localstack.LocalStack) -> None:
    with pytest.raises(ClientError) as error:
        client(stack, "sagemaker").list_model_package_groups()
    assert (
        "not included in your current license plan" in str(error.value)
        or error.value.response["Error"]["Code"] == "InternalFailure"
    )


def test_localstack_lambda_cannot_run_without_docker(stack: localstack.LocalStack) -> None:
    role = client(stack, "iam").create_role(
        RoleName=f"r{int(time.time())}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("h.py", "def handler(event, context):\n    return 1\n")
    lambda_ = client(stack, "lambda")
    name = f"f{int(time.time())}"
    lambda_.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="h.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    state = "Pending"
    for _ in range(30):
        state = lambda_.get_function(FunctionName=name)["Configuration"]["State"]
        if state != "Pending":
            break
        time.sleep(1)
    assert state == "Failed"
