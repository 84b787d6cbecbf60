"""The SageMaker hosting contract (GET /ping, POST /invocations, GET /execution-parameters),
served only by the container that SageMaker runs (serving.sagemaker_serve) behind an endpoint or
a batch transform job; the Lambda API has no such routes.

A batch transform job sends `text/csv` mini-batches of whole lines and asks for `text/csv` back
(`Accept`): the answer has exactly one line per input line, in order, so the service can
assemble the output file line by line (contracts.schema.scored_columns names the columns).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from contracts.api import CSV, HOSTING_MAX_BODY_BYTES
from contracts.names import TRANSFORM_MAX_PAYLOAD_MB
from contracts.settings import Settings
from serving.body import stones_from
from serving.dependencies import AppSettings, InferenceLog, Models
from serving.inference_log import log_priced
from serving.pricing import price_table, quote, scored_csv
from serving.responses import bounded_json
from serving.routes.operations import readiness
from serving.routes.prices import batch_request_body, check_explained_rows
from serving.schemas import ERRORS, Readiness

# Every row takes at least one byte: the body's byte bound is also the bound on its rows.
HOSTING_MAX_ROWS = HOSTING_MAX_BODY_BYTES


def wants_csv(request: Request) -> bool:
    accepted = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == CSV for part in accepted.split(","))


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["SageMaker hosting"])

    @router.get(
        "/ping",
        response_model=Readiness,
        summary="SageMaker health check: 200 once a model is loaded",
        responses={503: {"model": Readiness, "description": "No model yet."}},
    )
    async def ping(models: Models) -> Response:
        return readiness(models)

    @router.get(
        "/execution-parameters",
        summary="What a batch transform job should send this container (SageMaker asks once)",
    )
    async def execution_parameters() -> dict[str, Any]:
        return {
            "MaxConcurrentTransforms": 1,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": TRANSFORM_MAX_PAYLOAD_MB,
        }

    body = batch_request_body(settings)
    body["requestBody"]["content"].pop("multipart/form-data")

    @router.post(
        "/invocations",
        summary="SageMaker inference: text/csv (with or without header) or application/json; "
        "answers JSON, or one CSV line per stone with Accept: text/csv",
        responses=ERRORS,
        openapi_extra=body,
    )
    async def invocations(
        request: Request, models: Models, inference_log: InferenceLog, app_settings: AppSettings
    ) -> Any:
        stones = await stones_from(request, HOSTING_MAX_ROWS, headerless_csv=True)
        loaded = models.get()
        explain = app_settings.explain
        if wants_csv(request):
            table = price_table(loaded.model, stones, explain=explain)
            prices = [round(p, 2) for p in table.prices.tolist()]
            answer: Response = PlainTextResponse(scored_csv(table, stones), media_type=CSV)
        else:
            if explain:
                check_explained_rows(len(stones), app_settings)
            quotes = quote(loaded.model, stones, with_explanation=explain)
            prices = [q["price_usd"] for q in quotes]
            answer = bounded_json({"model_version": loaded.info.version, "predictions": quotes})
        log_priced(
            inference_log,
            request,
            route="invocations",
            model_version=loaded.info.version,
            stones=stones,
            prices=prices,
        )
        return answer

    return router
