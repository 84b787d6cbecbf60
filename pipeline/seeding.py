"""A stage's lake starts with the reference (archive) training data and the frozen holdout, which
every pipeline run reads: written once, by the emulator's provisioning and by `make deploy`."""

from __future__ import annotations

import io
from typing import Any

from contracts.names import HOLDOUT_KEY, HOLDOUT_MANIFEST_KEY, REFERENCE_DATASET_KEY
from training.split import split_archive
from training.train import prepare_classic


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def seed_lake(s3: Any, bucket: str, *, archive_only: bool) -> dict[str, int]:
    """The reference data and the frozen holdout in curated/ (unless already there); the rows
    written. `archive_only` keeps back the part of the classic training rows that `facet
    simulate` draws fresh batches from, so a simulated batch is new to the stage."""
    if _object_exists(s3, bucket, REFERENCE_DATASET_KEY) and _object_exists(
        s3, bucket, HOLDOUT_MANIFEST_KEY
    ):
        return {}
    classic = prepare_classic()
    reference = split_archive(classic.training)[0] if archive_only else classic.training
    drop = ["row_hash"]
    buffer = io.BytesIO()
    reference.drop(columns=drop).to_csv(
        buffer, index=False, compression={"method": "gzip", "mtime": 0}
    )
    s3.put_object(Bucket=bucket, Key=REFERENCE_DATASET_KEY, Body=buffer.getvalue())
    s3.put_object(
        Bucket=bucket,
        Key=HOLDOUT_KEY,
        Body=classic.holdout.drop(columns=drop).to_csv(index=False).encode(),
    )
    s3.put_object(Bucket=bucket, Key=HOLDOUT_MANIFEST_KEY, Body=classic.manifest.to_json().encode())
    return {"reference_rows": len(reference), "holdout_rows": len(classic.holdout)}
