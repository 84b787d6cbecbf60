"""Property-based tests of the API against its own OpenAPI: no input may cause a 5xx or break the schema.

schemathesis generates requests from each app's OpenAPI (valid and invalid ones) and runs every
check it has (`--checks all`) on every response: no server error, status codes, content types,
headers and bodies as documented, bad data rejected, good data accepted. Its pytest plugin does
not run on pytest 9 (schemathesis 4.32.5), so each operation is driven through Hypothesis
directly. The one exception is explained in docs/api.md: a CSV's contents cannot be described
in OpenAPI (it is "a string"), so for the CSV-accepting operations "schema-valid data must be
accepted" cannot apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from contracts.settings import Settings
from serving.app import create_app, create_hosting_app

APPS = {"lambda": create_app, "hosting": create_hosting_app}
# The OpenAPI does not depend on the model, so the operations can be listed at collection time.
OPERATIONS = [
    (kind, method.upper(), path)
    for kind, factory in APPS.items()
    for path, methods in factory(Settings(model_dir=Path("/nonexistent"), data_bucket=""))
    .openapi()["paths"]
    .items()
    for method in methods
]
CSV_OPERATIONS = {"/v1/prices/batch", "/invocations"}


@pytest.fixture(scope="module")
def api_schemas(served_model_dir: Path) -> dict[str, Any]:
    settings_ = Settings(model_dir=served_model_dir, data_bucket="", max_batch_rows=50)
    return {
        kind: schemathesis.openapi.from_asgi("/openapi.json", factory(settings_))
        for kind, factory in APPS.items()
    }


def test_every_operation_is_exercised() -> None:
    assert ("lambda", "POST", "/v1/prices") in OPERATIONS
    assert ("hosting", "POST", "/invocations") in OPERATIONS


@pytest.mark.parametrize(
    ("kind", "method", "path"), OPERATIONS, ids=[f"{k} {m} {p}" for k, m, p in OPERATIONS]
)
def test_api_conforms_to_its_openapi(
    api_schemas: dict[str, Any], kind: str, method: str, path: str
) -> None:
    operation = api_schemas[kind][path][method]
    excluded = [checks.positive_data_acceptance] if path in CSV_OPERATIONS else []
    every_check = [c for c in checks.CHECKS.get_all() if c not in excluded]

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(checks=every_check)

    check()
