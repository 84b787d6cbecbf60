"""GET /v1/model and /v1/models: which model prices now, and every version with its reason."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from contracts.names import PackageMetadata
from serving.dependencies import AppSettings, Models
from serving.schemas import ERRORS, ModelResponse, ModelVersion

router = APIRouter(prefix="/v1", tags=["models"])


@router.get(
    "/model",
    response_model=ModelResponse,
    summary="The model pricing now",
    responses={503: ERRORS[503]},
)
async def current_model(models: Models) -> dict[str, Any]:
    return models.get().info.to_dict()


@router.get(
    "/models",
    response_model=list[ModelVersion],
    summary="Every model version, and why it was promoted or not",
)
async def model_history(models: Models, settings: AppSettings) -> list[dict[str, Any]]:
    if settings.model_dir is not None:
        return []
    records = models.history()
    current = models.current()
    production_arn = current.info.arn if current else None
    return [
        {
            "version": r.version,
            "status": r.status,
            "production": r.arn == production_arn,
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
