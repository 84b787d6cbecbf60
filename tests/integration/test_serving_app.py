"""The price API in-process, serving a local artifact: contract, errors, limits, hosting routes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.api import HOSTING_ROUTES, PRICE_API_ROUTES
from contracts.schema import CUT, FEATURE_NAMES, example_diamond
from contracts.settings import Settings
from serving.app import create_app, create_hosting_app
from serving.inference_log import InferenceLogger
from training.predict import load_model

CSV_HEADER = ",".join(FEATURE_NAMES)


@pytest.fixture(scope="module")
def client(served_model_dir: Path) -> Any:
    app = create_app(Settings(model_dir=served_model_dir, data_bucket="", max_batch_rows=10_000))
    with TestClient(app) as test_client:
        yield test_client


def test_price_one_returns_price_range_version_and_explanation(
    client: TestClient, served_model_dir: Path
) -> None:
    response = client.post("/v1/prices", json=example_diamond())
    assert response.status_code == 200
    body = response.json()
    expected = float(
        load_model(served_model_dir).predict({k: [v] for k, v in example_diamond().items()})[0]
    )
    assert body["price_usd"] == pytest.approx(expected, abs=0.01)
    assert body["range_usd"]["low"] < body["price_usd"] < body["range_usd"]["high"]
    factors = body["explanation"]["factors"]
    assert {f["name"] for f in factors} == {"size", "cut", "color", "clarity", "depth", "table"}
    product = body["explanation"]["base_price_usd"] * math.prod(f["factor"] for f in factors)
    assert product == pytest.approx(body["price_usd"], rel=1e-4)
    assert response.headers["x-request-id"] == body["request_id"]


def test_price_one_without_explanation(client: TestClient) -> None:
    body = client.post("/v1/prices?explain=false", json=example_diamond()).json()
    assert body["explanation"] is None


def test_unknown_cut_gets_422_naming_the_field_and_allowed_values(client: TestClient) -> None:
    response = client.post("/v1/prices", json={**example_diamond(), "cut": "Excellent"})
    assert response.status_code == 422
    body = response.json()
    assert body["details"][0]["field"] == "cut"
    for level in CUT.levels:
        assert level in body["details"][0]["message"]


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"carat": 0}, "carat", "greater than 0"),
        ({"depth": 95}, "depth", "less than or equal to 80"),
        ({"x": "wide"}, "x", "valid number"),
        ({"color": None}, "color", "Input should be"),
        ({"price": 300}, "price", "Extra inputs are not permitted"),
    ],
)
def test_bad_field_gets_422_with_its_name(
    client: TestClient, change: dict[str, Any], field: str, text: str
) -> None:
    response = client.post("/v1/prices", json={**example_diamond(), **change})
    assert response.status_code == 422
    details = {d["field"]: d["message"] for d in response.json()["details"]}
    assert text in details[field]


def test_missing_field_and_malformed_json_get_422(client: TestClient) -> None:
    stone = example_diamond()
    stone.pop("table")
    assert client.post("/v1/prices", json=stone).json()["details"] == [
        {"field": "table", "message": "Field required"}
    ]
    response = client.post(
        "/v1/prices", content=b"{carat: 1", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_batch_json_prices_every_row_in_order(client: TestClient) -> None:
    stones = [example_diamond(), {**example_diamond(), "carat": 1.5, "x": 7.3, "y": 7.3, "z": 4.5}]
    body = client.post("/v1/prices/batch", json=stones).json()
    assert body["count"] == 2
    assert body["quotes"][1]["price_usd"] > body["quotes"][0]["price_usd"]
    assert body["quotes"][0]["explanation"] is None


def test_batch_csv_body_and_upload_give_the_same_prices(client: TestClient) -> None:
    csv_text = CSV_HEADER + "\n" + ",".join(str(v) for v in example_diamond().values()) + "\n"
    body = client.post(
        "/v1/prices/batch", content=csv_text, headers={"content-type": "text/csv"}
    ).json()
    upload = client.post(
        "/v1/prices/batch", files={"file": ("stones.csv", csv_text, "text/csv")}
    ).json()
    single = client.post("/v1/prices", json=example_diamond()).json()
    assert body["quotes"][0]["price_usd"] == upload["quotes"][0]["price_usd"] == single["price_usd"]


def test_batch_bad_row_names_row_and_field(client: TestClient) -> None:
    stones = [example_diamond(), {**example_diamond(), "clarity": "FL"}]
    response = client.post("/v1/prices/batch", json=stones)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "rows[1].clarity"


def test_batch_over_the_row_limit_gets_413(client: TestClient) -> None:
    response = client.post("/v1/prices/batch", json=[example_diamond()] * 10_001)
    assert response.status_code == 413
    assert "10,001 rows; the limit is 10,000" in response.json()["message"]


def test_batch_csv_without_the_feature_columns_gets_422(client: TestClient) -> None:
    response = client.post(
        "/v1/prices/batch", content="a,b\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422
    assert "The CSV header lacks: carat" in response.json()["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_batch_other_media_types_get_415(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/v1/prices/batch", content=b"carat", headers={"content-type": content_type}
    )
    assert response.status_code == 415


@pytest.fixture(scope="module")
def hosting(served_model_dir: Path) -> Any:
    app = create_hosting_app(Settings(model_dir=served_model_dir, data_bucket=""))
    with TestClient(app) as test_client:
        yield test_client


def test_sagemaker_ping_and_invocations_accept_csv_without_header_and_json(
    hosting: TestClient,
) -> None:
    assert hosting.get("/ping").status_code == 200
    row = ",".join(str(v) for v in example_diamond().values())
    from_csv = hosting.post(
        "/invocations", content=row + "\n", headers={"content-type": "text/csv"}
    ).json()
    from_json = hosting.post("/invocations", json={"instances": [example_diamond()]}).json()
    assert from_csv["predictions"][0]["price_usd"] == from_json["predictions"][0]["price_usd"]
    assert from_csv["predictions"][0]["explanation"]["factors"]


def test_the_lambda_api_serves_exactly_its_declared_routes(client: TestClient) -> None:
    # GIVEN the routes contracts.api declares (the CDK app builds one API Gateway method each)
    for route in PRICE_API_ROUTES:
        path = route.path.replace("{proxy+}", "app.js")
        kwargs: dict[str, Any] = {"json": example_diamond()} if route.method == "POST" else {}
        # THEN each answers (not 404/405), and nothing else is documented
        assert client.request(route.method, path, **kwargs).status_code not in {404, 405}, route
    documented = {
        (method.upper(), path)
        for path, methods in client.get("/openapi.json").json()["paths"].items()
        for method in methods
    }
    assert documented <= {(r.method, r.path) for r in PRICE_API_ROUTES}
    # AND the SageMaker hosting routes do not exist on it
    for route in HOSTING_ROUTES:
        response = client.request(route.method, route.path, json=[example_diamond()])
        assert response.status_code == 404
        assert set(response.json()) == {"error", "message", "details", "request_id"}


def test_the_hosting_app_serves_only_ping_and_invocations(hosting: TestClient) -> None:
    paths = set(hosting.get("/openapi.json").json()["paths"])
    assert paths == {r.path for r in HOSTING_ROUTES}
    assert hosting.post("/v1/prices", json=example_diamond()).status_code == 404


def test_current_model_and_readiness(client: TestClient) -> None:
    model = client.get("/v1/model").json()
    assert model["family"] == "lightgbm"
    assert 0 < model["holdout_metrics"]["mape"] < 0.08
    assert client.get("/ready").json()["ready"] is True


def test_no_model_gets_503_with_a_clear_message(tmp_path: Path) -> None:
    empty = create_app(Settings(model_dir=tmp_path, data_bucket=""))
    with TestClient(empty) as test_client:
        response = test_client.post("/v1/prices", json=example_diamond())
        assert response.status_code == 503
        assert "No model is approved yet" in response.json()["message"]
        assert test_client.get("/ready").status_code == 503
    hosting_app = create_hosting_app(Settings(model_dir=tmp_path, data_bucket=""))
    with TestClient(hosting_app) as test_client:
        assert test_client.get("/ping").status_code == 503


def test_openapi_documents_examples_for_web_developers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    diamond = spec["components"]["schemas"]["Diamond"]
    assert diamond["properties"]["cut"]["enum"] == list(CUT.levels)
    assert "Range (0, 10]" in diamond["properties"]["carat"]["description"]
    assert spec["paths"]["/v1/prices"]["post"]["responses"]["422"]
    assert "text/csv" in spec["paths"]["/v1/prices/batch"]["post"]["requestBody"]["content"]


def test_every_priced_stone_is_logged(served_model_dir: Path) -> None:
    written: list[bytes] = []

    class RecordingS3:
        def put_object(self, **kwargs: Any) -> None:
            written.append(kwargs["Body"])

    logger = InferenceLogger(RecordingS3, "lake", flush_rows=1000)
    app = create_app(
        Settings(model_dir=served_model_dir, data_bucket="lake"), inference_logger=logger
    )
    with TestClient(app) as test_client:
        test_client.post("/v1/prices", json=example_diamond())
        test_client.post("/v1/prices/batch", json=[example_diamond()] * 3)
    # after shutdown: everything flushed, counted, and written as CSV rows with the features
    assert logger.counters.to_dict()["accepted"] == 4
    assert logger.counters.to_dict()["written"] == 4
    lines = b"".join(written).decode().splitlines()
    assert lines[0].startswith("request_id,logged_at,route,model_version,latency_ms,price,carat")
    assert len([line for line in lines if not line.startswith("request_id")]) == 4
