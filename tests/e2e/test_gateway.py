"""The local API Gateway in front of the serving Lambda handler, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.schema import FEATURE_NAMES, example_diamond
from local_emulation.emulator import free_port
from local_emulation.gateway import Gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(served_model_dir: Path) -> Iterator[Gateway]:
    with Gateway.for_local_model(
        served_model_dir, free_port(), workers=2, api_key="partner-secret"
    ) as running:
        yield running


def request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    call = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def price(
    gateway: Gateway, stone: dict[str, Any], key: str | None = "partner-secret"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"} | ({"x-api-key": key} if key else {})
    status, _, body = request(f"{gateway.url}/v1/prices", json.dumps(stone).encode(), headers)
    return status, json.loads(body)


def test_gateway_prices_through_the_stage(gateway: Gateway) -> None:
    status, body = price(gateway, example_diamond())
    assert status == 200
    assert body["price_usd"] > 0 and body["explanation"]["factors"]


def test_gateway_requires_the_api_key_on_v1_routes(gateway: Gateway) -> None:
    assert price(gateway, example_diamond(), key=None)[0] == 403
    assert price(gateway, example_diamond(), key="wrong")[0] == 403
    assert request(f"{gateway.url}/health")[0] == 200  # operations and the web page need no key


def test_gateway_paths_outside_the_stage_are_refused_like_api_gateway(gateway: Gateway) -> None:
    port = gateway.url.split(":")[2].split("/")[0]
    status, _, body = request(f"http://127.0.0.1:{port}/v1/prices")
    assert status == 403
    assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_gateway_bad_input_is_a_422_not_a_500(gateway: Gateway) -> None:
    status, body = price(gateway, {**example_diamond(), "cut": "Excellent"})
    assert status == 422
    assert body["details"][0]["field"] == "cut"


def test_gateway_docs_and_web_page_work_under_the_stage(gateway: Gateway) -> None:
    status, headers, body = request(f"{gateway.url}/docs")
    assert status == 200 and b"/prod/openapi.json" in body
    assert request(f"{gateway.url}/openapi.json")[0] == 200
    status, headers, body = request(f"{gateway.url}/")
    assert status == 200 and headers["content-type"].startswith("text/html")


def test_gateway_csv_upload_travels_base64(gateway: Gateway) -> None:
    csv_text = (
        ",".join(FEATURE_NAMES) + "\n" + ",".join(str(v) for v in example_diamond().values()) + "\n"
    )
    boundary = "facetboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv_text}\r\n--{boundary}--\r\n"
    ).encode()
    status, _, raw = request(
        f"{gateway.url}/v1/prices/batch",
        body,
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "x-api-key": "partner-secret",
        },
    )
    assert status == 200, raw
    assert json.loads(raw)["count"] == 1
