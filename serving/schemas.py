"""Response shapes of the price API, documented for web developers who do not know ML."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class PriceRange(BaseModel):
    low: float = Field(description="Lower end of the plausible price, USD.", examples=[2250.0])
    high: float = Field(description="Upper end of the plausible price, USD.", examples=[2790.0])
    coverage: float = Field(
        description="Share of known appraisals that fell inside such a range (0.8 = 8 in 10).",
        examples=[0.8],
    )


class Factor(BaseModel):
    name: str = Field(
        description=(
            "What the factor is about: size (carat and x/y/z), cut, color, clarity, depth or table."
        ),
        examples=["size"],
    )
    factor: float = Field(
        description="Multiplier applied to the base price (1.2 = 20 % more).", examples=[1.071]
    )
    effect_percent: float = Field(
        description="The same as a percentage change of the base price.", examples=[7.1]
    )
    effect_usd: float = Field(
        description=(
            "This factor's share, in dollars, of the gap between the base price and the price: "
            "shared in proportion to each factor's log effect, so base price + every effect_usd "
            "= price, whatever the order."
        ),
        examples=[171.2],
    )
    inputs: dict[str, Any] = Field(
        description="The stone's values this factor is about.", examples=[{"carat": 0.71}]
    )


class Explanation(BaseModel):
    base_price_usd: float = Field(
        description="Price of an average stone, before any factor.", examples=[2404.0]
    )
    factors: list[Factor] = Field(
        description="One factor per feature, the strongest first. base price × all factors = price."
    )


class Quote(BaseModel):
    price_usd: float = Field(description="Estimated price in US dollars.", examples=[2512.37])
    range_usd: PriceRange
    explanation: Explanation | None = Field(
        None, description="Why this price (omitted when not asked for)."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Things about the input a person should check, e.g. dimensions that do not "
        "match the carat. The stone is priced as sent.",
    )


class PriceResponse(Quote):
    model_version: int | None = Field(
        description="Registry version of the model that priced it.", examples=[2]
    )
    request_id: str = Field(
        description="Quote this when asking about a price (API Gateway's request id, a UUID).",
        examples=["c6af9ac6-7b61-11e6-9a41-93e8deadbeef"],
    )


class BatchResponse(BaseModel):
    model_version: int | None = Field(examples=[2])
    request_id: str
    count: int = Field(
        description="How many stones were priced (same order as sent).", examples=[2]
    )
    quotes: list[Quote]


class ModelResponse(BaseModel):
    version: int | None = Field(
        description="Registry version; null when serving a local artifact.", examples=[2]
    )
    approved_at: str | None = Field(
        description="When this version became production (UTC).",
        examples=["2026-01-12T09:00:00+00:00"],
    )
    family: str = Field(description="Kind of model.", examples=["lightgbm"])
    holdout_metrics: dict[str, float] = Field(
        description="Errors on the frozen holdout set: mape (fraction), rmse and mae (USD), r2.",
        examples=[{"rows": 10724, "mape": 0.0625, "rmse": 519.0, "mae": 261.0, "r2": 0.9828}],
    )
    dataset_version: str = Field(description="Content hash of the training data.")
    code_version: str
    artifact_sha256: str
    reason: str = Field(description="Why this version was promoted.")


class ModelVersion(BaseModel):
    version: int
    status: str = Field(
        description="Approved, Rejected or PendingManualApproval.", examples=["Rejected"]
    )
    production: bool
    created_at: str
    approved_at: str | None
    holdout_mape: float | None
    holdout_rmse: float | None
    holdout_r2: float | None
    dataset_version: str
    reason: str = Field(
        description="Why it was promoted or rejected.",
        examples=[
            "Rejected: MAPE 6.55% vs production v2 6.25% on the frozen holdout; "
            "needs to be at least 0.05 points better."
        ],
    )


class ErrorDetail(BaseModel):
    field: str | None = Field(
        None, description="The input field at fault, e.g. cut or rows[3].carat."
    )
    message: str


class ErrorResponse(BaseModel):
    error: str = Field(description="Short name of the problem.", examples=["invalid input"])
    message: str = Field(description="What went wrong, for a person.")
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str | None = None


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    inference_log: dict[str, int]


class Readiness(BaseModel):
    ready: bool
    model_version: int | None
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Too many rows or bytes in one request."},
    415: {"model": ErrorResponse, "description": "Send JSON or CSV."},
    422: {
        "model": ErrorResponse,
        "description": "A field is missing or outside its allowed values.",
    },
    503: {"model": ErrorResponse, "description": "No model has been approved yet."},
}
