"""The training set of a run: the reference data plus every accepted batch, at today's price level.

Batches come from the batch catalogue (pipeline.batches), never from a listing of validated/:
inconsistent and excluded batches are not in it. Every label is brought to the price level of
the newest accepted batch, so after a market shift the model learns today's prices from all the
stones it knows. Rows of any frozen holdout version and each batch's recent-holdout slice are
kept out. The manifest lists each batch with its verdict and level.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandas as pd

from contracts.names import (
    DATASETS_PREFIX,
    HOLDOUT_ARCHIVE_PREFIX,
    HOLDOUT_KEY,
    RECENT_HOLDOUTS_PREFIX,
    REFERENCE_DATASET_KEY,
    TRAINING_ENTRY_SCRIPT,
    TrainingJobEnv,
)
from contracts.schema import SCHEMA_VERSION
from contracts.settings import Settings
from pipeline import batches, lake
from pipeline import production as prod
from pipeline.state import BatchUse, Dataset
from training import registry
from training.data import content_hash
from training.split import ROW_HASH_COLUMN, HoldoutManifest, split_recent, with_row_hashes


def archived_holdouts(s3: Any, bucket: str) -> list[HoldoutManifest]:
    return [
        HoldoutManifest.from_json(lake.read_bytes(s3, bucket, key).decode())
        for key in lake.list_keys(s3, bucket, HOLDOUT_ARCHIVE_PREFIX)
        if key.endswith("manifest.json")
    ]


def recent_holdout(s3: Any, bucket: str, records: list[batches.BatchRecord]) -> pd.DataFrame:
    """The recent-holdout rows of the batches at today's price level (empty if none)."""
    frames = []
    for record in batches.recent(records):
        assert record.validated_key is not None
        frames.append(split_recent(prod.lake_frame(s3, bucket, record.validated_key))[1])
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).drop(columns=[ROW_HASH_COLUMN])


def job_name(prefix: str, execution: str, dataset_hash: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    suffix = hashlib.sha256(execution.encode()).hexdigest()[:6]
    return f"{prefix}-{stamp}-{dataset_hash[:8]}-{suffix}"


def training_environment(settings: Settings, model_version: int) -> dict[str, str]:
    """The training job's Environment: where to track the run, and the version it names."""
    environment = {TrainingJobEnv.MODEL_VERSION.value: str(model_version)}
    if settings.mlflow_tracking_uri:
        environment |= {
            TrainingJobEnv.TRACKING_URI.value: settings.mlflow_tracking_uri,
            TrainingJobEnv.EXPERIMENT.value: settings.names.experiment,
        }
    return environment


def build(
    s3: Any,
    settings: Settings,
    *,
    execution: str,
    retrain_reason: str,
    model_version: int = 1,
) -> Dataset:
    bucket = settings.data_bucket
    _, manifest = prod.holdout(s3, bucket)
    never_train = set(manifest.row_hashes)
    for archived in archived_holdouts(s3, bucket):
        never_train |= archived.row_hashes
    records = batches.load_all(s3, bucket)
    level = batches.current_level(records)
    frames = [
        with_row_hashes(
            prod.relevel(prod.lake_frame(s3, bucket, REFERENCE_DATASET_KEY), 0.0, level)
        )
    ]
    used: list[BatchUse] = []
    recent_removed = 0
    for record in (r for r in records if r.trainable):
        assert record.validated_key is not None
        trainable, held_out = split_recent(prod.lake_frame(s3, bucket, record.validated_key))
        recent_removed += len(held_out)
        frames.append(prod.relevel(trainable, record.market_level, level))
        used.append(
            BatchUse(
                key=record.key,
                validated_key=record.validated_key,
                verdict=record.verdict,
                market_level=record.market_level,
                rows=len(trainable),
            )
        )
    combined = pd.concat(frames, ignore_index=True)
    leaking = combined[ROW_HASH_COLUMN].isin(never_train)
    training = combined.loc[~leaking].reset_index(drop=True)
    dataset_hash = content_hash(
        training[ROW_HASH_COLUMN] + ":" + training["price"].round(2).astype(str)
    )
    prefix = f"{DATASETS_PREFIX}{dataset_hash}/"
    lake.write_csv(s3, bucket, f"{prefix}train.csv", training.drop(columns=[ROW_HASH_COLUMN]))
    recent = recent_holdout(s3, bucket, records)
    # Not under the dataset's prefix: the training job reads every CSV of its train channel.
    recent_key = (
        f"{RECENT_HOLDOUTS_PREFIX}{dataset_hash}/recent_holdout.csv" if len(recent) else None
    )
    if recent_key:
        lake.write_csv(s3, bucket, recent_key, recent)
    sources = [REFERENCE_DATASET_KEY, *(u.validated_key for u in used)]
    document = {
        "dataset_hash": dataset_hash,
        "rows": len(training),
        "sources": sources,
        "batches": [u.model_dump() for u in used],
        "excluded_batches": [
            {"key": r.key, "verdict": r.verdict, "excluded": r.excluded, "why": r.excluded_reason}
            for r in records
            if not r.trainable
        ],
        "market_level": level,
        "holdout_rows_removed": int(leaking.sum()),
        "recent_rows_removed": recent_removed,
        "holdout_hash": manifest.holdout_hash,
        "holdout_version": manifest.version,
        "recent_holdout_rows": len(recent),
        "schema_version": SCHEMA_VERSION,
        "created_at": registry.now_iso(),
        "retrain_reason": retrain_reason,
        "model_version": model_version,
    }
    lake.write_json(s3, bucket, f"{prefix}manifest.json", document)
    hyperparameters = {"models": settings.training_models}
    hyperparameters.update(
        {k: str(v) for k, v in json.loads(settings.training_hyperparameters).items()}
    )
    if settings.training_source_s3_uri:
        hyperparameters["sagemaker_program"] = TRAINING_ENTRY_SCRIPT
        hyperparameters["sagemaker_submit_directory"] = settings.training_source_s3_uri
    holdout_prefix = HOLDOUT_KEY.rsplit("/", 1)[0] + "/"
    return Dataset.model_validate(
        {
            **document,
            "recent_holdout_key": recent_key,
            "train_s3_uri": f"s3://{bucket}/{prefix}",
            "holdout_s3_uri": f"s3://{bucket}/{holdout_prefix}",
            "training_job_name": job_name(
                settings.names.training_job_prefix, execution, dataset_hash
            ),
            "hyperparameters": hyperparameters,
            "stopping_condition": {"MaxRuntimeInSeconds": settings.training_max_seconds},
            "poll_seconds": settings.training_poll_seconds,
            "training_environment": training_environment(settings, model_version),
        }
    )
