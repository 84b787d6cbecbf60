"""The price API: FastAPI, the same app behind API Gateway + Lambda and in a SageMaker endpoint."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final

import boto3
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import TypeAdapter, ValidationError

from contracts.names import PackageMetadata
from contracts.schema import FEATURE_NAMES, Diamond, example_diamond
from contracts.settings import Settings, get_settings
from serving.errors import (
    InvalidRowsError,
    PayloadTooLargeError,
    ServingError,
    UnsupportedMediaTypeError,
)
from serving.inference_log import InferenceLogger, rows_for
from serving.model_store import ModelStore
from serving.pricing import quote
from serving.schemas import (
    BatchResponse,
    ErrorResponse,
    Health,
    ModelResponse,
    ModelVersion,
    PriceResponse,
    Readiness,
)
from training import registry

log = logging.getLogger("facet.serving")
WEB_PAGE: Final = Path(__file__).with_name("web") / "index.html"
MAX_BODY_BYTES: Final = 10 * 1024 * 1024  # API Gateway's own payload limit
MAX_REPORTED_PROBLEMS: Final = 50
ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    413: {"model": ErrorResponse, "description": "Too many rows in one request."},
    415: {"model": ErrorResponse, "description": "Send JSON or CSV."},
    422: {
        "model": ErrorResponse,
        "description": "A field is missing or outside its allowed values.",
    },
    503: {"model": ErrorResponse, "description": "No model has been approved yet."},
}
DESCRIPTION: Final = """
Prices a diamond from what an appraiser records, and says why.

* **Price one stone**: `POST /v1/prices` with the stone's nine characteristics. You get a price
  in US dollars, a plausible range, the model version, and an explanation: a *base price*
  (an average stone) multiplied by one *factor* per feature (size, cut, color, clarity,
  depth, table).
* **Price many**: `POST /v1/prices/batch` with a JSON array or a CSV file (up to 10,000 rows).
* **Which model**: `GET /v1/model` (the one pricing now) and `GET /v1/models` (every version,
  and why each was promoted or rejected).

Bad input gets a 422 that names the field and its allowed values or range.
"""

_DIAMONDS: Final = TypeAdapter(list[Diamond])  # type: ignore[valid-type]


def _request_id(request: Request) -> str:
    """API Gateway's request id if there is one, else a new one; the same for the whole request."""
    known = getattr(request.state, "request_id", None)
    if known is None:
        event = request.scope.get("aws.event") or {}
        known = str(event.get("requestContext", {}).get("requestId") or uuid.uuid4().hex[:16])
        request.state.request_id = known
    return str(known)


def _field(location: Sequence[Any]) -> str:
    parts = [p for p in location if p not in ("body", "query")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _problems(errors: Sequence[Any], prefix: str = "") -> list[dict[str, Any]]:
    problems = []
    for error in errors[:MAX_REPORTED_PROBLEMS]:
        location = list(error.get("loc", ()))
        name = _field(location)
        if prefix:
            name = f"{prefix}{name}" if name.startswith("[") else f"{prefix}.{name}"
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "missing":
            message = "Field required"
        problems.append({"field": name, "message": message})
    return problems


def _error(
    status: int,
    title: str,
    message: str,
    request: Request,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=title, message=message, details=details or [], request_id=_request_id(request)
    )  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(), status_code=status)


async def get_store(request: Request) -> ModelStore:
    """The model store of the app handling the request (tests can override this dependency)."""
    store: ModelStore = request.app.state.store
    return store


def _default_store(settings: Settings) -> ModelStore:
    return ModelStore(settings, lambda: (boto3.client("sagemaker"), boto3.client("s3")))


def _default_logger(settings: Settings) -> InferenceLogger:
    return InferenceLogger(
        lambda: boto3.client("s3"),
        settings.data_bucket,
        flush_rows=settings.inference_log_flush_rows,
    )


def create_app(
    settings: Settings | None = None,
    store: ModelStore | None = None,
    inference_logger: InferenceLogger | None = None,
) -> FastAPI:
    """The app; tests pass their own settings, model store and logger.

    Endpoints are `async def` on purpose: pricing is ~2 ms of CPU, and a Lambda environment serves
    one request at a time, so hopping to a thread pool would only add latency.
    """
    settings = settings or get_settings()
    store = store or _default_store(settings)
    inference_logger = inference_logger or _default_logger(settings)
    in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ

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
        responses={500: {"model": ErrorResponse, "description": "A fault on our side."}},
    )
    app.state.settings, app.state.store, app.state.inference_log = settings, store, inference_logger

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = _problems(error.errors())
        fields = ", ".join(p["field"] for p in problems)
        return _error(422, "invalid input", f"Check these fields: {fields}.", request, problems)

    @app.exception_handler(ServingError)
    async def serving_error(request: Request, error: ServingError) -> JSONResponse:
        details = error.problems if isinstance(error, InvalidRowsError) else []
        return _error(error.status_code, error.title, error.message, request, details)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(
            500, "internal error", "Something failed on our side; quote the request id.", request
        )

    @app.middleware("http")
    async def timing(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        request.state.started = started
        response: Response = await call_next(request)
        response.headers["x-request-id"] = _request_id(request)
        response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        if in_lambda and inference_logger.due():
            inference_logger.flush()  # Lambda freezes background threads between invocations
        return response

    def _log(
        request: Request,
        route: str,
        version: int | None,
        stones: list[dict[str, Any]],
        quotes: list[dict[str, Any]],
    ) -> None:
        latency = (time.perf_counter() - request.state.started) * 1000
        inference_logger.log(
            rows_for(
                _request_id(request),
                route=route,
                model_version=version,
                latency_ms=latency,
                stones=stones,
                prices=[q["price_usd"] for q in quotes],
            )
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def web_page() -> HTMLResponse:
        return HTMLResponse(WEB_PAGE.read_text())

    @app.get("/health", response_model=Health, tags=["operations"], summary="Liveness")
    async def health() -> Health:
        return Health(status="ok", inference_log=inference_logger.counters.to_dict())

    @app.get(
        "/ready",
        response_model=Readiness,
        tags=["operations"],
        summary="Readiness: is a model loaded?",
        responses={503: {"model": Readiness}},
    )
    async def ready(models: Annotated[ModelStore, Depends(get_store)]) -> Response:
        try:
            loaded = models.get()
        except ServingError as error:
            body = Readiness(ready=False, model_version=None, message=error.message)
            return JSONResponse(body.model_dump(), status_code=503)
        message = "serving" + (
            f" (last refresh failed: {models.last_error})" if models.last_error else ""
        )
        return JSONResponse(
            Readiness(ready=True, model_version=loaded.info.version, message=message).model_dump()
        )

    @app.post(
        "/v1/prices",
        response_model=PriceResponse,
        tags=["prices"],
        summary="Price one diamond",
        responses=ERRORS,
    )
    async def price_one(
        request: Request,
        diamond: Diamond,  # type: ignore[valid-type]
        models: Annotated[ModelStore, Depends(get_store)],
        explain: Annotated[bool, Query(description="Include the explanation of the price.")] = True,
    ) -> dict[str, Any]:
        loaded = models.get()
        stone = diamond.model_dump()  # type: ignore[attr-defined]
        (result,) = quote(loaded.model, [stone], with_explanation=explain)
        _log(request, "price", loaded.info.version, [stone], [result])
        return {**result, "model_version": loaded.info.version, "request_id": _request_id(request)}

    batch_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Diamond"},
                        "minItems": 1,
                        "maxItems": settings.max_batch_rows,
                    },
                    "example": [
                        example_diamond(),
                        {**example_diamond(), "carat": 1.2, "clarity": "SI1"},
                    ],
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": ",".join(FEATURE_NAMES)
                    + "\n"
                    + ",".join(str(v) for v in example_diamond().values()),
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    }

    @app.post(
        "/v1/prices/batch",
        response_model=BatchResponse,
        tags=["prices"],
        summary="Price many diamonds (JSON array, CSV body or CSV file upload)",
        responses=ERRORS,
        openapi_extra=batch_body,
    )
    async def price_many(
        request: Request,
        models: Annotated[ModelStore, Depends(get_store)],
        explain: Annotated[
            bool, Query(description="Include each price's explanation (slower).")
        ] = False,
    ) -> dict[str, Any]:
        stones = await _stones_from(request, settings.max_batch_rows)
        loaded = models.get()
        quotes = quote(loaded.model, stones, with_explanation=explain)
        _log(request, "batch", loaded.info.version, stones, quotes)
        return {
            "model_version": loaded.info.version,
            "request_id": _request_id(request),
            "count": len(quotes),
            "quotes": quotes,
        }

    @app.get(
        "/v1/model",
        response_model=ModelResponse,
        tags=["models"],
        summary="The model pricing now",
        responses={503: ERRORS[503]},
    )
    async def current_model(models: Annotated[ModelStore, Depends(get_store)]) -> dict[str, Any]:
        return models.get().info.to_dict()

    @app.get(
        "/v1/models",
        response_model=list[ModelVersion],
        tags=["models"],
        summary="Every model version, and why it was promoted or not",
    )
    async def model_history(
        models: Annotated[ModelStore, Depends(get_store)],
    ) -> list[dict[str, Any]]:
        if settings.model_dir is not None:
            return []
        records = models.history()
        production = registry.production(records)
        return [
            {
                "version": r.version,
                "status": r.status,
                "production": production is not None and r.arn == production.arn,
                "created_at": r.created_at.isoformat(),
                "approved_at": r.approved_at or None,
                "holdout_mape": r.metric(PackageMetadata.HOLDOUT_MAPE),
                "holdout_rmse": r.metric(PackageMetadata.HOLDOUT_RMSE),
                "holdout_r2": r.metric(PackageMetadata.HOLDOUT_R2),
                "dataset_version": r.metadata.get(PackageMetadata.DATASET_HASH, ""),
                "reason": r.description or r.metadata.get(PackageMetadata.REASON, ""),
            }
            for r in reversed(records)
        ]

    @app.get(
        "/ping",
        response_model=Readiness,
        tags=["SageMaker hosting"],
        summary="SageMaker health check: 200 once a model is loaded",
        responses={503: {"model": Readiness, "description": "No model yet."}},
    )
    async def ping(models: Annotated[ModelStore, Depends(get_store)]) -> Response:
        return await ready(models)

    @app.post(
        "/invocations",
        tags=["SageMaker hosting"],
        summary="SageMaker inference: text/csv (with or without header) or application/json",
        responses=ERRORS,
        openapi_extra=batch_body,
    )
    async def invocations(
        request: Request, models: Annotated[ModelStore, Depends(get_store)]
    ) -> dict[str, Any]:
        stones = await _stones_from(request, settings.max_batch_rows, headerless_csv=True)
        loaded = models.get()
        quotes = quote(loaded.model, stones, with_explanation=True)
        _log(request, "invocations", loaded.info.version, stones, quotes)
        return {"model_version": loaded.info.version, "predictions": quotes}

    return app


async def _stones_from(
    request: Request, limit: int, *, headerless_csv: bool = False
) -> list[dict[str, Any]]:
    """Validated stones from a JSON array/object, a CSV body or a CSV upload."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"The request body is {declared:,} bytes; the limit is {MAX_BODY_BYTES:,}."
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        try:
            payload = json.loads(await request.body() or b"null")
        except ValueError as error:
            raise InvalidRowsError(
                f"The body is not valid JSON: {error}", [{"field": "body", "message": str(error)}]
            ) from None
        if isinstance(payload, dict) and "instances" in payload:
            payload = payload["instances"]  # SageMaker's JSON convention
        elif isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list):
            raise InvalidRowsError(
                "Send a JSON array of diamonds.",
                [{"field": "body", "message": "expected an array"}],
            )
        records: list[Any] = payload
    elif media_type == "text/csv":
        records = _csv_records(await request.body(), headerless_csv)
    elif media_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRowsError(
                "Attach the CSV as the form field 'file'.",
                [{"field": "file", "message": "Field required"}],
            )
        records = _csv_records(await upload.read(), headerless_csv)
    else:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media_type or '(none)'} is not supported: "
            "send application/json, text/csv or multipart/form-data."
        )
    if not records:
        raise InvalidRowsError("The batch has no rows.", [{"field": "body", "message": "no rows"}])
    if len(records) > limit:
        raise PayloadTooLargeError(
            f"The batch has {len(records):,} rows; the limit is {limit:,} per request."
        )
    try:
        diamonds = _DIAMONDS.validate_python(records)
    except ValidationError as error:
        problems = _problems(error.errors(), prefix="rows")
        raise InvalidRowsError(
            f"{error.error_count()} problem(s) in the batch; nothing was priced. "
            f"First: {problems[0]['field']}: {problems[0]['message']}",
            problems,
        ) from None
    return [d.model_dump() for d in diamonds]


def _csv_records(body: bytes, headerless: bool) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRowsError(
            f"The CSV is not UTF-8 text (byte {error.start}).",
            [{"field": "body", "message": "not UTF-8"}],
        ) from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        return []
    header = [cell.strip() for cell in rows[0]]
    if set(FEATURE_NAMES) <= set(header):
        names, data = header, rows[1:]
    elif headerless:
        names, data = list(FEATURE_NAMES), rows
    else:
        missing = [n for n in FEATURE_NAMES if n not in header]
        raise InvalidRowsError(
            f"The CSV header lacks: {', '.join(missing)}. "
            f"Expected columns: {', '.join(FEATURE_NAMES)}.",
            [{"field": name, "message": "missing column"} for name in missing],
        )
    keep = [i for i, name in enumerate(names) if name in FEATURE_NAMES]
    records = []
    for number, row in enumerate(data, start=1):
        if len(row) != len(names):
            raise InvalidRowsError(
                f"CSV row {number} has {len(row)} fields, expected {len(names)}.",
                [
                    {
                        "field": f"rows[{number - 1}]",
                        "message": f"{len(row)} fields, expected {len(names)}",
                    }
                ],
            )
        records.append({names[i]: row[i].strip() for i in keep})
    return records


@lru_cache(maxsize=1)
def default_app() -> FastAPI:
    return create_app()
