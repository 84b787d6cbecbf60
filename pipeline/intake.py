"""A raw batch's way in: validate its rows, judge its labels, record it in the batch catalogue.

Rows that break the schema go to quarantine/ one by one, with reasons. The accepted rows are then
judged as a whole against production (pipeline.verdict): a batch whose labels are inconsistent
goes to quarantine/ entirely, with the verdict as the reason, and is recorded as not trainable,
so the run stops before any training job starts. Every batch, whatever its verdict, is recorded
(pipeline.batches); that record, not a listing of validated/, decides what trains.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from contracts.names import (
    PRICE_SHIFT_METRIC,
    PRODUCTION_ERROR_ON_BATCH_METRIC,
    REFERENCE_DATASET_KEY,
    Zone,
)
from contracts.settings import Settings, VerdictPolicy
from pipeline import batches, lake
from pipeline import production as prod
from pipeline.drift import drift_report, summarize
from pipeline.state import BatchVerdict, Validation
from pipeline.verdict import VerdictKind, judge
from training import registry
from training import validate as batch_validation
from training.validate import REASON_CODES_COLUMN, REASONS_COLUMN, ROW_COLUMN

log = logging.getLogger("facet.pipeline.intake")
LABELS_REASON_CODE = "inconsistent_labels"


@dataclass(frozen=True)
class Clients:
    s3: Any
    sagemaker: Any
    cloudwatch: Any
    ssm: Any


def judge_against_production(
    clients: Clients, settings: Settings, rows: pd.DataFrame
) -> tuple[BatchVerdict, float]:
    """The verdict on labelled rows, and the price level they are at (an empty registry: 0.0)."""
    started = time.perf_counter()
    current = prod.production(
        clients.sagemaker, clients.s3, clients.ssm, settings.production_model_param
    )
    if current is None:
        verdict = BatchVerdict(
            kind=VerdictKind.UNJUDGED.value,
            reason="Not judged: no production model yet (an empty registry is a valid start).",
        )
        return verdict.model_copy(update={"seconds": time.perf_counter() - started}), 0.0
    holdout, manifest = prod.holdout(clients.s3, settings.data_bucket)
    # Production's own errors on its holdout, with the holdout's labels at production's level.
    at_level = prod.relevel(holdout, manifest.market_level, current.market_level)
    holdout_residuals, _ = prod.residuals(current.model, at_level)
    batch_residuals, predicted = prod.residuals(current.model, rows)
    result = judge(
        batch_residuals,
        holdout_residuals,
        VerdictPolicy(),
        batch_predicted=predicted,
        production_version=current.version,
    )
    level = current.market_level
    if result.kind is VerdictKind.MARKET_SHIFT:
        level += result.shift_log
    verdict = BatchVerdict.model_validate(
        {
            **result.to_dict(),
            "production_version": current.version,
            "seconds": time.perf_counter() - started,
        }
    )
    return verdict, level


def _publish(cloudwatch: Any, namespace: str, verdict: BatchVerdict) -> None:
    if verdict.batch is None:
        return
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": PRODUCTION_ERROR_ON_BATCH_METRIC,
                "Value": verdict.batch.mape * 100,
                "Unit": "Percent",
            },
            {"MetricName": PRICE_SHIFT_METRIC, "Value": verdict.shift * 100, "Unit": "Percent"},
        ],
    )


def take_in(
    clients: Clients, settings: Settings, *, bucket: str, key: str, execution: str
) -> Validation:
    """Validate, judge and record one raw batch (idempotent through the ledger)."""
    s3 = clients.s3
    body = lake.read_bytes(s3, bucket, key)
    digest = hashlib.sha256(body).hexdigest()
    ledger_key = lake.ledger_key(digest)
    claimed = lake.claim(
        s3,
        settings.data_bucket,
        ledger_key,
        {"key": key, "execution": execution, "claimed_at": registry.now_iso()},
    )
    if not claimed:
        first = lake.read_json(s3, settings.data_bucket, ledger_key)
        log.info("batch %s already processed as %s", key, first)
        return Validation(already_processed=True, key=key, processed_as=first)
    result = batch_validation.validate_batch(body, name=f"s3://{bucket}/{key}")
    report = result.report
    stamp = lake.batch_stamp(key)
    accepted = result.accepted.drop(columns=[ROW_COLUMN])
    quarantined = result.quarantined
    validation = Validation(
        already_processed=False,
        key=key,
        content_sha256=digest,
        ledger_key=ledger_key,
        input_rows=report.input_rows,
        accepted_rows=report.accepted_rows,
        quarantined_rows=report.quarantined_rows,
        reasons=dict(report.reasons),
        duplicate_rows=report.duplicate_rows,
    )
    level = 0.0
    if report.accepted_rows:
        reference = prod.lake_frame(s3, settings.data_bucket, REFERENCE_DATASET_KEY)
        drifts = drift_report(reference, accepted)
        validation.drift = [d.to_dict() for d in drifts]
        validation.drift_summary = summarize(drifts)
        validation.verdict, level = judge_against_production(clients, settings, accepted)
        _publish(clients.cloudwatch, settings.names.metric_namespace, validation.verdict)
        if not validation.verdict.trainable:
            # The whole batch goes to quarantine with the verdict as every row's reason.
            rejected = result.accepted.copy()
            rejected[REASON_CODES_COLUMN] = LABELS_REASON_CODE
            rejected[REASONS_COLUMN] = validation.verdict.reason
            quarantined = pd.concat([quarantined, rejected.astype(str)], ignore_index=True)
        else:
            validation.validated_key = lake.phase_key(Zone.VALIDATED, stamp)
            lake.write_csv(s3, settings.data_bucket, validation.validated_key, accepted)
    if len(quarantined):
        validation.quarantine_key = lake.phase_key(Zone.QUARANTINE, stamp)
        lake.write_csv(s3, settings.data_bucket, validation.quarantine_key, quarantined)
    validation.market_level = level
    verdict = validation.verdict
    record = batches.BatchRecord(
        key=key,
        stamp=stamp,
        content_sha256=digest,
        recorded_at=batches.now(),
        accepted_rows=report.accepted_rows,
        validated_key=validation.validated_key,
        verdict=verdict.kind if verdict else "no rows",
        verdict_reason=verdict.reason if verdict else "every row was quarantined",
        market_level=level,
        production_version=verdict.production_version if verdict else None,
        execution=execution,
        events=[
            batches.BatchEvent(
                at=batches.now(),
                action="verdict",
                detail=verdict.reason if verdict else "every row was quarantined",
            )
        ],
    )
    validation.batch_record_key = batches.save(s3, settings.data_bucket, record)
    return validation
