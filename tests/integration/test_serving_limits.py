"""Inputs that used to break the API, and the bounds that keep every answer a documented 4xx.

Each test here failed before the serving hardening (issue: serving hardened): a 500 on deep JSON,
booleans and strings priced as numbers, a 50 MB body parsed in full, a 422 for text/plain, and
FastAPI's own `{"detail": ...}` for 404/405.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.api import API_GATEWAY_MAX_PAYLOAD_BYTES, LAMBDA_MAX_RESPONSE_BYTES
from contracts.schema import example_diamond
from contracts.settings import Settings
from serving.app import create_app
from serving.responses import ENVELOPE_ALLOWANCE, fits_lambda, lambda_payload_bytes

ERROR_KEYS = {"error", "message", "details", "request_id"}


@pytest.fixture(scope="module")
def client(served_model_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(model_dir=served_model_dir, data_bucket=""))
    with TestClient(app) as test_client:
        yield test_client


def documented_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS
    uuid.UUID(body["request_id"])  # the documented format: API Gateway's request id, a UUID
    assert response.headers["x-request-id"] == body["request_id"]
    return body


@pytest.mark.parametrize("route", ["/v1/prices", "/v1/prices/batch"])
def test_json_nested_thousands_deep_is_a_422_not_a_500(client: TestClient, route: str) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    response = client.post(route, content=deep, headers={"content-type": "application/json"})
    assert "nested too deeply" in documented_error(response, 422)["message"]


@pytest.mark.parametrize("value", [True, "0.7", None, [0.7]])
def test_numbers_are_strict_json_numbers(client: TestClient, value: Any) -> None:
    response = client.post("/v1/prices", json={**example_diamond(), "carat": value})
    body = documented_error(response, 422)
    assert body["details"][0]["field"] == "carat"
    batch = client.post("/v1/prices/batch", json=[{**example_diamond(), "carat": value}])
    assert documented_error(batch, 422)["details"][0]["field"] == "rows[0].carat"


def test_csv_numbers_are_still_read_as_numbers(client: TestClient) -> None:
    csv_text = ",".join(example_diamond()) + "\n" + ",".join(map(str, example_diamond().values()))
    response = client.post(
        "/v1/prices/batch", content=csv_text, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200 and response.json()["count"] == 1
    bad = csv_text.replace("0.7,", "heavy,", 1)
    response = client.post("/v1/prices/batch", content=bad, headers={"content-type": "text/csv"})
    assert documented_error(response, 422)["details"][0]["field"] == "rows[0].carat"


def test_a_body_over_the_route_limit_is_refused_before_it_is_read(served_model_dir: Path) -> None:
    # GIVEN a client that declares 50 MB and would stream it in 1 MB chunks
    app = create_app(Settings(model_dir=served_model_dir, data_bucket=""))
    chunks_read = 0

    async def receive() -> dict[str, Any]:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b" " * 1_000_000, "more_body": chunks_read < 50}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/prices",
        "raw_path": b"/v1/prices",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"50000000")],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
    }
    import asyncio

    asyncio.run(app(scope, receive, send))
    # THEN it is a 413 at once, and not one chunk was read
    assert sent[0]["status"] == 413 and chunks_read == 0
    assert b"takes at most 16,384 bytes" in sent[1]["body"]


def test_a_streamed_body_stops_being_read_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b" " * 100_000

    response = client.post(
        "/v1/prices", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "most this route takes" in documented_error(response, 413)["message"]


def test_a_batch_over_api_gateways_payload_limit_is_a_413(client: TestClient) -> None:
    body = b" " * (API_GATEWAY_MAX_PAYLOAD_BYTES + 1)
    response = client.post(
        "/v1/prices/batch", content=body, headers={"content-type": "application/json"}
    )
    documented_error(response, 413)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "text/csv", ""])
def test_price_one_takes_json_only_and_says_so_with_415(
    client: TestClient, content_type: str
) -> None:
    response = client.post(
        "/v1/prices", content=json.dumps(example_diamond()), headers={"content-type": content_type}
    )
    assert "application/json" in documented_error(response, 415)["message"]


def test_unknown_route_and_wrong_method_answer_in_the_documented_shape(client: TestClient) -> None:
    assert "No route" in documented_error(client.get("/v2/prices"), 404)["message"]
    assert "not allowed" in documented_error(client.get("/v1/prices"), 405)["message"]
    assert documented_error(client.get("/static/nothing.js"), 404)


def test_multipart_without_a_file_is_a_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/v1/prices/batch", data={"other": "x"}, files={"x": ("a", b"")})
    assert documented_error(response, 422)["details"][0]["field"] == "file"


def test_a_form_with_more_fields_than_read_is_a_422_not_an_undocumented_400(
    client: TestClient,
) -> None:
    """Found by schemathesis: Starlette refuses an 11-field form with its own 400."""
    fields = {f"field{i}": "x" for i in range(11)}
    response = client.post("/v1/prices/batch", data=fields, files={"file": ("a.csv", b"")})
    body = documented_error(response, 422)
    assert body["details"][0]["field"] == "body" and "Too many fields" in body["message"]


def test_a_csv_field_longer_than_the_csv_modules_limit_is_a_422(client: TestClient) -> None:
    csv_text = ",".join(example_diamond()) + '\n"' + "x" * 200_000 + '",' + "1," * 8 + "1\n"
    response = client.post(
        "/v1/prices/batch", content=csv_text, headers={"content-type": "text/csv"}
    )
    assert "cannot be read" in documented_error(response, 422)["message"]


def test_every_explanation_shares_the_price_gap_in_dollars(client: TestClient) -> None:
    body = client.post("/v1/prices", json=example_diamond()).json()
    explanation = body["explanation"]
    dollars = sum(f["effect_usd"] for f in explanation["factors"])
    assert explanation["base_price_usd"] + dollars == pytest.approx(body["price_usd"], abs=0.05)
    for factor in explanation["factors"]:  # same sign as the factor's effect
        assert math.copysign(1, factor["effect_usd"]) == math.copysign(1, factor["factor"] - 1)


def test_dimensions_that_disagree_with_the_carat_get_a_warning(client: TestClient) -> None:
    assert client.post("/v1/prices", json=example_diamond()).json()["warnings"] == []
    body = client.post("/v1/prices", json={**example_diamond(), "carat": 1.5}).json()
    assert body["price_usd"] > 0 and "suggest about 0.70 ct" in body["warnings"][0]


def worst_case_stone() -> dict[str, Any]:
    """A stone whose JSON is as long as a valid stone's can be: 17 significant digits each."""
    return {
        "carat": 0.30000000000000004,
        "cut": "Very Good",
        "color": "G",
        "clarity": "VVS2",
        "depth": 61.800000000000004,
        "table": 57.000000000000004,
        "x": 4.3100000000000005,
        "y": 4.3300000000000005,
        "z": 2.6700000000000004,
    }


def lambda_response(handler_app: Any, rows: int, explain: bool) -> dict[str, Any]:
    from mangum import Mangum

    event = json.loads(
        (Path(__file__).resolve().parents[1] / "events" / "price_one.json").read_text()
    )
    event |= {
        "resource": "/v1/prices/batch",
        "path": "/v1/prices/batch",
        "body": json.dumps([worst_case_stone()] * rows),
        "queryStringParameters": {"explain": str(explain).lower()},
        "multiValueQueryStringParameters": {"explain": [str(explain).lower()]},
    }
    event["requestContext"] |= {"path": "/prod/v1/prices/batch", "resourcePath": "/v1/prices/batch"}

    class Context:
        function_name = "facet-serving-api"

        def get_remaining_time_in_millis(self) -> int:
            return 29_000

    response: dict[str, Any] = Mangum(handler_app, lifespan="off")(event, Context())
    return response


def test_explained_batches_at_the_cap_fit_through_lambda_and_one_more_row_is_a_413(
    served_model_dir: Path,
) -> None:
    settings = Settings(model_dir=served_model_dir, data_bucket="")
    app = create_app(settings)
    # AT the cap, with the longest stones: the whole Lambda response fits in 6,291,456 bytes
    response = lambda_response(app, settings.max_explained_rows, explain=True)
    assert response["statusCode"] == 200
    assert len(json.dumps(response)) <= LAMBDA_MAX_RESPONSE_BYTES
    assert json.loads(response["body"])["count"] == settings.max_explained_rows
    # ONE over: a 413 that names the limit and points to bulk scoring, before any pricing
    over = lambda_response(app, settings.max_explained_rows + 1, explain=True)
    assert over["statusCode"] == 413
    message = json.loads(over["body"])["message"]
    assert "6 MB" in message and "bulk scoring" in message
    # Unexplained, the full 10,000 rows fit
    assert lambda_response(app, settings.max_batch_rows, explain=False)["statusCode"] == 200


def test_the_response_guard_holds_at_the_exact_byte_limit() -> None:
    # A body of plain ASCII with no characters to escape costs its length plus two quotes.
    exact = b"a" * (LAMBDA_MAX_RESPONSE_BYTES - ENVELOPE_ALLOWANCE - 2)
    assert lambda_payload_bytes(exact) == LAMBDA_MAX_RESPONSE_BYTES and fits_lambda(exact)
    assert not fits_lambda(exact + b"a")
    quoted = b'"' * ((LAMBDA_MAX_RESPONSE_BYTES - ENVELOPE_ALLOWANCE - 2) // 2 + 1)
    assert not fits_lambda(quoted)  # each quote costs two bytes once escaped
