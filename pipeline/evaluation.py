"""Score a candidate against production and decide: approve, reject, or wait for a person.

Both models are always scored on the same rows now (never against recorded figures), on the
frozen holdout and, when there is one, on the recent holdout (a slice of the batches at today's
price level). Which one the gate judges on:

- the frozen holdout, while the market is where the frozen holdout was frozen (as before);
- the recent holdout, once the market has moved: a model that learned today's prices looks
  worse on yesterday's, so the frozen holdout would reject every model that follows the market.
  The frozen figures are reported beside it. After a market shift on this very batch, a winning
  candidate is approved or left PendingManualApproval by `GatePolicy.on_shift`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from contracts.settings import GatePolicy, Settings
from pipeline import production as prod
from pipeline.gate import FROZEN, decide
from pipeline.state import BatchVerdict, Candidate, Dataset, Evaluation, ProductionRef, Scores
from training.artifact_store import fetch_model
from training.evaluate import decile_metrics, regression_metrics
from training.predict import PriceModel

RECENT = "recent data"
MIN_RECENT_ROWS = 200


# What the artifact's metadata may say about its name and run: anything else is dropped, since
# the registry, the report and MLflow tags repeat it.
MODEL_NAME = re.compile(r"^[a-z0-9-]{1,40}_[a-z0-9-]{1,40}_[a-z0-9-]{1,40}$")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _matching(value: object, pattern: re.Pattern[str]) -> str:
    return value if isinstance(value, str) and pattern.match(value) else ""


def _metrics(model: PriceModel, frame: Any) -> dict[str, float]:
    return regression_metrics(frame["price"].to_numpy(), model.predict(frame)).to_dict()


def evaluate(
    s3: Any,
    sagemaker: Any,
    ssm: Any,
    settings: Settings,
    *,
    dataset: Dataset,
    verdict: BatchVerdict | None,
    batch_key: str,
    policy: GatePolicy | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """The evaluation, and the metrics document to store beside the report."""
    policy = policy or GatePolicy()
    bucket = settings.data_bucket
    job = sagemaker.describe_training_job(TrainingJobName=dataset.training_job_name)
    model_data_url = job["ModelArtifacts"]["S3ModelArtifacts"]
    candidate_model, digest = fetch_model(s3, model_data_url, prod.MODEL_CACHE)
    holdout, manifest = prod.holdout(s3, bucket)
    actual = holdout["price"].to_numpy()
    predicted = candidate_model.predict(holdout)
    frozen_metrics = regression_metrics(actual, predicted).to_dict()
    current = prod.production(sagemaker, s3, ssm, settings.production_model_param)
    frozen = Scores(
        holdout="frozen",
        rows=len(holdout),
        candidate=frozen_metrics,
        production=_metrics(current.model, holdout) if current else None,
    )
    recent: Scores | None = None
    if dataset.recent_holdout_key and dataset.recent_holdout_rows >= MIN_RECENT_ROWS:
        recent_rows = prod.lake_frame(s3, bucket, dataset.recent_holdout_key)
        recent = Scores(
            holdout="recent",
            rows=len(recent_rows),
            candidate=_metrics(candidate_model, recent_rows),
            production=_metrics(current.model, recent_rows) if current else None,
        )
    shifted_now = verdict is not None and verdict.kind == "market_shift"
    market_moved = not math.isclose(
        dataset.market_level, manifest.market_level, abs_tol=prod.LEVEL_TOLERANCE
    )
    on_recent = recent is not None and (shifted_now or market_moved)
    scores = recent if on_recent and recent is not None else frozen
    # The RMSE floor is in dollars at the classic data's prices: it moves with the price level.
    level = dataset.market_level if on_recent else manifest.market_level
    policy = policy.model_copy(update={"max_rmse": policy.max_rmse * math.exp(level)})
    label = f"{RECENT} ({scores.rows:,} stones at today's price level)" if on_recent else FROZEN
    decision = decide(
        scores.candidate,
        scores.production,
        policy,
        production_version=current.version if current else None,
        holdout=label,
    )
    outcome = "approve" if decision.approve else "reject"
    reason = decision.reason
    if on_recent:
        production_frozen = (
            f", production {frozen.production['mape']:.2%}" if frozen.production else ""
        )
        reason += (
            f" On {FROZEN} (version {manifest.version}, older price level) the candidate has "
            f"MAPE {frozen.candidate['mape']:.2%}{production_frozen}."
        )
    if decision.approve and shifted_now and policy.on_shift == "manual":
        assert verdict is not None
        outcome = "pending"
        reason = (
            f"Waiting for approval: market shift of {verdict.shift:+.1%} on "
            f"{batch_key}; the candidate wins on {RECENT}. {reason} Approve with "
            "`facet approve <version>` (in AWS: the registry console or update-model-package)."
        )
    evaluation = Evaluation(
        decision=outcome,  # type: ignore[arg-type]
        reason=reason,
        candidate=Candidate(
            family=candidate_model.family,
            metrics=frozen_metrics,
            deciles=decile_metrics(actual, predicted),
            model_data_url=model_data_url,
            artifact_sha256=digest,
            training_job=dataset.training_job_name,
            dataset_hash=str(candidate_model.metadata.get("dataset_hash", "")),
            holdout_hash=str(candidate_model.metadata.get("holdout_hash", "")),
            code_version=str(candidate_model.metadata.get("code_version", "")),
            market_level=dataset.market_level,
            model_name=_matching(candidate_model.metadata.get("model_name"), MODEL_NAME),
            mlflow_run_id=_matching(candidate_model.metadata.get("mlflow_run_id"), RUN_ID),
        ),
        production=(
            ProductionRef(
                arn=current.record.arn,
                version=current.version,
                metrics=frozen.production or {},
                market_level=current.market_level,
            )
            if current
            else None
        ),
        gate_holdout="recent" if on_recent else "frozen",
        frozen=frozen,
        recent=recent,
    )
    document = {
        "holdout": frozen_metrics,
        "holdout_version": manifest.version,
        "holdout_deciles": evaluation.candidate.deciles,
        "recent": recent.dump() if recent else None,
        "gate_holdout": evaluation.gate_holdout,
    }
    return evaluation, document
