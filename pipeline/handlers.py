"""The pipeline's Lambda handlers: thin wrappers that read the lake, call pure code, and return.

Each handler receives the state machine's state and returns the part its state adds (ResultPath).
Clients are created per call; boto3 finds the endpoint (AWS, moto or LocalStack) by itself.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import boto3
import pandas as pd

from contracts.names import (
    DATASETS_PREFIX,
    DEPLOYMENT_STATE_CHANGE,
    REFERENCE_DATASET_KEY,
    PackageMetadata,
    Zone,
    model_name,
)
from contracts.rollout import RolloutPolicy
from contracts.schema import FEATURE_NAMES, SCHEMA_VERSION
from contracts.settings import Settings
from pipeline import batches, datasets, lake, promotion, rollout, tracking
from pipeline import production as prod
from pipeline import report as run_report
from pipeline.drift import drift_report, summarize
from pipeline.evaluation import evaluate
from pipeline.intake import Clients, judge_against_production, take_in
from pipeline.state import (
    Dataset,
    Deployment,
    DriftCheck,
    Evaluation,
    Registration,
    RunInfo,
    Validation,
    error_cause,
)
from training import registry
from training.artifact_store import fetch_model

log = logging.getLogger("facet.pipeline")
log.setLevel(logging.INFO)
RECENT_INFERENCE_FILES = 200
MIN_STONES_FOR_DRIFT = 100


def _settings() -> Settings:
    return Settings()


def _run(event: dict[str, Any]) -> RunInfo:
    return RunInfo.model_validate(event.get("run") or {})


def validate_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Validate one raw batch, judge its labels against production, and record it."""
    clients = Clients(
        boto3.client("s3"),
        boto3.client("sagemaker"),
        boto3.client("cloudwatch"),
        boto3.client("ssm"),
    )
    validation = take_in(
        clients,
        _settings(),
        bucket=event["bucket"],
        key=event["key"],
        execution=_run(event).execution,
    )
    return validation.dump()


def _unseen_batches(
    s3: Any, settings: Settings, current: prod.Production
) -> list[tuple[str, pd.DataFrame]]:
    """The accepted batches production's training set did not include: (key, rows) each."""
    dataset_hash = current.record.metadata.get(PackageMetadata.DATASET_HASH, "")
    try:
        manifest = lake.read_json(
            s3, settings.data_bucket, f"{DATASETS_PREFIX}{dataset_hash}/manifest.json"
        )
        seen = {b["key"] for b in manifest.get("batches", [])}
    except lake.LakeError:
        seen = set()
    return [
        (record.key, prod.lake_frame(s3, settings.data_bucket, record.validated_key))
        for record in batches.load_all(s3, settings.data_bucket)
        if record.trainable and record.key not in seen and record.validated_key
    ]


def check_drift(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Scheduled check: input drift of recently priced stones (inference/), and the verdict on
    labelled batches production has not been trained on; retrain on either."""
    settings, s3 = _settings(), boto3.client("s3")
    force = bool(event.get("force"))
    reasons: list[str] = []
    retrain = force
    drifts_found: list[dict[str, Any]] = []
    keys = [
        k
        for k in lake.list_keys(s3, settings.data_bucket, Zone.INFERENCE.prefix())
        if k.endswith(".csv")
    ]
    frames = [
        lake.read_csv(s3, settings.data_bucket, key) for key in keys[-RECENT_INFERENCE_FILES:]
    ]
    current = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(current) < MIN_STONES_FOR_DRIFT:
        reasons.append(f"only {len(current)} stones priced recently (need {MIN_STONES_FOR_DRIFT})")
    else:
        reference = prod.lake_frame(s3, settings.data_bucket, REFERENCE_DATASET_KEY)
        features = current.loc[:, list(FEATURE_NAMES)]
        drifts = drift_report(reference.drop(columns=["price"]), features)
        drifts_found = [d.to_dict() for d in drifts]
        retrain |= any(d.level == "shifted" for d in drifts)
        reasons.append(f"{len(current)} stones priced recently: {summarize(drifts)}")
    verdict = None
    sagemaker = boto3.client("sagemaker")
    ssm = boto3.client("ssm")
    production_now = prod.production(sagemaker, s3, ssm, settings.production_model_param)
    if production_now is not None:
        clients = Clients(s3, sagemaker, boto3.client("cloudwatch"), ssm)
        # Each batch on its own: batches at different price levels together would look like
        # one batch of inconsistent labels.
        for key, rows in _unseen_batches(s3, settings, production_now):
            judged, _ = judge_against_production(clients, settings, rows)
            reasons.append(f"{key}, which production was not trained on: {judged.reason}")
            if verdict is None or judged.kind == "market_shift":
                verdict = judged
            retrain |= judged.kind == "market_shift"
    if force:
        reasons.append("retraining as asked")
    return DriftCheck(
        retrain=retrain, reason="; ".join(reasons), drift=drifts_found, verdict=verdict
    ).dump()


def _retrain_reason(event: dict[str, Any]) -> str:
    if event.get("validation"):
        validation = Validation.model_validate(event["validation"])
        parts = [f"new batch {validation.key} with {validation.accepted_rows} valid rows"]
        if validation.verdict is not None:
            parts.append(validation.verdict.reason)
        if validation.drift_summary:
            parts.append(f"drift: {validation.drift_summary}")
        return "; ".join(parts)
    drift_check = DriftCheck.model_validate(
        event.get("drift_check") or {"retrain": True, "reason": "forced"}
    )
    return f"scheduled drift check: {drift_check.reason}"


def build_dataset(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The reference data plus every accepted batch at today's price level, content-hashed."""
    settings = _settings()
    dataset = datasets.build(
        boto3.client("s3"),
        settings,
        execution=_run(event).execution,
        retrain_reason=_retrain_reason(event),
        model_version=registry.next_version(
            boto3.client("sagemaker"), settings.model_package_group
        ),
    )
    return dataset.dump()


def evaluate_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Score the candidate and production on the same rows; apply the gate."""
    settings, s3 = _settings(), boto3.client("s3")
    verdict = None
    if event.get("validation"):
        verdict = Validation.model_validate(event["validation"]).verdict
    elif event.get("drift_check"):
        verdict = DriftCheck.model_validate(event["drift_check"]).verdict
    evaluation, document = evaluate(
        s3,
        boto3.client("sagemaker"),
        boto3.client("ssm"),
        settings,
        dataset=Dataset.model_validate(event["dataset"]),
        verdict=verdict,
        batch_key=event.get("key", "labelled batches production was not trained on"),
    )
    metrics_key = f"{Zone.REPORTS.prefix()}{_run(event).execution}/candidate_metrics.json"
    lake.write_json(s3, settings.data_bucket, metrics_key, document)
    evaluation.metrics_s3_uri = f"s3://{settings.data_bucket}/{metrics_key}"
    return evaluation.dump()


def register_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Register every model: Rejected with the gate's reason, PendingManualApproval with the
    evidence when a person must decide, or pending for the deploy step to approve."""
    settings, sagemaker = _settings(), boto3.client("sagemaker")
    evaluation = Evaluation.model_validate(event["evaluation"])
    dataset = Dataset.model_validate(event["dataset"]) if event.get("dataset") else None
    candidate = evaluation.candidate
    metrics = candidate.metrics
    retrain_reason = dataset.retrain_reason if dataset else ""
    recent_mape = (
        f"{evaluation.recent.candidate['mape']:.6f}" if evaluation.recent is not None else ""
    )
    metadata = {
        PackageMetadata.ARTIFACT_SHA256: candidate.artifact_sha256,
        PackageMetadata.DATASET_HASH: candidate.dataset_hash,
        PackageMetadata.HOLDOUT_HASH: candidate.holdout_hash,
        PackageMetadata.HOLDOUT_VERSION: str(dataset.holdout_version if dataset else 1),
        PackageMetadata.CODE_VERSION: candidate.code_version,
        PackageMetadata.SCHEMA_VERSION: SCHEMA_VERSION,
        PackageMetadata.MODEL_FAMILY: candidate.family,
        PackageMetadata.HOLDOUT_MAPE: f"{metrics['mape']:.6f}",
        PackageMetadata.HOLDOUT_RMSE: f"{metrics['rmse']:.3f}",
        PackageMetadata.HOLDOUT_R2: f"{metrics['r2']:.6f}",
        PackageMetadata.RECENT_MAPE: recent_mape,
        PackageMetadata.GATE_HOLDOUT: evaluation.gate_holdout,
        PackageMetadata.MARKET_LEVEL: repr(candidate.market_level),
        PackageMetadata.DECISION: evaluation.decision,
        PackageMetadata.REASON: evaluation.reason[:256],
        PackageMetadata.RETRAIN_REASON: retrain_reason[:256],
        PackageMetadata.EXECUTION: _run(event).execution[:256],
        PackageMetadata.TRAINING_JOB: candidate.training_job,
        PackageMetadata.MODEL_NAME: candidate.model_name
        or model_name(candidate.family, dataset.model_version if dataset else 1),
        PackageMetadata.MLFLOW_RUN_ID: candidate.mlflow_run_id,
    }
    registry.ensure_group(sagemaker, settings.model_package_group)
    record = registry.register(
        sagemaker,
        settings.model_package_group,
        model_data_url=candidate.model_data_url,
        image=settings.serving_image,
        # SageMaker refuses empty values: an absent key reads as "" (no run, no recent data).
        metadata={str(k): v for k, v in metadata.items() if v},
        description=(
            f"{candidate.family} on dataset {candidate.dataset_hash[:12]}: {retrain_reason}"
        ),
        metrics_s3_uri=evaluation.metrics_s3_uri,
    )
    if evaluation.decision == "reject":
        record = registry.set_status(
            sagemaker, record, registry.ApprovalStatus.REJECTED, evaluation.reason
        )
    elif evaluation.decision == "pending":
        record = registry.set_status(
            sagemaker, record, registry.ApprovalStatus.PENDING, evaluation.reason
        )
    tracking.link_run(settings.mlflow_tracking_uri, candidate.mlflow_run_id, record)
    return Registration(arn=record.arn, version=record.version, status=record.status).dump()


def deploy_model(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Two callers, one rule (pipeline.promotion).

    The registry's state-change event (any approval or rejection, from anywhere): re-point
    production; this is the only writer of the production pointer. The pipeline's Deploy step:
    approve the candidate, unless production changed while it was being evaluated; the approval
    emits the event that moves the pointer.
    """
    settings, sagemaker, ssm = _settings(), boto3.client("sagemaker"), boto3.client("ssm")
    if settings.rollout_group and (
        event.get("detail-type") in (promotion.STATE_CHANGE, DEPLOYMENT_STATE_CHANGE)
        or event.get("rollout") == rollout.SHADOW_ENDED
    ):
        return _roll_out(event, context, settings)
    if event.get("detail-type") == promotion.STATE_CHANGE:
        pointer, outcome = promotion.on_state_change(
            event,
            sagemaker=sagemaker,
            ssm=ssm,
            cloudwatch=boto3.client("cloudwatch"),
            group=settings.model_package_group,
            parameter=settings.production_model_param,
            namespace=settings.names.metric_namespace,
        )
        log.info("production pointer: %s", outcome)
        return Deployment(
            deployed=pointer.arn is not None, version=pointer.version, reason=outcome
        ).dump()
    evaluation = Evaluation.model_validate(event["evaluation"])
    registration = Registration.model_validate(event["registration"])
    record = registry.describe(sagemaker, registration.arn)
    current = promotion.current(sagemaker, ssm, settings.production_model_param)
    evaluated_against = evaluation.production.arn if evaluation.production else None
    if current is not None and current.arn != evaluated_against:
        reason = (
            f"Production changed to v{current.version} during this run, after the candidate was "
            "compared with the previous one; run the pipeline again to compare it with "
            f"v{current.version} on the same data."
        )
        registry.set_status(sagemaker, record, registry.ApprovalStatus.REJECTED, reason)
        return Deployment(deployed=False, version=record.version, reason=reason).dump()
    if settings.approval == "manual":
        pending = registry.set_status(
            sagemaker,
            record,
            registry.ApprovalStatus.PENDING,
            f"Waiting for a person (stage {settings.stage} approves manually): {evaluation.reason}",
        )
        return Deployment(
            deployed=False,
            version=pending.version,
            reason=f"version {pending.version} passed the gate and waits for approval "
            f"(facet approve {pending.version}, or the registry console). {evaluation.reason}",
        ).dump()
    approved = registry.set_status(
        sagemaker, record, registry.ApprovalStatus.APPROVED, evaluation.reason
    )
    return Deployment(
        deployed=True,
        version=approved.version,
        reason=f"version {approved.version} is approved and becomes production. "
        f"{evaluation.reason}",
    ).dump()


def _roll_out(event: dict[str, Any], context: Any, settings: Settings) -> dict[str, Any]:
    """The deploy function with a rollout group: approvals start a shadow or canary, CodeDeploy's
    verdicts move production (pipeline.rollout); other state changes re-point as without one."""
    clients = rollout.Clients(
        sagemaker=boto3.client("sagemaker"),
        ssm=boto3.client("ssm"),
        lam=boto3.client("lambda"),
        codedeploy=boto3.client("codedeploy"),
        cloudwatch=boto3.client("cloudwatch"),
        scheduler=boto3.client("scheduler"),
        s3=boto3.client("s3"),
    )
    policy = settings.rollout
    if event.get("detail-type") == DEPLOYMENT_STATE_CHANGE:
        outcome = rollout.finish(
            event,
            settings=settings,
            policy=policy,
            clients=clients,
            deploy_function_arn=str(getattr(context, "invoked_function_arn", "")),
        )
    elif event.get("rollout") == rollout.SHADOW_ENDED:
        outcome = rollout.end_shadow(event, settings=settings, policy=policy, clients=clients)
    else:
        outcome = _on_registry_change(event, context, settings, policy, clients)
    log.info("rollout: %s", outcome.message)
    return Deployment(deployed=False, version=outcome.version, reason=outcome.message).dump()


def _on_registry_change(
    event: dict[str, Any],
    context: Any,
    settings: Settings,
    policy: RolloutPolicy,
    clients: rollout.Clients,
) -> rollout.Outcome:
    detail = event.get("detail") or {}
    changed = registry.describe(clients.sagemaker, str(detail.get("ModelPackageArn", "")))
    pointer = registry.read_pointer(clients.ssm, settings.production_model_param)
    if changed.status == registry.ApprovalStatus.APPROVED and not (
        pointer.arn == changed.arn and changed.approved_at
    ):
        return rollout.start(
            changed,
            settings=settings,
            policy=policy,
            clients=clients,
            deploy_function_arn=str(getattr(context, "invoked_function_arn", "")),
        )
    new, outcome = promotion.on_state_change(
        event,
        sagemaker=clients.sagemaker,
        ssm=clients.ssm,
        cloudwatch=clients.cloudwatch,
        group=settings.model_package_group,
        parameter=settings.production_model_param,
        namespace=settings.names.metric_namespace,
    )
    if new.arn != pointer.arn and new.arn is not None:
        # Production fell back (its package was rejected): serve the fallback at once.
        rollout.serve_now(clients.lam, settings.names.serving_function, new)
    return rollout.Outcome(new.version, outcome)


def write_report(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Markdown and plots for the run, to reports/<execution>/ in the lake."""
    settings, s3 = _settings(), boto3.client("s3")
    execution = event.get("run", {}).get("execution", "run")
    model = holdout = None
    evaluation = event.get("evaluation")
    if evaluation:
        model, _ = fetch_model(s3, evaluation["candidate"]["model_data_url"], prod.MODEL_CACHE)
        holdout, _ = prod.holdout(s3, settings.data_bucket)
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


def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Write the failure report, release the batch's ledger claim, leave production as it is."""
    settings, s3 = _settings(), boto3.client("s3")
    error = event.get("error") or {}
    cause = error_cause(error)
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
