"""The outermost layer of the app: request ids, security headers, and bounded request bodies.

Runs before FastAPI reads anything. For each declared route (contracts.api) it refuses a body
over the route's limit with a 413 before reading past the limit, an undeclared media type with
a 415, and unreadable JSON with a 422, all in the API's error shape. A Lambda receives the whole
body in its event anyway; behind a streaming server the limit holds as the bytes arrive.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from contracts.api import JSON, MULTIPART, Route, find_route
from serving.body import PARSED_JSON_STATE, parse_json
from serving.errors import (
    InvalidRowsError,
    PayloadTooLargeError,
    ServingError,
    UnsupportedMediaTypeError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_STATE: Final = "request_id"
# The page and the API docs load only their own files: no inline script, nothing from elsewhere.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def request_id(scope: Scope) -> str:
    """API Gateway's request id (a UUID) if there is an event, else a new UUID; one per request."""
    state = scope.setdefault("state", {})
    known = state.get(REQUEST_ID_STATE)
    if known is None:
        event = scope.get("aws.event") or {}
        context = event.get("requestContext") or {}
        known = str(context.get("requestId") or uuid.uuid4())
        state[REQUEST_ID_STATE] = known
    return str(known)


def error_body(status_title: str, message: str, request: str, details: Any = ()) -> bytes:
    return json.dumps(
        {"error": status_title, "message": message, "details": list(details), "request_id": request}
    ).encode()


def _route_path(scope: Scope) -> tuple[str, ...]:
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", "") or "")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :] or "/"
    return tuple(part for part in path.split("/") if part)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


class RequestGuard:
    """ASGI middleware; `routes` are the routes this app serves (contracts.api)."""

    def __init__(self, app: ASGIApp, routes: tuple[Route, ...]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        identifier = request_id(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in SECURITY_HEADERS}
                ]
                message["headers"] = [*headers, *SECURITY_HEADERS]
            await send(message)

        route = find_route(self.routes, str(scope.get("method", "")), _route_path(scope))
        if route is None or not route.max_body_bytes:
            await self.app(scope, receive, send_with_headers)
            return
        try:
            body = await self._bounded_body(scope, receive, route)
        except ServingError as error:
            await self._answer(send_with_headers, error, identifier)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)

    async def _bounded_body(self, scope: Scope, receive: Receive, route: Route) -> bytes:
        limit = route.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(
                f"The request body is {int(declared):,} bytes; this route takes at most "
                f"{limit:,} bytes."
            )
        kind = _header(scope, b"content-type").split(";")[0].strip().lower()
        if route.media_types and kind not in route.media_types:
            raise UnsupportedMediaTypeError(
                f"Content-Type {kind or '(none)'} is not accepted here: send "
                f"{' or '.join(route.media_types)}."
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"The request body is over {limit:,} bytes, the most this route takes."
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if kind == JSON:
            # Parsed once here; a parse failure is a 422 with its position, never a 500.
            scope.setdefault("state", {})[PARSED_JSON_STATE] = parse_json(body)
        elif kind == MULTIPART and not body:
            raise InvalidRowsError(
                "The form is empty: attach the CSV as the field 'file'.",
                [{"field": "file", "message": "Field required"}],
            )
        return body

    async def _answer(self, send: Send, error: ServingError, identifier: str) -> None:
        details = error.problems if isinstance(error, InvalidRowsError) else []
        body = error_body(error.title, error.message, identifier, details)
        await send(
            {
                "type": "http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", identifier.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
