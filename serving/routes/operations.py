"""GET /health and /ready: for load balancers, monitors and people; public, no prices."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from serving.dependencies import InferenceLog, Models
from serving.errors import ServingError
from serving.model_store import ModelStore
from serving.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


def readiness(models: ModelStore) -> Response:
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


@router.get("/health", response_model=Health, summary="Liveness")
async def health(inference_log: InferenceLog) -> Health:
    return Health(status="ok", inference_log=inference_log.counters.to_dict())


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: is a model loaded?",
    responses={503: {"model": Readiness}},
)
async def ready(models: Models) -> Response:
    return readiness(models)
