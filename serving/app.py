"""The price API: FastAPI, the same code behind API Gateway + Lambda and in a SageMaker container.

`create_app` is the Lambda API (routes in contracts.api.PRICE_API_ROUTES); `create_hosting_app`
is the SageMaker hosting contract (/ping, /invocations). Domain errors map to HTTP here, in one
place, and every error, including FastAPI's own 404/405/400, has the documented shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, Final

import boto3
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from contracts.api import API_KEY_HEADER, HOSTING_ROUTES, PRICE_API_ROUTES, Route
from contracts.settings import Settings, get_settings
from serving.body import problems_from
from serving.comparison import Comparison, DisagreementPublisher
from serving.errors import InvalidRowsError, ServingError
from serving.guards import RequestGuard, error_body, request_id
from serving.inference_log import InferenceLogger
from serving.model_store import AwsClients, ModelStore
from serving.routes import hosting, models, operations, page, prices
from serving.schemas import ErrorResponse

log = logging.getLogger("facet.serving")
DESCRIPTION: Final = """
Prices a diamond from what an appraiser records, and says why.

* **Price one stone**: `POST /v1/prices` with the stone's nine characteristics. You get a price
  in US dollars, a plausible range, the model version, and an explanation: a *base price*
  (an average stone) multiplied by one *factor* per feature (size, cut, color, clarity,
  depth, table), each with its share of the price in dollars.
* **Price many**: `POST /v1/prices/batch` with a JSON array or a CSV file (up to 10,000 rows;
  up to 5,000 with explanations).
* **Which model**: `GET /v1/model` (the one pricing now) and `GET /v1/models` (every version,
  and why each was promoted or rejected).

Send your API key in the `x-api-key` header on every `/v1` call. Bad input gets a 4xx whose body
names the field and its allowed values or range.
"""
HTTP_TITLES: Final = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    413: "payload too large",
}


def _error(status: int, title: str, message: str, request: Request, details: Any = ()) -> Response:
    body = error_body(title, message, request_id(request.scope), details)
    return Response(body, status_code=status, media_type="application/json")


@lru_cache(maxsize=1)
def _registry_clients() -> AwsClients:
    """Created once per process (boto3 clients are thread-safe; building one costs ~50 ms)."""
    return AwsClients(boto3.client("sagemaker"), boto3.client("s3"), boto3.client("ssm"))


def _default_store(settings: Settings) -> ModelStore:
    return ModelStore(settings, _registry_clients)


@lru_cache(maxsize=1)
def _cloudwatch() -> Any:
    return boto3.client("cloudwatch")


def _default_logger(settings: Settings) -> InferenceLogger:
    return InferenceLogger(
        lambda: boto3.client("s3"),
        settings.data_bucket,
        flush_rows=settings.inference_log_flush_rows,
        flush_seconds=settings.inference_log_flush_seconds,
        on_written=DisagreementPublisher(_cloudwatch, settings.names.metric_namespace),
    )


def _build(
    routes: tuple[Route, ...],
    include: Callable[[FastAPI, Settings], None],
    settings: Settings | None,
    store: ModelStore | None,
    inference_logger: InferenceLogger | None,
) -> FastAPI:
    settings = settings or get_settings()
    store = store or _default_store(settings)
    inference_logger = inference_logger or _default_logger(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        inference_logger.start()
        yield
        inference_logger.close()

    app = FastAPI(
        title="Facet diamond price API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        responses={500: {"model": ErrorResponse, "description": "A fault on our side."}},
    )
    app.state.settings, app.state.store, app.state.inference_log = settings, store, inference_logger
    app.state.comparison = Comparison.from_settings(settings, _registry_clients)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = problems_from(error.errors())
        fields = ", ".join(p["field"] for p in problems)
        return _error(422, "invalid input", f"Check these fields: {fields}.", request, problems)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> Response:
        details = error.problems if isinstance(error, InvalidRowsError) else []
        return _error(error.status_code, error.title, error.message, request, details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        title = HTTP_TITLES.get(error.status_code, "error")
        message = {
            404: f"No route {request.url.path}; see /docs.",
            405: f"{request.method} is not allowed on {request.url.path}.",
        }.get(error.status_code, str(error.detail))
        response = _error(error.status_code, title, message, request)
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error")
        return _error(
            500, "internal error", "Something failed on our side; quote the request id.", request
        )

    @app.middleware("http")
    async def timing(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        request.state.started = started
        response: Response = await call_next(request)
        response.headers["x-request-id"] = request_id(request.scope)
        response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        if not inference_logger.flushing_in_background and inference_logger.due():
            inference_logger.flush()  # Lambda freezes threads between invocations: flush now
        return response

    include(app, settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", API_KEY_HEADER],
            expose_headers=["x-request-id"],
            max_age=600,
        )
    app.add_middleware(RequestGuard, routes=routes)
    return app


def _price_api(app: FastAPI, settings: Settings) -> None:
    app.include_router(page.router)
    app.include_router(operations.router)
    app.include_router(prices.build_router(settings))
    app.include_router(models.router)


def _hosting(app: FastAPI, settings: Settings) -> None:
    app.include_router(hosting.build_router(settings))


def create_app(
    settings: Settings | None = None,
    store: ModelStore | None = None,
    inference_logger: InferenceLogger | None = None,
) -> FastAPI:
    """The Lambda API; tests pass their own settings, model store and logger.

    Endpoints are `async def` on purpose: pricing is ~2 ms of CPU, and a Lambda environment serves
    one request at a time, so hopping to a thread pool would only add latency.
    """
    return _build(PRICE_API_ROUTES, _price_api, settings, store, inference_logger)


def create_hosting_app(
    settings: Settings | None = None,
    store: ModelStore | None = None,
    inference_logger: InferenceLogger | None = None,
) -> FastAPI:
    """The SageMaker hosting contract: GET /ping and POST /invocations, nothing else."""
    return _build(HOSTING_ROUTES, _hosting, settings, store, inference_logger)


@lru_cache(maxsize=1)
def default_app() -> FastAPI:
    return create_app()


@lru_cache(maxsize=1)
def default_hosting_app() -> FastAPI:
    return create_hosting_app()
