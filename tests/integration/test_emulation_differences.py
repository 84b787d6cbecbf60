"""Where moto 5.2.5 differs from AWS in ways Facet works around (docs/local-emulation.md).

These tests pin the emulator's behaviour: if an upgrade fixes a difference, the test fails and the
workaround (and the doc) can go.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from contracts.names import (
    RAW_BATCH_EVENT_PATHS,
    RAW_BATCH_EVENT_TEMPLATE,
    raw_object_event_pattern,
)
from local_emulation.emulator import EmbeddedEmulator


@pytest.fixture
def lake(aws_emulator: EmbeddedEmulator) -> dict[str, Any]:
    name = f"diff-{uuid.uuid4().hex[:10]}"
    s3, sqs, events = boto3.client("s3"), boto3.client("sqs"), boto3.client("events")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(
        Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=name, EventPattern=json.dumps(raw_object_event_pattern(name)))
    yield {"bucket": name, "queue": queue, "queue_arn": queue_arn, "rule": name}
    events.remove_targets(
        Rule=name, Ids=[t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]]
    )
    events.delete_rule(Name=name)


def deliveries(lake: dict[str, Any]) -> list[dict[str, Any]]:
    boto3.client("s3").put_object(Bucket=lake["bucket"], Key="raw/batch.csv", Body=b"a\n1\n")
    time.sleep(0.3)
    messages = (
        boto3.client("sqs")
        .receive_message(QueueUrl=lake["queue"], MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"]) for m in messages]


def test_moto_events_cannot_target_step_functions(lake: dict[str, Any]) -> None:
    events = boto3.client("events")
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:anything"
    events.put_targets(
        Rule=lake["rule"],
        Targets=[
            {"Id": "a-machine", "Arn": machine, "RoleArn": "arn:aws:iam::123456789012:role/x"},
            {"Id": "b-queue", "Arn": lake["queue_arn"]},
        ],
    )
    # The state-machine target raises inside moto, and the queue after it gets nothing.
    assert deliveries(lake) == []


def test_moto_skips_input_transformer_for_s3_events(lake: dict[str, Any]) -> None:
    transformer = {
        "InputPathsMap": RAW_BATCH_EVENT_PATHS,
        "InputTemplate": RAW_BATCH_EVENT_TEMPLATE,
    }
    boto3.client("events").put_targets(
        Rule=lake["rule"],
        Targets=[{"Id": "queue", "Arn": lake["queue_arn"], "InputTransformer": transformer}],
    )
    (event,) = deliveries(lake)
    assert event["detail-type"] == "Object Created"  # the whole event, not {"trigger": "s3", ...}
    assert "trigger" not in event


def test_moto_s3_event_uses_eTag(lake: dict[str, Any]) -> None:
    boto3.client("events").put_targets(
        Rule=lake["rule"], Targets=[{"Id": "queue", "Arn": lake["queue_arn"]}]
    )
    (event,) = deliveries(lake)
    assert "eTag" in event["detail"]["object"] and "etag" not in event["detail"]["object"]


def test_moto_sends_two_object_created_events_for_one_multipart_upload(
    lake: dict[str, Any],
) -> None:
    boto3.client("events").put_targets(
        Rule=lake["rule"], Targets=[{"Id": "queue", "Arn": lake["queue_arn"]}]
    )
    s3 = boto3.client("s3")
    upload = s3.create_multipart_upload(Bucket=lake["bucket"], Key="raw/large.csv")["UploadId"]
    part = s3.upload_part(
        Bucket=lake["bucket"], Key="raw/large.csv", UploadId=upload, PartNumber=1, Body=b"a\n1\n"
    )
    s3.complete_multipart_upload(
        Bucket=lake["bucket"],
        Key="raw/large.csv",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    time.sleep(0.3)
    messages = boto3.client("sqs").receive_message(QueueUrl=lake["queue"], MaxNumberOfMessages=10)
    events = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    # AWS sends one (CompleteMultipartUpload); moto a PUT and a CompleteMultipartUpload
    assert [e["detail"]["object"]["key"] for e in events] == ["raw/large.csv"] * 2


def test_moto_context_start_time_breaks_describe_execution(aws_emulator: EmbeddedEmulator) -> None:
    sfn = boto3.client("stepfunctions")
    role = boto3.client("iam").create_role(
        RoleName=f"diff-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    definition = {
        "StartAt": "Note",
        "States": {
            "Note": {
                "Type": "Pass",
                "Parameters": {"started.$": "$$.Execution.StartTime"},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=f"diff-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="start-time", input="{}")[
        "executionArn"
    ]
    time.sleep(1.0)
    with pytest.raises(ClientError) as error:
        boto3.client(
            "stepfunctions", config=boto3.session.Config(retries={"max_attempts": 1})
        ).describe_execution(executionArn=execution)
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_moto_update_model_package_drops_metadata_not_resent(
    aws_emulator: EmbeddedEmulator,
) -> None:
    """moto alone clears what an update does not send (AWS keeps it); the registry seam keeps
    it (tests/integration/test_moto_seams.py), so this calls moto's own method underneath."""
    from moto.sagemaker.models import sagemaker_backends

    sagemaker = boto3.client("sagemaker")
    group = f"diff-{uuid.uuid4().hex[:8]}"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": "x"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"dataset_hash": "abc"},
    )["ModelPackageArn"]
    assert aws_emulator.seams is not None
    moto_update = aws_emulator.seams.originals["update_model_package"]
    backend = sagemaker_backends[arn.split(":")[4]][arn.split(":")[3]]
    moto_update(backend, arn, "Approved", "first", None, [], None)
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert "dataset_hash" not in described.get("CustomerMetadataProperties", {})
