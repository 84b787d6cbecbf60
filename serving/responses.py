"""JSON responses that are sure to fit through Lambda: 6,291,456 bytes for the whole invoke result.

The proxy response travels as a JSON document whose `body` is the API's JSON as one escaped string,
so each quote and backslash counts twice and each non-ASCII character six times. A response that
would not fit is refused with a 413 that names the limit, instead of Lambda failing it as a 502.
"""

from __future__ import annotations

import json
from typing import Any, Final

from fastapi.responses import Response

from contracts.api import LAMBDA_MAX_RESPONSE_BYTES
from serving.errors import ResponseTooLargeError

# statusCode, headers (security headers, CSP, request id, timing) and multiValueHeaders.
ENVELOPE_ALLOWANCE: Final = 4096
BULK_SCORING_HINT: Final = (
    "Ask for fewer rows per request, or leave out the explanations (explain=false); "
    "whole catalogues belong in bulk scoring (batch transform)."
)


def lambda_payload_bytes(body: bytes) -> int:
    """Bytes of the Lambda response carrying this body as its JSON string (plus the envelope)."""
    return len(json.dumps(body.decode("utf-8"))) + ENVELOPE_ALLOWANCE


def fits_lambda(body: bytes) -> bool:
    # Escaping at most sextuples a byte (a control character becomes a six-character escape),
    # so small bodies need no exact count.
    if len(body) * 6 + ENVELOPE_ALLOWANCE <= LAMBDA_MAX_RESPONSE_BYTES:
        return True
    return lambda_payload_bytes(body) <= LAMBDA_MAX_RESPONSE_BYTES


def bounded_json(content: Any) -> Response:
    """Compact JSON (as FastAPI's own) that fits a Lambda response, else ResponseTooLargeError."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    if not fits_lambda(body):
        raise ResponseTooLargeError(
            f"The answer would be {lambda_payload_bytes(body):,} bytes, over Lambda's "
            f"{LAMBDA_MAX_RESPONSE_BYTES:,}-byte response limit. {BULK_SCORING_HINT}"
        )
    return Response(body, media_type="application/json")
