"""The price API's surface, declared once: which routes exist, which need an API key, body limits.

The CDK app builds one API Gateway resource and method per route (no catch-all), the local gateway
authorizes and routes on the same table, and a test checks that the FastAPI app serves exactly
these routes. Anything not listed does not exist on the API: API Gateway answers it itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

# Limits of the services in front of the code (AWS quotas, not choices).
API_GATEWAY_MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
LAMBDA_MAX_RESPONSE_BYTES: Final = 6 * 1024 * 1024  # synchronous invoke: 6,291,456 bytes
API_GATEWAY_TIMEOUT_SECONDS: Final = 29

JSON: Final = "application/json"
CSV: Final = "text/csv"
MULTIPART: Final = "multipart/form-data"
API_KEY_HEADER: Final = "x-api-key"


class Access(StrEnum):
    PUBLIC = "public"
    API_KEY = "api-key"


@dataclass(frozen=True)
class Route:
    """One method on one API Gateway resource. `{proxy+}` as the last segment matches the rest."""

    method: str
    path: str
    access: Access
    media_types: tuple[str, ...] = ()
    max_body_bytes: int = 0
    validated_body: bool = False  # API Gateway checks the JSON body against the Diamond model

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(part for part in self.path.split("/") if part)

    def matches(self, method: str, segments: tuple[str, ...]) -> bool:
        return method == self.method and self.matches_path(segments)

    def matches_path(self, segments: tuple[str, ...]) -> bool:
        own = self.segments
        if own and own[-1] == "{proxy+}":
            return len(segments) >= len(own) and segments[: len(own) - 1] == own[:-1]
        return segments == own


SINGLE_PRICE_MAX_BODY_BYTES: Final = 16 * 1024  # one stone is ~200 bytes of JSON

# The API keys every deployment creates (one usage plan): the jeweller's web page, and one example
# partner. The cloud generates their values; `aws apigateway get-api-key --include-value` reads one.
API_KEY_NAMES: Final = ("jeweller-web", "partner-example")
PARTNER_MONTHLY_QUOTA: Final = 1_000_000


@dataclass(frozen=True)
class Throttle:
    """API Gateway's token bucket: a steady rate (requests/s) and a burst."""

    rate: float
    burst: int

    def for_partners(self) -> Throttle:
        """The usage plan's, per key: half the stage's, so one partner cannot take all of it."""
        return Throttle(self.rate / 2, max(1, self.burst // 2))


# Per deployment stage (infra/stages.py holds the rest of what differs between stages).
API_THROTTLES: Final = {
    "dev": Throttle(rate=20, burst=40),
    "staging": Throttle(rate=50, burst=100),
    "prod": Throttle(rate=100, burst=200),
}


def diamond_request_schema() -> dict[str, Any]:
    """The Diamond request body as API Gateway's request validator checks it (JSON Schema
    draft 4, from contracts.schema.Diamond): required fields, types, grades, bounds."""
    from contracts.schema import Diamond

    source = Diamond.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in source["properties"].items():
        field: dict[str, Any] = {"description": prop.get("description")}
        if "enum" in prop:
            field |= {"type": "string", "enum": prop["enum"]}
        else:
            field["type"] = prop["type"]
            if "exclusiveMinimum" in prop:
                field |= {"minimum": prop["exclusiveMinimum"], "exclusiveMinimum": True}
            for bound in ("minimum", "maximum"):
                if bound in prop:
                    field[bound] = prop[bound]
        properties[name] = {k: v for k, v in field.items() if v is not None}
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "Diamond",
        "type": "object",
        "required": list(source["required"]),
        "additionalProperties": False,
        "properties": properties,
    }


PRICE_API_ROUTES: Final = (
    Route("GET", "/", Access.PUBLIC),
    Route("GET", "/static/{proxy+}", Access.PUBLIC),
    Route("GET", "/docs", Access.PUBLIC),
    Route("GET", "/openapi.json", Access.PUBLIC),
    Route("GET", "/health", Access.PUBLIC),
    Route("GET", "/ready", Access.PUBLIC),
    Route(
        "POST",
        "/v1/prices",
        Access.API_KEY,
        media_types=(JSON,),
        max_body_bytes=SINGLE_PRICE_MAX_BODY_BYTES,
        validated_body=True,
    ),
    Route(
        "POST",
        "/v1/prices/batch",
        Access.API_KEY,
        media_types=(JSON, CSV, MULTIPART),
        max_body_bytes=API_GATEWAY_MAX_PAYLOAD_BYTES,
    ),
    Route("GET", "/v1/model", Access.API_KEY),
    Route("GET", "/v1/models", Access.API_KEY),
)

# The hosting container takes any request SageMaker sends it: a batch transform mini-batch is at
# most MaxPayloadInMB (contracts.names.TRANSFORM_MAX_PAYLOAD_MB), a real-time request 6 MB.
HOSTING_MAX_BODY_BYTES: Final = API_GATEWAY_MAX_PAYLOAD_BYTES
# The SageMaker hosting contract: only inside the serving container, never on the Lambda API.
HOSTING_ROUTES: Final = (
    Route("GET", "/ping", Access.PUBLIC),
    Route("GET", "/execution-parameters", Access.PUBLIC),
    Route(
        "POST",
        "/invocations",
        Access.PUBLIC,
        media_types=(JSON, CSV),
        max_body_bytes=HOSTING_MAX_BODY_BYTES,
    ),
)


class PathError(ValueError):
    """A request path that cannot be read one way only (encoded '/', dot segments, bad escapes)."""


def normalized_segments(path: str) -> tuple[str, ...]:
    """The decoded segments of a raw request path, or PathError if it is ambiguous.

    Authorization and routing both use these segments, so an encoding cannot make the two
    disagree: `/%76%31/prices` is `/v1/prices` for both, and `/v1%2Fprices` is refused.
    """
    from urllib.parse import unquote

    if "?" in path or "#" in path:
        raise PathError("the path holds '?' or '#'")
    segments = []
    for raw in path.split("/")[1:] if path.startswith("/") else [None]:
        if raw is None:
            raise PathError("the path must start with '/'")
        if "%" in raw and not _valid_escapes(raw):
            raise PathError(f"invalid percent-encoding in {raw!r}")
        decoded = unquote(raw, errors="strict")
        if "/" in decoded or "\\" in decoded:
            raise PathError("an encoded '/' or '\\' inside a path segment")
        if decoded in {".", ".."}:
            raise PathError("'.' and '..' segments are not allowed")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
            raise PathError("control characters in the path")
        segments.append(decoded)
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash is the same resource
    if "" in segments:
        raise PathError("empty path segments ('//')")
    return tuple(segments)


def _valid_escapes(segment: str) -> bool:
    hexdigits = set("0123456789abcdefABCDEF")
    index = segment.find("%")
    while index != -1:
        pair = segment[index + 1 : index + 3]
        if len(pair) != 2 or not set(pair) <= hexdigits:
            return False
        index = segment.find("%", index + 3)
    return True


def find_route(routes: tuple[Route, ...], method: str, segments: tuple[str, ...]) -> Route | None:
    for route in routes:
        if route.matches(method, segments):
            return route
    return None


def resource_exists(routes: tuple[Route, ...], segments: tuple[str, ...]) -> bool:
    return any(route.matches_path(segments) for route in routes)


MESSAGE_STRING: Final = "$context.error.messageString"


class GatewayResponse(StrEnum):
    """API Gateway's own answers (no Lambda runs), each in the API's documented error shape."""

    MISSING_AUTHENTICATION_TOKEN = "MISSING_AUTHENTICATION_TOKEN"
    INVALID_API_KEY = "INVALID_API_KEY"
    BAD_REQUEST_BODY = "BAD_REQUEST_BODY"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    THROTTLED = "THROTTLED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    DEFAULT_4XX = "DEFAULT_4XX"
    DEFAULT_5XX = "DEFAULT_5XX"


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    error: str
    message: str  # a VTL variable in the cloud template is allowed (`$context.error...`)


GATEWAY_ANSWERS: Final = {
    # API Gateway cannot tell "no such path" from "no such method": both are this type.
    GatewayResponse.MISSING_AUTHENTICATION_TOKEN: GatewayAnswer(
        404, "not found", "No such route or method on this API; see /docs."
    ),
    GatewayResponse.INVALID_API_KEY: GatewayAnswer(
        403, "forbidden", f"Missing or unknown API key: send it in the {API_KEY_HEADER} header."
    ),
    GatewayResponse.BAD_REQUEST_BODY: GatewayAnswer(
        422, "invalid input", "$context.error.validationErrorString"
    ),
    GatewayResponse.REQUEST_TOO_LARGE: GatewayAnswer(
        413,
        "payload too large",
        f"The request body is over API Gateway's {API_GATEWAY_MAX_PAYLOAD_BYTES:,} bytes.",
    ),
    GatewayResponse.THROTTLED: GatewayAnswer(
        429, "too many requests", "Slow down: the rate limit of this API or key was exceeded."
    ),
    GatewayResponse.QUOTA_EXCEEDED: GatewayAnswer(
        429, "quota exceeded", "This API key has used its monthly quota."
    ),
    GatewayResponse.DEFAULT_4XX: GatewayAnswer(400, "bad request", MESSAGE_STRING),
    GatewayResponse.DEFAULT_5XX: GatewayAnswer(502, "bad gateway", MESSAGE_STRING),
}


def gateway_error_template(answer: GatewayAnswer) -> str:
    """The VTL body template for API Gateway: the app's error shape, API Gateway's request id."""
    # $context.error.messageString is already a quoted JSON string; the others are not.
    message = answer.message if answer.message == MESSAGE_STRING else f'"{answer.message}"'
    return (
        f'{{"error": "{answer.error}", "message": {message}, "details": [], '
        '"request_id": "$context.requestId"}'
    )
