"""The Lambda handler (Mangum) with real API Gateway REST proxy events from tests/events/."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.names import Env

EVENTS = Path(__file__).resolve().parents[1] / "events"


class Context:
    function_name = "facet-serving-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:facet-serving-api"
    aws_request_id = "8f5e0a7c-1111-2222-3333-444455556666"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@pytest.fixture(scope="module")
def handler(served_model_dir: Path) -> Iterator[Any]:
    """serving.handler as Lambda imports it, configured through its environment."""
    import os

    import contracts.settings
    import serving.app

    saved = {name: os.environ.get(name) for name in (Env.MODEL_DIR.value, Env.DATA_BUCKET.value)}
    os.environ[Env.MODEL_DIR.value] = str(served_model_dir)
    os.environ[Env.DATA_BUCKET.value] = ""
    contracts.settings.get_settings.cache_clear()
    serving.app.default_app.cache_clear()
    module = importlib.import_module("serving.handler")
    module = importlib.reload(module)
    yield module.handler
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    contracts.settings.get_settings.cache_clear()
    serving.app.default_app.cache_clear()


def call(handler: Any, name: str) -> tuple[dict[str, Any], str]:
    event = json.loads((EVENTS / name).read_text())
    response = handler(event, Context())
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return response, body


def test_event_price_one(handler: Any) -> None:
    response, body = call(handler, "price_one.json")
    assert response["statusCode"] == 200
    quote = json.loads(body)
    assert quote["price_usd"] > 0
    assert quote["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # API Gateway's requestId
    assert response["multiValueHeaders"] == {} or "content-type" in response["headers"]


def test_event_query_string_is_honoured(handler: Any) -> None:
    _, body = call(handler, "price_one_no_explanation.json")
    assert json.loads(body)["explanation"] is None


def test_event_bad_cut_is_a_422_naming_the_field(handler: Any) -> None:
    response, body = call(handler, "price_bad_cut.json")
    assert response["statusCode"] == 422
    assert json.loads(body)["details"][0]["field"] == "cut"


def test_event_base64_csv_batch(handler: Any) -> None:
    response, body = call(handler, "price_batch_csv_base64.json")
    assert response["statusCode"] == 200, body
    assert json.loads(body)["count"] == 2


def test_event_docs_point_at_the_stage_prefixed_openapi(handler: Any) -> None:
    response, body = call(handler, "docs.json")
    assert response["statusCode"] == 200
    assert "/prod/openapi.json" in body


def test_event_openapi_lists_the_stage_as_server(handler: Any) -> None:
    response, body = call(handler, "openapi.json")
    spec = json.loads(body)
    assert response["statusCode"] == 200
    assert spec["servers"] == [{"url": "/prod"}]


def test_event_web_page_at_the_root_resource(handler: Any) -> None:
    response, body = call(handler, "web_page.json")
    assert response["statusCode"] == 200
    assert "Facet — diamond prices" in body
    # Links carry the stage, so the page works at /prod and /prod/; its script is a file
    assert 'data-root="/prod"' in body and 'src="/prod/static/app.js"' in body
    assert "<script>" not in body
    policy = response["headers"]["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_event_static_script_is_served_as_text(handler: Any) -> None:
    response, body = call(handler, "static_app_js.json")
    assert response["statusCode"] == 200 and not response["isBase64Encoded"]
    assert response["headers"]["content-type"].startswith("text/javascript")
    assert "textContent" in body and "innerHTML" not in body


def test_event_http_api_v2_with_a_named_stage_is_routed(handler: Any) -> None:
    response, body = call(handler, "http_api_v2_price_one.json")
    assert response["statusCode"] == 200, body
    assert json.loads(body)["price_usd"] > 0


def test_event_sagemaker_routes_do_not_exist_on_the_lambda_api(handler: Any) -> None:
    event = json.loads((EVENTS / "price_one.json").read_text())
    event["path"] = event["resource"] = "/invocations"
    event["requestContext"]["path"] = "/prod/invocations"
    response = handler(event, Context())
    assert response["statusCode"] == 404


def test_event_current_model(handler: Any) -> None:
    response, body = call(handler, "model.json")
    assert response["statusCode"] == 200
    assert json.loads(body)["family"] == "lightgbm"
