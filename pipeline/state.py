"""The state the training pipeline passes between its steps, described once.

Each step's Lambda returns one of these models (dumped to JSON) and the ASL puts it under its
ResultPath (`$.validation`, `$.dataset`, ...); the next steps, the run report and the CLI read the
same models back. Unknown keys are kept, so a newer step's output never breaks an older reader.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Decision = Literal["approve", "reject", "pending"]


class StateModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class RunInfo(StateModel):
    execution: str = "run"


class ResidualSummary(StateModel):
    rows: int
    median: float
    spread: float
    outlier_share: float
    mape: float


class BatchVerdict(StateModel):
    """The verdict on a labelled batch (pipeline.verdict), with what it was judged against."""

    kind: Literal["consistent", "market_shift", "inconsistent", "unjudged"]
    reason: str
    shift: float = 0.0
    shift_log: float = 0.0
    spread_ratio: float = 1.0
    decile_shifts: list[float] = Field(default_factory=list)
    histogram: dict[str, list[float]] | None = None
    batch: ResidualSummary | None = None
    holdout: ResidualSummary | None = None
    production_version: int | None = None
    seconds: float = 0.0

    @property
    def trainable(self) -> bool:
        return self.kind != "inconsistent"


class Validation(StateModel):
    already_processed: bool
    key: str
    processed_as: dict[str, Any] | None = None
    content_sha256: str = ""
    ledger_key: str = ""
    input_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    duplicate_rows: int = 0
    validated_key: str | None = None
    quarantine_key: str | None = None
    drift: list[dict[str, Any]] = Field(default_factory=list)
    drift_summary: str = ""
    verdict: BatchVerdict | None = None
    market_level: float = 0.0
    batch_record_key: str | None = None

    @property
    def rejected_labels(self) -> bool:
        return self.verdict is not None and not self.verdict.trainable


class DriftCheck(StateModel):
    retrain: bool
    reason: str
    drift: list[dict[str, Any]] = Field(default_factory=list)
    verdict: BatchVerdict | None = None


class BatchUse(StateModel):
    """One batch in a dataset: why it is there, at which price level, how many rows it gave."""

    key: str
    validated_key: str
    verdict: str
    market_level: float
    rows: int


class Dataset(StateModel):
    dataset_hash: str
    rows: int
    sources: list[str]
    batches: list[BatchUse] = Field(default_factory=list)
    holdout_rows_removed: int = 0
    recent_rows_removed: int = 0
    holdout_hash: str = ""
    holdout_version: int = 1
    market_level: float = 0.0
    recent_holdout_key: str | None = None
    recent_holdout_rows: int = 0
    train_s3_uri: str = ""
    holdout_s3_uri: str = ""
    training_job_name: str = ""
    hyperparameters: dict[str, str] = Field(default_factory=dict)
    stopping_condition: dict[str, int] = Field(default_factory=dict)
    poll_seconds: int = 30
    retrain_reason: str = ""
    # The registry version the model will get if registered (it names the model), and the
    # training job's Environment (the tracking server, the experiment, that version).
    model_version: int = 1
    training_environment: dict[str, str] = Field(default_factory=dict)


class Candidate(StateModel):
    family: str
    metrics: dict[str, float]
    deciles: list[dict[str, Any]] = Field(default_factory=list)
    model_data_url: str
    artifact_sha256: str
    training_job: str
    dataset_hash: str = ""
    holdout_hash: str = ""
    code_version: str = ""
    market_level: float = 0.0
    model_name: str = ""
    mlflow_run_id: str = ""


class Scores(StateModel):
    """Candidate and production metrics on one holdout (frozen or recent)."""

    holdout: Literal["frozen", "recent"]
    rows: int
    candidate: dict[str, float]
    production: dict[str, float] | None = None


class ProductionRef(StateModel):
    arn: str
    version: int
    metrics: dict[str, float]
    market_level: float = 0.0


class Evaluation(StateModel):
    decision: Decision
    reason: str
    candidate: Candidate
    production: ProductionRef | None = None
    gate_holdout: Literal["frozen", "recent"] = "frozen"
    frozen: Scores | None = None
    recent: Scores | None = None
    metrics_s3_uri: str | None = None

    @property
    def approve(self) -> bool:
        return self.decision == "approve"


class Registration(StateModel):
    arn: str
    version: int
    status: str


class Deployment(StateModel):
    deployed: bool
    version: int | None = None
    reason: str = ""


class Failure(StateModel):
    error: str
    cause: str


class RunState(StateModel):
    """The whole state of one execution, as the report and the CLI read it."""

    run: RunInfo = Field(default_factory=RunInfo)
    validation: Validation | None = None
    drift_check: DriftCheck | None = None
    dataset: Dataset | None = None
    evaluation: Evaluation | None = None
    registration: Registration | None = None
    deployment: Deployment | None = None
    failure: Failure | None = None
    error: dict[str, Any] | None = None


def error_cause(error: dict[str, Any]) -> str:
    """The readable cause of a state's caught error: a Lambda's errorMessage, else the text."""
    cause = error.get("Cause", "")
    try:
        payload = json.loads(cause)
    except (TypeError, ValueError):
        return str(cause)
    if isinstance(payload, dict) and "errorMessage" in payload:
        return str(payload["errorMessage"])
    return str(cause)
