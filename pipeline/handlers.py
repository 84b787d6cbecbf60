"""The pipeline's Lambda handlers: thin wrappers that read the lake, call pure code, and return.

Each handler receives the state machine's state and returns the part its state adds (ResultPath).
Clients are created per call; boto3 finds the endpoint (AWS, moto or LocalStack) by itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import boto3
import pandas as pd

from contracts.names import (
    DATASETS_PREFIX,
    HOLDOUT_KEY,
    HOLDOUT_MANIFEST_KEY,
    METRIC_NAMESPACE,
    PRODUCTION_VERSION_METRIC,
    REFERENCE_DATASET_KEY,
    TRAINING_ENTRY_SCRIPT,
    PackageMetadata,
    Zone,
)
from contracts.schema import FEATURE_NAMES, SCHEMA_VERSION
from contracts.settings import GatePolicy, Settings
from pipeline import lake
from pipeline import report as run_report
from pipeline.drift import drift_report, summarize
from pipeline.gate import decide
from training import registry
from training import validate as batch_validation
from training.artifact_store import fetch_model
from training.data import content_hash
from training.evaluate import decile_metrics, regression_metrics
from training.predict import PriceModel
from training.split import ROW_HASH_COLUMN, HoldoutManifest, exclude_holdout, with_row_hashes
from training.validate import ROW_COLUMN

log = logging.getLogger("facet.pipeline")
log.setLevel(logging.INFO)
_CACHE = Path(tempfile.gettempdir()) / "facet-models"
RECENT_INFERENCE_FILES = 200
MIN_STONES_FOR_DRIFT = 100


def _settings() -> Settings:
    return Settings()


def _lake_frame(s3: Any, settings: Settings, key: str) -> pd.DataFrame:
    frame = lake.read_csv(s3, settings.data_bucket, key)
    return frame.drop(columns=[c for c in (ROW_COLUMN, ROW_HASH_COLUMN) if c in frame])


def _production_model(
    sagemaker: Any, s3: Any, settings: Settings
) -> tuple[registry.PackageRecord, PriceModel] | None:
    record = registry.production(registry.list_packages(sagemaker, settings.model_package_group))
    if record is None:
        return None
    model, _ = fetch_model(s3, record.model_data_url, _CACHE, record.artifact_sha256)
    return record, model


def validate_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Validate one raw batch: accepted rows to validated/, quarantined rows to quarantine/."""
    settings, s3 = _settings(), boto3.client("s3")
    bucket, key = event["bucket"], event["key"]
    body = lake.read_bytes(s3, bucket, key)
    digest = hashlib.sha256(body).hexdigest()
    ledger_key = lake.ledger_key(digest)
    execution = event.get("run", {}).get("execution", "")
    claimed = lake.claim(
        s3,
        settings.data_bucket,
        ledger_key,
        {"key": key, "execution": execution, "claimed_at": registry.now_iso()},
    )
    if not claimed:
        first = lake.read_json(s3, settings.data_bucket, ledger_key)
        log.info("batch %s already processed as %s", key, first)
        return {"already_processed": True, "key": key, "processed_as": first}
    result = batch_validation.validate_batch(body)
    report = result.report
    stamp = lake.batch_stamp(key)
    validated_key = lake.phase_key(Zone.VALIDATED, stamp)
    quarantine_key = lake.phase_key(Zone.QUARANTINE, stamp) if report.quarantined_rows else None
    accepted = result.accepted.drop(columns=[ROW_COLUMN])
    if report.accepted_rows:
        lake.write_csv(s3, settings.data_bucket, validated_key, accepted)
    if quarantine_key:
        lake.write_csv(s3, settings.data_bucket, quarantine_key, result.quarantined)
    output: dict[str, Any] = {
        "already_processed": False,
        "key": key,
        "content_sha256": digest,
        "ledger_key": ledger_key,
        "input_rows": report.input_rows,
        "accepted_rows": report.accepted_rows,
        "quarantined_rows": report.quarantined_rows,
        "reasons": dict(report.reasons),
        "duplicate_rows": report.duplicate_rows,
        "validated_key": validated_key if report.accepted_rows else None,
        "quarantine_key": quarantine_key,
        "drift": [],
        "drift_summary": "",
        "production_error": None,
    }
    if report.accepted_rows:
        reference = _lake_frame(s3, settings, REFERENCE_DATASET_KEY)
        drifts = drift_report(reference, accepted)
        output["drift"] = [d.to_dict() for d in drifts]
        output["drift_summary"] = summarize(drifts)
        current = _production_model(boto3.client("sagemaker"), s3, settings)
        if current is not None:
            record, model = current
            batch = regression_metrics(accepted["price"].to_numpy(), model.predict(accepted))
            output["production_error"] = {
                "version": record.version,
                "batch_mape": batch.mape,
                "batch_rmse": batch.rmse,
                "holdout_mape": record.metric(PackageMetadata.HOLDOUT_MAPE),
            }
    return output


def check_drift(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Scheduled check: did the stones priced recently (inference/ zone) drift from training?"""
    settings, s3 = _settings(), boto3.client("s3")
    force = bool(event.get("force"))
    keys = [
        k
        for k in lake.list_keys(s3, settings.data_bucket, Zone.INFERENCE.prefix())
        if k.endswith(".csv")
    ]
    recent = keys[-RECENT_INFERENCE_FILES:]
    frames = [lake.read_csv(s3, settings.data_bucket, key) for key in recent]
    current = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(current) < MIN_STONES_FOR_DRIFT:
        reason = f"only {len(current)} stones priced recently (need {MIN_STONES_FOR_DRIFT})"
        return {
            "retrain": force,
            "reason": reason + ("; retraining as asked" if force else ""),
            "drift": [],
        }
    reference = _lake_frame(s3, settings, REFERENCE_DATASET_KEY)
    features = current.loc[:, [name for name in FEATURE_NAMES]]
    drifts = drift_report(reference.drop(columns=["price"]), features)
    shifted = [d for d in drifts if d.level == "shifted"]
    reason = f"{len(current)} stones priced recently: {summarize(drifts)}"
    return {
        "retrain": bool(shifted) or force,
        "reason": reason + ("; retraining as asked" if force and not shifted else ""),
        "drift": [d.to_dict() for d in drifts],
    }


def _job_name(execution: str, dataset_hash: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    suffix = hashlib.sha256(execution.encode()).hexdigest()[:6]
    return f"facet-{stamp}-{dataset_hash[:8]}-{suffix}"


def _retrain_reason(event: dict[str, Any]) -> str:
    validation = event.get("validation") or {}
    if validation:
        parts = [f"new batch {validation['key']} with {validation['accepted_rows']} valid rows"]
        if validation.get("drift_summary"):
            parts.append(f"drift: {validation['drift_summary']}")
        error = validation.get("production_error")
        if error and error.get("holdout_mape") is not None:
            parts.append(
                f"production v{error['version']} MAPE on the batch {error['batch_mape']:.1%} "
                f"vs {error['holdout_mape']:.1%} on the holdout"
            )
        return "; ".join(parts)
    drift_check = event.get("drift_check") or {}
    return f"scheduled drift check: {drift_check.get('reason', 'forced')}"


def build_dataset(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The reference data plus every validated batch, minus the holdout, content-hashed."""
    settings, s3 = _settings(), boto3.client("s3")
    manifest = HoldoutManifest.from_json(
        lake.read_bytes(s3, settings.data_bucket, HOLDOUT_MANIFEST_KEY).decode()
    )
    sources = [
        REFERENCE_DATASET_KEY,
        *lake.list_keys(s3, settings.data_bucket, Zone.VALIDATED.prefix()),
    ]
    frames = [_lake_frame(s3, settings, key) for key in sources]
    combined = with_row_hashes(pd.concat(frames, ignore_index=True))
    training, removed = exclude_holdout(combined, manifest)
    dataset_hash = content_hash(training[ROW_HASH_COLUMN])
    prefix = f"{DATASETS_PREFIX}{dataset_hash}/"
    lake.write_csv(
        s3, settings.data_bucket, f"{prefix}train.csv", training.drop(columns=[ROW_HASH_COLUMN])
    )
    document = {
        "dataset_hash": dataset_hash,
        "rows": len(training),
        "sources": sources,
        "holdout_rows_removed": removed,
        "holdout_hash": manifest.holdout_hash,
        "schema_version": SCHEMA_VERSION,
        "created_at": registry.now_iso(),
    }
    lake.write_json(s3, settings.data_bucket, f"{prefix}manifest.json", document)
    hyperparameters = {"models": settings.training_models}
    hyperparameters.update(
        {k: str(v) for k, v in json.loads(settings.training_hyperparameters).items()}
    )
    if settings.training_source_s3_uri:
        hyperparameters["sagemaker_program"] = TRAINING_ENTRY_SCRIPT
        hyperparameters["sagemaker_submit_directory"] = settings.training_source_s3_uri
    holdout_prefix = HOLDOUT_KEY.rsplit("/", 1)[0] + "/"
    return {
        **document,
        "train_s3_uri": f"s3://{settings.data_bucket}/{prefix}",
        "holdout_s3_uri": f"s3://{settings.data_bucket}/{holdout_prefix}",
        "training_job_name": _job_name(event.get("run", {}).get("execution", ""), dataset_hash),
        "hyperparameters": hyperparameters,
        "stopping_condition": {"MaxRuntimeInSeconds": settings.training_max_seconds},
        "poll_seconds": settings.training_poll_seconds,
        "retrain_reason": _retrain_reason(event),
    }


def evaluate_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Score the candidate and production on the frozen holdout; apply the gate."""
    settings, s3, sagemaker = _settings(), boto3.client("s3"), boto3.client("sagemaker")
    job_name = event["dataset"]["training_job_name"]
    job = sagemaker.describe_training_job(TrainingJobName=job_name)
    model_data_url = job["ModelArtifacts"]["S3ModelArtifacts"]
    candidate, digest = fetch_model(s3, model_data_url, _CACHE)
    holdout = _lake_frame(s3, settings, HOLDOUT_KEY)
    actual = holdout["price"].to_numpy()
    predicted = candidate.predict(holdout)
    metrics = regression_metrics(actual, predicted).to_dict()
    deciles = decile_metrics(actual, predicted)
    execution = event.get("run", {}).get("execution", job_name)
    metrics_key = f"{Zone.REPORTS.prefix()}{execution}/candidate_metrics.json"
    lake.write_json(
        s3, settings.data_bucket, metrics_key, {"holdout": metrics, "holdout_deciles": deciles}
    )
    current = _production_model(sagemaker, s3, settings)
    production: dict[str, Any] | None = None
    if current is not None:
        record, model = current
        production = {
            "arn": record.arn,
            "version": record.version,
            "metrics": regression_metrics(actual, model.predict(holdout)).to_dict(),
        }
    decision = decide(
        metrics,
        production["metrics"] if production else None,
        GatePolicy(),
        production_version=production["version"] if production else None,
    )
    return {
        "approve": decision.approve,
        "reason": decision.reason,
        "candidate": {
            "family": candidate.family,
            "metrics": metrics,
            "deciles": deciles,
            "model_data_url": model_data_url,
            "artifact_sha256": digest,
            "training_job": job_name,
            "dataset_hash": candidate.metadata.get("dataset_hash", ""),
            "holdout_hash": candidate.metadata.get("holdout_hash", ""),
            "code_version": candidate.metadata.get("code_version", ""),
        },
        "production": production,
        "metrics_s3_uri": f"s3://{settings.data_bucket}/{metrics_key}",
    }


def register_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Register every model; rejected ones are marked Rejected with the gate's reason."""
    settings, sagemaker = _settings(), boto3.client("sagemaker")
    evaluation = event["evaluation"]
    candidate = evaluation["candidate"]
    metrics = candidate["metrics"]
    retrain_reason = (event.get("dataset") or {}).get("retrain_reason", "")
    metadata = {
        PackageMetadata.ARTIFACT_SHA256: candidate["artifact_sha256"],
        PackageMetadata.DATASET_HASH: candidate["dataset_hash"],
        PackageMetadata.HOLDOUT_HASH: candidate["holdout_hash"],
        PackageMetadata.CODE_VERSION: candidate["code_version"],
        PackageMetadata.SCHEMA_VERSION: SCHEMA_VERSION,
        PackageMetadata.MODEL_FAMILY: candidate["family"],
        PackageMetadata.HOLDOUT_MAPE: f"{metrics['mape']:.6f}",
        PackageMetadata.HOLDOUT_RMSE: f"{metrics['rmse']:.3f}",
        PackageMetadata.HOLDOUT_R2: f"{metrics['r2']:.6f}",
        PackageMetadata.DECISION: "approve" if evaluation["approve"] else "reject",
        PackageMetadata.REASON: evaluation["reason"][:256],
        PackageMetadata.RETRAIN_REASON: retrain_reason[:256],
        PackageMetadata.EXECUTION: event.get("run", {}).get("execution", "")[:256],
        PackageMetadata.TRAINING_JOB: candidate["training_job"],
    }
    registry.ensure_group(sagemaker, settings.model_package_group)
    record = registry.register(
        sagemaker,
        settings.model_package_group,
        model_data_url=candidate["model_data_url"],
        image=settings.serving_image,
        metadata={str(k): v for k, v in metadata.items()},
        description=(
            f"{candidate['family']} on dataset {candidate['dataset_hash'][:12]}: {retrain_reason}"
        ),
        metrics_s3_uri=evaluation.get("metrics_s3_uri"),
    )
    if not evaluation["approve"]:
        record = registry.set_status(
            sagemaker, record, registry.ApprovalStatus.REJECTED, evaluation["reason"]
        )
    return {"arn": record.arn, "version": record.version, "status": record.status}


def deploy_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Approve the package, unless production changed meanwhile and the candidate no longer wins.

    Also handles the registry's approval events (a person approving in the console, a rollback):
    then it only points the SSM parameter at the current production package.
    """
    settings, sagemaker, ssm = _settings(), boto3.client("sagemaker"), boto3.client("ssm")
    group = settings.model_package_group
    if event.get("detail-type") == "SageMaker Model Package State Change":
        current = registry.production(registry.list_packages(sagemaker, group))
        if current is not None:
            _point_to(ssm, settings, current)
        return {"deployed": current is not None, "version": current.version if current else None}
    evaluation, registration = event["evaluation"], event["registration"]
    records = registry.list_packages(sagemaker, group)
    record = registry.find_version(records, registration["version"])
    current = registry.production(records)
    evaluated_against = (evaluation.get("production") or {}).get("arn")
    if current is not None and current.arn != evaluated_against:
        recorded = {
            "mape": current.metric(PackageMetadata.HOLDOUT_MAPE),
            "rmse": current.metric(PackageMetadata.HOLDOUT_RMSE),
            "r2": current.metric(PackageMetadata.HOLDOUT_R2),
        }
        decision = decide(
            evaluation["candidate"]["metrics"],
            recorded,
            GatePolicy(),
            production_version=current.version,
        )
        if not decision.approve:
            reason = f"Production changed to v{current.version} during this run. {decision.reason}"
            registry.set_status(sagemaker, record, registry.ApprovalStatus.REJECTED, reason)
            return {"deployed": False, "version": record.version, "reason": reason}
    approved = registry.set_status(
        sagemaker, record, registry.ApprovalStatus.APPROVED, evaluation["reason"]
    )
    _point_to(ssm, settings, approved)
    return {
        "deployed": True,
        "version": approved.version,
        "reason": f"version {approved.version} is now production. {evaluation['reason']}",
    }


def _point_to(ssm: Any, settings: Settings, record: registry.PackageRecord) -> None:
    """Point the production parameter at `record`, and publish its version for the dashboard."""
    ssm.put_parameter(
        Name=settings.production_model_param,
        Value=json.dumps({"arn": record.arn, "version": record.version}),
        Type="String",
        Overwrite=True,
    )
    boto3.client("cloudwatch").put_metric_data(
        Namespace=METRIC_NAMESPACE,
        MetricData=[
            {
                "MetricName": PRODUCTION_VERSION_METRIC,
                "Value": float(record.version),
                "Unit": "None",
            }
        ],
    )


def write_report(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Markdown and plots for the run, to reports/<execution>/ in the lake."""
    settings, s3 = _settings(), boto3.client("s3")
    execution = event.get("run", {}).get("execution", "run")
    model = holdout = None
    evaluation = event.get("evaluation")
    if evaluation:
        model, _ = fetch_model(s3, evaluation["candidate"]["model_data_url"], _CACHE)
        holdout = _lake_frame(s3, settings, HOLDOUT_KEY)
    with tempfile.TemporaryDirectory() as tmp:
        files = run_report.write_report(event, Path(tmp), model=model, holdout=holdout)
        prefix = f"{Zone.REPORTS.prefix()}{execution}/"
        for name in files:
            s3.upload_file(str(Path(tmp) / name), settings.data_bucket, prefix + name)
    return {
        "prefix": f"s3://{settings.data_bucket}/{prefix}",
        "files": files,
        "outcome": run_report.outcome_line(event),
    }


def _cause_text(error: dict[str, Any]) -> str:
    cause = error.get("Cause", "")
    try:
        payload = json.loads(cause)
    except (TypeError, ValueError):
        return str(cause)
    if isinstance(payload, dict) and "errorMessage" in payload:
        return str(payload["errorMessage"])
    return str(cause)


def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Write the failure report, release the batch's ledger claim, leave production as it is."""
    settings, s3 = _settings(), boto3.client("s3")
    error = event.get("error") or {}
    cause = _cause_text(error)
    validation = event.get("validation") or {}
    if validation.get("ledger_key") and not validation.get("already_processed"):
        s3.delete_object(Bucket=settings.data_bucket, Key=validation["ledger_key"])
    registration = event.get("registration") or {}
    if registration.get("status") == registry.ApprovalStatus.PENDING.value:
        sagemaker = boto3.client("sagemaker")
        records = registry.list_packages(sagemaker, settings.model_package_group)
        registry.set_status(
            sagemaker,
            registry.find_version(records, registration["version"]),
            registry.ApprovalStatus.REJECTED,
            f"Not deployed: the run failed at deployment ({cause[:150]}).",
        )
    state = {**event, "failure": {"error": error.get("Error", "Error"), "cause": cause}}
    execution = event.get("run", {}).get("execution", "run")
    with tempfile.TemporaryDirectory() as tmp:
        files = run_report.write_report(state, Path(tmp))
        for name in files:
            s3.upload_file(
                str(Path(tmp) / name),
                settings.data_bucket,
                f"{Zone.REPORTS.prefix()}{execution}/{name}",
            )
    return {"error": error.get("Error", "Error"), "cause": cause}
