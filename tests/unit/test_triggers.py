from __future__ import annotations

import json
import re

from contracts.names import RAW_BATCH_EVENT_PATHS, RAW_BATCH_EVENT_TEMPLATE
from local_emulation.triggers import apply_input_transformer, execution_name, run_input_from_message

S3_EVENT = {
    "version": "0",
    "id": "1",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2026-01-05T09:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::lake"],
    "detail": {
        "bucket": {"name": "lake"},
        "object": {"key": "raw/diamonds_raw_20260105T090000.csv", "size": 10, "etag": "abc"},
    },
}


def test_transformer_makes_the_state_machine_input_as_the_cloud_rule_does() -> None:
    assert apply_input_transformer(S3_EVENT, RAW_BATCH_EVENT_PATHS, RAW_BATCH_EVENT_TEMPLATE) == {
        "trigger": "s3",
        "bucket": "lake",
        "key": "raw/diamonds_raw_20260105T090000.csv",
        "etag": "abc",
        "event_time": "2026-01-05T09:00:00Z",
    }


def test_transformer_missing_path_gives_empty_text() -> None:
    event = json.loads(json.dumps(S3_EVENT))
    del event["detail"]["object"]["etag"]
    assert (
        apply_input_transformer(event, RAW_BATCH_EVENT_PATHS, RAW_BATCH_EVENT_TEMPLATE)["etag"]
        == ""
    )


def test_transformer_escapes_quotes_in_values() -> None:
    event = json.loads(json.dumps(S3_EVENT))
    event["detail"]["object"]["key"] = 'raw/odd "name".csv'
    assert (
        apply_input_transformer(event, RAW_BATCH_EVENT_PATHS, RAW_BATCH_EVENT_TEMPLATE)["key"]
        == 'raw/odd "name".csv'
    )


def test_queue_message_of_an_s3_event_becomes_the_run_input() -> None:
    assert run_input_from_message(json.dumps(S3_EVENT))["trigger"] == "s3"
    assert run_input_from_message('{"trigger": "schedule"}') == {"trigger": "schedule"}


def test_execution_names_are_valid_and_readable() -> None:
    name = execution_name({"trigger": "s3", "key": "raw/diamonds_raw_20260105T090000.csv"})
    assert re.fullmatch(r"s3-20260105T090000-[0-9a-f]{8}", name)
    assert len(execution_name({"trigger": "schedule"})) <= 80
