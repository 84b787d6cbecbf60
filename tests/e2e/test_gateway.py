"""The local API Gateway in front of the serving Lambda handler, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.api import PRICE_API_ROUTES, Access
from contracts.schema import FEATURE_NAMES, example_diamond
from local_emulation.gateway import Gateway
from local_emulation.processes import free_port

pytestmark = pytest.mark.slow
KEY = "partner-secret"
ORIGIN = "https://partner.example"
ERROR_KEYS = {"error", "message", "details", "request_id"}


@pytest.fixture(scope="module")
def gateway(served_model_dir: Path) -> Iterator[Gateway]:
    with Gateway.for_local_model(
        served_model_dir,
        free_port(),
        workers=2,
        api_key=KEY,
        environment={"FACET_CORS_ALLOWED_ORIGINS": ORIGIN},
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


def raw(
    gateway: Gateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """A request with the path exactly as given (no client-side normalization)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body or method == "POST":
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    connection.close()
    return result


def price(gateway: Gateway, stone: dict[str, Any], key: str | None = KEY) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} | ({"x-api-key": key} if key else {})
    status, _, body = request(f"{gateway.url}/v1/prices", json.dumps(stone).encode(), headers)
    return status, json.loads(body)


def test_gateway_prices_through_the_stage(gateway: Gateway) -> None:
    status, body = price(gateway, example_diamond())
    assert status == 200
    assert body["price_usd"] > 0 and body["explanation"]["factors"]


def test_gateway_requires_the_api_key_on_v1_routes(gateway: Gateway) -> None:
    status, body = price(gateway, example_diamond(), key=None)
    assert status == 403 and set(body) == ERROR_KEYS and "x-api-key" in body["message"]
    assert price(gateway, example_diamond(), key="wrong")[0] == 403
    assert request(f"{gateway.url}/health")[0] == 200  # operations and the web page need no key


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/prod/v1/prices"),
        ("POST", "/prod/%761/prices"),
        ("POST", "/prod/%76%31/prices/batch"),
        ("POST", "/prod/v1/prices/"),
        ("GET", "/prod/%76%31/model"),
        ("GET", "/prod/v1/models"),
    ],
)
def test_every_spelling_of_a_pricing_path_needs_the_key(
    gateway: Gateway, method: str, path: str
) -> None:
    body = json.dumps(example_diamond()).encode() if method == "POST" else b""
    headers = {"Content-Type": "application/json"}
    assert raw(gateway, method, path, body, headers)[0] == 403
    assert raw(gateway, method, path, body, headers | {"x-api-key": KEY})[0] == 200


@pytest.mark.parametrize("path", ["/prod/v1%2Fprices", "/prod/v1%2Fmodel", "/prod/v1/../v1/prices"])
def test_ambiguous_paths_are_refused_with_a_400(gateway: Gateway, path: str) -> None:
    status, _, body = raw(gateway, "POST", path, b"{}", {"x-api-key": KEY})
    assert status == 400 and set(json.loads(body)) == ERROR_KEYS


def test_only_declared_routes_exist(gateway: Gateway) -> None:
    # The SageMaker container's routes and anything undeclared answer like API Gateway: not found
    for method, path in (("POST", "/prod/invocations"), ("GET", "/prod/ping"), ("GET", "/prod/x")):
        status, _, body = raw(gateway, method, path, b"[]", {"x-api-key": KEY})
        assert status == 404 and set(json.loads(body)) == ERROR_KEYS, (method, path)
    status, _, body = raw(gateway, "TRACE", "/prod/")
    assert status == 404 and json.loads(body)["error"] == "not found"
    # Public routes are GETs that price nothing
    public = [r for r in PRICE_API_ROUTES if r.access is Access.PUBLIC]
    assert public and all(r.method == "GET" and not r.path.startswith("/v1") for r in public)


def test_gateway_paths_outside_the_stage_are_refused_like_api_gateway(gateway: Gateway) -> None:
    status, _, body = request(f"http://127.0.0.1:{gateway.port}/v1/prices")
    assert status == 404
    assert json.loads(body)["error"] == "not found"


def test_chunked_bodies_are_read_as_bodies(gateway: Gateway) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    chunks = [
        json.dumps(example_diamond()).encode()[:40],
        json.dumps(example_diamond()).encode()[40:],
    ]
    connection.request(
        "POST",
        "/prod/v1/prices",
        body=iter(chunks),
        headers={"Content-Type": "application/json", "x-api-key": KEY},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["price_usd"] > 0
    # The same connection then serves the next request: no chunk bytes were left behind
    connection.request("GET", "/prod/health")
    assert connection.getresponse().status == 200
    connection.close()


@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_a_bad_content_length_is_a_400_not_a_hang(gateway: Gateway, length: str) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /prod/v1/prices HTTP/1.1\r\nHost: x\r\nx-api-key: "
            + KEY.encode()
            + b"\r\nContent-Length: "
            + length.encode()
            + b"\r\n\r\n{}"
        )
        answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 400")


def test_a_body_over_api_gateways_limit_is_refused_before_it_is_sent(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /prod/v1/prices/batch HTTP/1.1\r\nHost: x\r\nx-api-key: "
            + KEY.encode()
            + b"\r\nContent-Type: text/csv\r\nContent-Length: 50000000\r\n\r\n"
        )
        answer = b""
        while b"}" not in answer:  # headers and body may come in separate segments
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"payload too large" in answer


def test_cors_preflight_is_answered_by_the_gateway_for_configured_origins(
    gateway: Gateway,
) -> None:
    asked = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    status, headers, _ = raw(gateway, "OPTIONS", "/prod/v1/prices", headers=asked)
    assert status == 204 and headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in headers["access-control-allow-headers"]
    # the priced answer carries the CORS header for the browser too
    status, headers, _ = raw(
        gateway,
        "POST",
        "/prod/v1/prices",
        json.dumps(example_diamond()).encode(),
        {"Content-Type": "application/json", "x-api-key": KEY, "Origin": ORIGIN},
    )
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    # another origin gets no permission
    status, headers, _ = raw(
        gateway, "OPTIONS", "/prod/v1/prices", headers=asked | {"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in headers


def test_gateway_bad_input_is_a_422_not_a_500(gateway: Gateway) -> None:
    status, body = price(gateway, {**example_diamond(), "cut": "Excellent"})
    assert status == 422
    assert body["details"][0]["field"] == "cut"


def test_gateway_docs_and_web_page_work_under_the_stage_and_offline(gateway: Gateway) -> None:
    status, headers, body = request(f"{gateway.url}/docs")
    assert status == 200 and b"/prod/openapi.json" in body
    assert b"http" not in body.replace(b"http-equiv", b"")  # nothing from a CDN
    assert request(f"{gateway.url}/static/swagger-ui-bundle.js")[0] == 200
    assert request(f"{gateway.url}/openapi.json")[0] == 200
    status, headers, body = request(f"{gateway.url}/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]


def test_gateway_csv_upload_travels_base64(gateway: Gateway) -> None:
    csv_text = (
        ",".join(FEATURE_NAMES) + "\n" + ",".join(str(v) for v in example_diamond().values()) + "\n"
    )
    boundary = "facetboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv_text}\r\n--{boundary}--\r\n"
    ).encode()
    status, _, answer = request(
        f"{gateway.url}/v1/prices/batch",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "x-api-key": KEY},
    )
    assert status == 200, answer
    assert json.loads(answer)["count"] == 1


def _worker_processes(port: int) -> int:
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            parts = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"local_emulation.gateway" in parts and str(port).encode() in parts:
            count += 1
    return count


def test_starting_a_started_gateway_starts_no_more_workers(served_model_dir: Path) -> None:
    gateway = Gateway.for_local_model(served_model_dir, free_port(), workers=1).start()
    with gateway:  # as `facet serve` and the demo use it: started, then entered
        assert len(gateway.processes) == 1
        assert _worker_processes(gateway.port) == 1
    assert _worker_processes(gateway.port) == 0
