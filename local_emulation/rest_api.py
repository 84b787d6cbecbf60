"""The price API's REST API declared in an emulator as the CDK app declares it (infra/serving.py),
from the same contract (contracts.api): one resource and method per route, API keys where the
route needs one, the Diamond model and request validator, the gateway responses, stage
throttling, a usage plan with the API keys.

Only the integration differs. In the cloud (and on moto, which never calls it) it is the serving
Lambda (AWS_PROXY). LocalStack cannot run that Lambda without Docker, so there every method is an
HTTP_PROXY to the local Lambda stand-in: Facet's own gateway, which runs the same handler.

Idempotent: declaring again changes integrations only and redeploys the stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from contracts.api import (
    API_KEY_NAMES,
    API_THROTTLES,
    GATEWAY_ANSWERS,
    JSON,
    PARTNER_MONTHLY_QUOTA,
    PRICE_API_ROUTES,
    Access,
    Route,
    diamond_request_schema,
    gateway_error_template,
)
from contracts.names import API_STAGE, StageNames

BINARY_MEDIA_TYPES: Final = ["multipart/form-data", "text/csv"]
VALIDATOR_NAME: Final = "body-and-parameters"
MODEL_NAME: Final = "Diamond"
PROXY: Final = "{proxy+}"
PROXY_PATH_MAPPING: Final = {
    "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}
}


@dataclass(frozen=True)
class LambdaProxy:
    """API Gateway invokes the serving function (the cloud's integration)."""

    function_arn: str
    region: str
    kind: str = "AWS_PROXY"

    def uri(self, route: Route) -> str:
        return (
            f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/"
            f"{self.function_arn}/invocations"
        )

    def http_method(self, route: Route) -> str:
        return "POST"


@dataclass(frozen=True)
class HttpProxy:
    """API Gateway forwards the request to an HTTP server running the same handler."""

    base_url: str
    kind: str = "HTTP_PROXY"

    def uri(self, route: Route) -> str:
        return self.base_url.rstrip("/") + route.path.replace(PROXY, "{proxy}")

    def http_method(self, route: Route) -> str:
        return route.method


Integration = LambdaProxy | HttpProxy


@dataclass(frozen=True)
class DeclaredApi:
    api_id: str
    keys: dict[str, str]  # API key name -> value

    def invoke_url(self, endpoint: str) -> str:
        """The stage's base URL on LocalStack (its path form needs no DNS)."""
        return f"{endpoint.rstrip('/')}/_aws/execute-api/{self.api_id}/{API_STAGE}"


def _resources(apigateway: Any, api_id: str) -> dict[str, str]:
    items = apigateway.get_resources(restApiId=api_id, limit=500)["items"]
    return {item["path"]: item["id"] for item in items}


def _resource(apigateway: Any, api_id: str, known: dict[str, str], path: str) -> str:
    """The resource at `path`, creating its missing parents first."""
    if path in known:
        return known[path]
    parent_path, _, part = path.rpartition("/")
    parent = _resource(apigateway, api_id, known, parent_path or "/")
    known[path] = apigateway.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]
    return known[path]


def _has_method(apigateway: Any, api_id: str, resource: str, method: str) -> bool:
    try:
        apigateway.get_method(restApiId=api_id, resourceId=resource, httpMethod=method)
    except apigateway.exceptions.NotFoundException:
        return False
    return True


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((item for item in items if item.get("name") == name), None)


def declare(apigateway: Any, names: StageNames, integration: Integration) -> DeclaredApi:
    """The REST API, its stage, usage plan and keys; returns its id and the keys' values."""
    existing = _named(apigateway.get_rest_apis(limit=500).get("items", []), names.api_name)
    api_id = (
        existing["id"]
        if existing
        else apigateway.create_rest_api(
            name=names.api_name,
            binaryMediaTypes=BINARY_MEDIA_TYPES,
            endpointConfiguration={"types": ["REGIONAL"]},
        )["id"]
    )
    validator = _named(
        apigateway.get_request_validators(restApiId=api_id).get("items", []), VALIDATOR_NAME
    ) or apigateway.create_request_validator(
        restApiId=api_id,
        name=VALIDATOR_NAME,
        validateRequestBody=True,
        validateRequestParameters=True,
    )
    if not _named(apigateway.get_models(restApiId=api_id).get("items", []), MODEL_NAME):
        apigateway.create_model(
            restApiId=api_id,
            name=MODEL_NAME,
            contentType=JSON,
            schema=json.dumps(diamond_request_schema()),
        )
    known = _resources(apigateway, api_id)
    for route in PRICE_API_ROUTES:
        resource = _resource(apigateway, api_id, known, route.path)
        proxied = route.path.endswith(PROXY)
        if not _has_method(apigateway, api_id, resource, route.method):
            apigateway.put_method(
                restApiId=api_id,
                resourceId=resource,
                httpMethod=route.method,
                authorizationType="NONE",
                apiKeyRequired=route.access is Access.API_KEY,
                **(
                    {"requestValidatorId": validator["id"], "requestModels": {JSON: MODEL_NAME}}
                    if route.validated_body
                    else {}
                ),
                **({"requestParameters": {"method.request.path.proxy": True}} if proxied else {}),
            )
        apigateway.put_integration(
            restApiId=api_id,
            resourceId=resource,
            httpMethod=route.method,
            type=integration.kind,
            integrationHttpMethod=integration.http_method(route),
            uri=integration.uri(route),
            **(
                {
                    "requestParameters": {
                        "integration.request.path.proxy": "method.request.path.proxy"
                    }
                }
                if proxied and isinstance(integration, HttpProxy)
                else {}
            ),
        )
    for kind, answer in GATEWAY_ANSWERS.items():
        apigateway.put_gateway_response(
            restApiId=api_id,
            responseType=kind.value,
            statusCode=str(answer.status),
            responseTemplates={JSON: gateway_error_template(answer)},
        )
    apigateway.create_deployment(restApiId=api_id, stageName=API_STAGE)
    throttle = API_THROTTLES[names.stage] if names.stage in API_THROTTLES else API_THROTTLES["dev"]
    apigateway.update_stage(
        restApiId=api_id,
        stageName=API_STAGE,
        patchOperations=[
            {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(throttle.rate)},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(throttle.burst)},
        ],
    )
    return DeclaredApi(api_id, _usage_plan_keys(apigateway, names, api_id))


def _usage_plan_keys(apigateway: Any, names: StageNames, api_id: str) -> dict[str, str]:
    partners = (API_THROTTLES.get(names.stage) or API_THROTTLES["dev"]).for_partners()
    plan = _named(apigateway.get_usage_plans(limit=500).get("items", []), names.usage_plan)
    if plan is None:
        plan = apigateway.create_usage_plan(
            name=names.usage_plan,
            apiStages=[{"apiId": api_id, "stage": API_STAGE}],
            throttle={"rateLimit": partners.rate, "burstLimit": partners.burst},
            quota={"limit": PARTNER_MONTHLY_QUOTA, "period": "MONTH"},
        )
    keys: dict[str, str] = {}
    existing = apigateway.get_api_keys(includeValues=True, limit=500).get("items", [])
    members = {key["id"] for key in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
    for short in API_KEY_NAMES:
        name = names.api_key(short)
        key = _named(existing, name) or apigateway.create_api_key(name=name, enabled=True)
        if key["id"] not in members:
            apigateway.create_usage_plan_key(
                usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY"
            )
        keys[name] = key["value"]
    return keys


def find(apigateway: Any, names: StageNames) -> DeclaredApi | None:
    """The declared API and its keys' values, changing nothing."""
    api = _named(apigateway.get_rest_apis(limit=500).get("items", []), names.api_name)
    if api is None:
        return None
    existing = apigateway.get_api_keys(includeValues=True, limit=500).get("items", [])
    keys = {
        key["name"]: key["value"]
        for short in API_KEY_NAMES
        if (key := _named(existing, names.api_key(short)))
    }
    return DeclaredApi(api["id"], keys)
