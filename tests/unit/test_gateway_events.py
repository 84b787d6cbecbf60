"""The local gateway builds API Gateway REST proxy events with the shape of tests/events/, and
decides routes and keys on one normalized path (contracts.api)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from contracts.api import (
    PRICE_API_ROUTES,
    Access,
    PathError,
    find_route,
    normalized_segments,
)
from local_emulation.gateway import from_response, to_event

REAL = json.loads((Path(__file__).resolve().parents[1] / "events" / "price_one.json").read_text())


def test_event_has_every_top_level_and_request_context_key_of_a_real_event() -> None:
    event = to_event(
        "POST",
        "/v1/prices",
        "explain=false",
        [("Content-Type", "application/json")],
        b"{}",
        stage="prod",
        host="127.0.0.1:8000",
        resource="/v1/prices",
    )
    assert set(REAL) <= set(event)
    assert set(REAL["requestContext"]) - {"resourceId"} <= set(event["requestContext"])
    assert event["path"] == "/v1/prices" and event["requestContext"]["path"] == "/prod/v1/prices"
    assert event["resource"] == REAL["resource"] == "/v1/prices"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] == {"explain": "false"}
    assert event["body"] == "{}" and event["isBase64Encoded"] is False


def test_proxy_resources_get_their_path_parameter() -> None:
    event = to_event(
        "GET", "/static/app.js", "", [], b"", stage="prod", host="h", resource="/static/{proxy+}"
    )
    assert event["pathParameters"] == {"proxy": "app.js"}


def test_root_resource_and_multi_value_query_and_headers() -> None:
    event = to_event(
        "GET",
        "/",
        "a=1&a=2",
        [("X-Two", "1"), ("X-Two", "2")],
        b"",
        stage="p",
        host="h",
        resource="/",
    )
    assert event["resource"] == "/" and event["pathParameters"] is None
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["queryStringParameters"] == {"a": "2"}
    assert event["multiValueHeaders"]["X-Two"] == ["1", "2"]


def test_binary_bodies_travel_base64() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n\xff\xfe\r\n--b--\r\n'
    event = to_event(
        "POST",
        "/v1/prices/batch",
        "",
        [("content-type", "multipart/form-data; boundary=b")],
        body,
        stage="prod",
        host="h",
        resource="/v1/prices/batch",
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


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


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        ("/prod/v1/prices", ("prod", "v1", "prices")),
        ("/prod/%761/prices", ("prod", "v1", "prices")),
        ("/prod/%76%31/prices/batch", ("prod", "v1", "prices", "batch")),
        ("/prod/", ("prod",)),
        ("/", ()),
        ("/prod/static/app%2Ejs", ("prod", "static", "app.js")),
    ],
)
def test_paths_are_decoded_once_into_segments(raw: str, segments: tuple[str, ...]) -> None:
    assert normalized_segments(raw) == segments


@pytest.mark.parametrize(
    "raw",
    [
        "/prod/v1%2Fprices",
        "/prod/v1%2fmodel",
        "/prod/v1%5Cprices",
        "/prod/v1/../v1/prices",
        "/prod/%2E%2E/v1",
        "/prod//v1/prices",
        "/prod/v1/prices%",
        "/prod/v1/pr%zzices",
        "/prod/v1/prices%00",
        "prod/v1",
    ],
)
def test_ambiguous_paths_are_refused(raw: str) -> None:
    with pytest.raises(PathError):
        normalized_segments(raw)


def test_every_pricing_route_needs_a_key_and_nothing_public_prices() -> None:
    for route in PRICE_API_ROUTES:
        if route.path.startswith("/v1/"):
            assert route.access is Access.API_KEY, route
        else:
            assert route.access is Access.PUBLIC and route.method == "GET", route
    assert find_route(PRICE_API_ROUTES, "POST", ("invocations",)) is None
    assert find_route(PRICE_API_ROUTES, "GET", ("static", "a", "b.js")) is not None
    assert find_route(PRICE_API_ROUTES, "GET", ("static",)) is None
