"""POST /v1/prices and /v1/prices/batch: the partners' routes (an API key in front of them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from contracts.api import CSV, JSON, MULTIPART
from contracts.schema import FEATURE_NAMES, Diamond, example_diamond
from contracts.settings import Settings
from serving.body import stones_from
from serving.comparison import Comparison, comparison_fields
from serving.dependencies import AppSettings, Comparer, InferenceLog, Models, RequestId
from serving.errors import PayloadTooLargeError
from serving.inference_log import log_priced
from serving.pricing import quote
from serving.responses import BULK_SCORING_HINT, bounded_json
from serving.schemas import ERRORS, BatchResponse, PriceResponse


def batch_request_body(settings: Settings) -> dict[str, Any]:
    """OpenAPI of a batch body: a JSON array, a CSV body or a CSV upload."""
    example_row = ",".join(str(v) for v in example_diamond().values())
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
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
                CSV: {
                    "schema": {"type": "string"},
                    "example": ",".join(FEATURE_NAMES) + "\n" + example_row,
                },
                MULTIPART: {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    }


def check_explained_rows(rows: int, settings: Settings) -> None:
    """Explained batches are capped so that the answer always fits through Lambda (6 MB)."""
    if rows > settings.max_explained_rows:
        raise PayloadTooLargeError(
            f"{rows:,} rows with explanations would not fit in one response: at most "
            f"{settings.max_explained_rows:,} explained rows per request (Lambda's 6 MB "
            f"response limit). {BULK_SCORING_HINT}"
        )


def compare(
    comparison: Comparison | None, stones: list[dict[str, Any]], quotes: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The second model's prices beside the answered ones, for a sampled request (rollout)."""
    if comparison is None:
        return None
    compared = comparison.prices(stones)
    if compared is None:
        return None
    return comparison_fields(compared, [q["price_usd"] for q in quotes], comparison.disagreement)


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1/prices", tags=["prices"], responses=ERRORS)

    @router.post("", response_model=PriceResponse, summary="Price one diamond")
    async def price_one(
        request: Request,
        *,
        diamond: Diamond,  # type: ignore[valid-type]
        models: Models,
        comparison: Comparer,
        inference_log: InferenceLog,
        request_id: RequestId,
        explain: Annotated[bool, Query(description="Include the explanation of the price.")] = True,
    ) -> dict[str, Any]:
        loaded = models.get()
        stone = diamond.model_dump()  # type: ignore[attr-defined]
        (result,) = quote(loaded.model, [stone], with_explanation=explain)
        log_priced(
            inference_log,
            request,
            route="price",
            model_version=loaded.info.version,
            stones=[stone],
            prices=[result["price_usd"]],
            compared=compare(comparison, [stone], [result]),
        )
        return {**result, "model_version": loaded.info.version, "request_id": request_id}

    @router.post(
        "/batch",
        response_model=BatchResponse,
        summary="Price many diamonds (JSON array, CSV body or CSV file upload)",
        openapi_extra=batch_request_body(settings),
    )
    async def price_many(
        request: Request,
        *,
        models: Models,
        comparison: Comparer,
        inference_log: InferenceLog,
        request_id: RequestId,
        app_settings: AppSettings,
        explain: Annotated[
            bool,
            Query(
                description="Include each price's explanation (at most 5,000 explained rows "
                "per request by default, so that the answer fits through Lambda)."
            ),
        ] = False,
    ) -> Response:
        stones = await stones_from(request, app_settings.max_batch_rows)
        if explain:
            check_explained_rows(len(stones), app_settings)
        loaded = models.get()
        quotes = quote(loaded.model, stones, with_explanation=explain)
        log_priced(
            inference_log,
            request,
            route="batch",
            model_version=loaded.info.version,
            stones=stones,
            prices=[q["price_usd"] for q in quotes],
            compared=compare(comparison, stones, quotes),
        )
        return bounded_json(
            {
                "model_version": loaded.info.version,
                "request_id": request_id,
                "count": len(quotes),
                "quotes": quotes,
            }
        )

    return router
