"""Freezing a new frozen holdout, deliberately, from recent data.

The frozen holdout is every model's yardstick; after the market moved it holds yesterday's
prices. `refresh` archives the current version under curated/holdouts/v<N>/ and freezes the
recent-holdout rows of the batches at today's price level as version N+1, recording its price
level and the batches it came from in its manifest and in the lineage log. Rows of every version
stay out of training for good.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from contracts.names import (
    HOLDOUT_ARCHIVE_PREFIX,
    HOLDOUT_KEY,
    HOLDOUT_MANIFEST_KEY,
    LINEAGE_PREFIX,
)
from pipeline import batches, lake
from pipeline import production as prod
from pipeline.datasets import recent_holdout
from training.data import content_hash
from training.split import (
    RECENT_PERCENT,
    RECENT_SALT,
    ROW_HASH_COLUMN,
    HoldoutManifest,
    with_row_hashes,
)

MIN_ROWS = 1_000


class HoldoutRefreshError(Exception):
    """There is not enough recent data to freeze a holdout from."""


def refresh(
    s3: Any, bucket: str, *, min_rows: int = MIN_ROWS, who: str = "operator"
) -> HoldoutManifest:
    current_rows, current = prod.holdout(s3, bucket)
    records = batches.load_all(s3, bucket)
    rows = recent_holdout(s3, bucket, records)
    if len(rows) < min_rows:
        raise HoldoutRefreshError(
            f"only {len(rows)} recent-holdout rows at today's price level (need {min_rows}); "
            "land more batches first"
        )
    archive = f"{HOLDOUT_ARCHIVE_PREFIX}v{current.version}/"
    lake.write_csv(s3, bucket, f"{archive}holdout.csv", current_rows)
    s3.put_object(Bucket=bucket, Key=f"{archive}manifest.json", Body=current.to_json().encode())
    hashed = with_row_hashes(rows)
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    sources = [r.key for r in batches.recent(records)]
    manifest = HoldoutManifest(
        RECENT_SALT,
        RECENT_PERCENT,
        len(hashed),
        content_hash(hashed[ROW_HASH_COLUMN]),
        frozenset(hashed[ROW_HASH_COLUMN]),
        version=current.version + 1,
        market_level=batches.current_level(records),
        frozen_at=at,
        source="recent holdout of " + ", ".join(sources),
    )
    lake.write_csv(s3, bucket, HOLDOUT_KEY, pd.DataFrame(hashed.drop(columns=[ROW_HASH_COLUMN])))
    s3.put_object(Bucket=bucket, Key=HOLDOUT_MANIFEST_KEY, Body=manifest.to_json().encode())
    lake.write_json(
        s3,
        bucket,
        f"{LINEAGE_PREFIX}{at.replace(':', '')}-holdout-v{manifest.version}.json",
        {
            "action": "freeze holdout",
            "version": manifest.version,
            "previous_version": current.version,
            "previous_archived_at": archive,
            "rows": manifest.rows,
            "holdout_hash": manifest.holdout_hash,
            "market_level": manifest.market_level,
            "batches": sources,
            "by": who,
            "at": at,
        },
    )
    return manifest
