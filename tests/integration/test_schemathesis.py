"""Property-based tests of the API against its own OpenAPI: no input may cause a 5xx or break the schema.

schemathesis generates requests from the app's OpenAPI (valid and invalid ones) and checks every
response: no server error, status code and body as documented. Its pytest plugin does not run on
pytest 9 (schemathesis 4.32.5), so each operation is driven through Hypothesis directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from contracts.settings import Settings
from serving.app import create_app

# The OpenAPI does not depend on the model, so the operations can be listed at collection time.
_SPEC = create_app(Settings(model_dir=Path("/nonexistent"), data_bucket="")).openapi()
CSV_OPERATIONS = {"/v1/prices/batch", "/invocations"}
OPERATIONS = [
    (method.upper(), path) for path, methods in _SPEC["paths"].items() for method in methods
]


@pytest.fixture(scope="module")
def api_schema(served_model_dir: Path) -> Any:
    app = create_app(Settings(model_dir=served_model_dir, data_bucket="", max_batch_rows=50))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_exercised() -> None:
    assert ("POST", "/v1/prices") in OPERATIONS and ("POST", "/invocations") in OPERATIONS


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_openapi(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]

    # A CSV's contents cannot be described in OpenAPI (it is "a string"), so for the CSV-accepting
    # operations schemathesis' "schema-valid data must be accepted" check cannot apply; every
    # other check (no 5xx, documented statuses, content types and bodies, bad data rejected) does.
    excluded = [checks.positive_data_acceptance] if path in CSV_OPERATIONS else []

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(excluded_checks=excluded)

    check()
