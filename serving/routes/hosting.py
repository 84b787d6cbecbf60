"""The SageMaker hosting contract (GET /ping, POST /invocations), served only by the container
that SageMaker runs (serving.sagemaker_serve); the Lambda API has no such routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from contracts.settings import Settings
from serving.body import stones_from
from serving.dependencies import AppSettings, InferenceLog, Models
from serving.inference_log import log_priced
from serving.pricing import quote
from serving.responses import bounded_json
from serving.routes.operations import readiness
from serving.routes.prices import batch_request_body, check_explained_rows
from serving.schemas import ERRORS, Readiness


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

    body = batch_request_body(settings)
    body["requestBody"]["content"].pop("multipart/form-data")

    @router.post(
        "/invocations",
        summary="SageMaker inference: text/csv (with or without header) or application/json",
        responses=ERRORS,
        openapi_extra=body,
    )
    async def invocations(
        request: Request, models: Models, inference_log: InferenceLog, app_settings: AppSettings
    ) -> Any:
        stones = await stones_from(request, app_settings.max_batch_rows, headerless_csv=True)
        check_explained_rows(len(stones), app_settings)
        loaded = models.get()
        quotes = quote(loaded.model, stones, with_explanation=True)
        log_priced(
            inference_log,
            request,
            route="invocations",
            model_version=loaded.info.version,
            stones=stones,
            quotes=quotes,
        )
        return bounded_json({"model_version": loaded.info.version, "predictions": quotes})

    return router
