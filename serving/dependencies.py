"""What routes receive from the app: its settings, the model store, the inference logger, the
request id. Each is an `Annotated` alias; tests replace the underlying function through
`app.dependency_overrides`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from contracts.settings import Settings
from serving.comparison import Comparison
from serving.guards import request_id
from serving.inference_log import InferenceLogger
from serving.model_store import ModelStore


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


async def get_comparison(request: Request) -> Comparison | None:
    comparison: Comparison | None = getattr(request.app.state, "comparison", None)
    return comparison


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_inference_log(request: Request) -> InferenceLogger:
    logger: InferenceLogger = request.app.state.inference_log
    return logger


async def get_request_id(request: Request) -> str:
    return request_id(request.scope)


Models = Annotated[ModelStore, Depends(get_store)]
Comparer = Annotated[Comparison | None, Depends(get_comparison)]
AppSettings = Annotated[Settings, Depends(get_settings)]
InferenceLog = Annotated[InferenceLogger, Depends(get_inference_log)]
RequestId = Annotated[str, Depends(get_request_id)]
