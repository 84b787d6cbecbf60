"""The local gateway builds API Gateway REST proxy events with the shape of tests/events/."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from local_emulation.gateway import from_response, to_event

REAL = json.loads((Path(__file__).resolve().parents[1] / "events" / "price_one.json").read_text())


def test_event_has_every_top_level_and_request_context_key_of_a_real_event() -> None:
    event = to_event(
        "POST",
        "/prod/v1/prices?explain=false",
        [("Content-Type", "application/json")],
        b"{}",
        stage="prod",
        host="127.0.0.1:8000",
    )
    assert event is not None
    assert set(REAL) <= set(event)
    assert {"stage", "path", "resourcePath", "requestId", "identity", "httpMethod", "apiId"} <= set(
        event["requestContext"]
    )
    assert event["path"] == "/v1/prices" and event["requestContext"]["path"] == "/prod/v1/prices"
    assert event["resource"] == "/{proxy+}" and event["pathParameters"] == {"proxy": "v1/prices"}
    assert event["queryStringParameters"] == {"explain": "false"}
    assert event["body"] == "{}" and event["isBase64Encoded"] is False


def test_root_resource_and_multi_value_query_and_headers() -> None:
    event = to_event(
        "GET", "/prod/?a=1&a=2", [("X-Two", "1"), ("X-Two", "2")], b"", stage="prod", host="h"
    )
    assert event is not None
    assert event["resource"] == "/" and event["pathParameters"] is None
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]} and event[
        "queryStringParameters"
    ] == {"a": "2"}
    assert event["multiValueHeaders"]["X-Two"] == ["1", "2"]


def test_binary_bodies_travel_base64() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n\xff\xfe\r\n--b--\r\n'
    event = to_event(
        "POST",
        "/prod/v1/prices/batch",
        [("content-type", "multipart/form-data; boundary=b")],
        body,
        stage="prod",
        host="h",
    )
    assert event is not None and event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_paths_outside_the_stage_have_no_event() -> None:
    assert to_event("GET", "/v1/prices", [], b"", stage="prod", host="h") is None
    assert to_event("GET", "/production/v1", [], b"", stage="prod", host="h") is None


def test_proxy_response_becomes_http() -> None:
    status, headers, body = from_response(
        {
            "statusCode": 201,
            "headers": {"a": "1"},
            "multiValueHeaders": {"b": ["2", "3"]},
            "body": base64.b64encode(b"x").decode(),
            "isBase64Encoded": True,
        }
    )
    assert (status, headers, body) == (201, [("a", "1"), ("b", "2"), ("b", "3")], b"x")
