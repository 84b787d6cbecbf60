"""What the pipeline compares against: the production model, the frozen holdout, price levels.

A price level is a log factor against the classic data's prices (0.0). Each accepted batch is
recorded at the level it was judged to be at; a model is trained with every label brought to
the level of the newest accepted batch and records that level; the frozen holdout records the
level of its labels. Comparing production with data at another level re-levels the labels first,
so that a market move is never mistaken for a model error, nor the other way round.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.names import HOLDOUT_KEY, HOLDOUT_MANIFEST_KEY, PackageMetadata
from contracts.schema import LABEL_NAME
from pipeline import lake
from training import registry
from training.artifact_store import fetch_model
from training.predict import PriceModel
from training.split import ROW_HASH_COLUMN, HoldoutManifest
from training.validate import ROW_COLUMN

MODEL_CACHE = Path(tempfile.gettempdir()) / "facet-models"
# Levels closer than this (a ten-thousandth of a percent of price) are the same level.
LEVEL_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Production:
    record: registry.PackageRecord
    model: PriceModel

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def market_level(self) -> float:
        return level_of(self.record)


def level_of(record: registry.PackageRecord) -> float:
    value = record.metadata.get(PackageMetadata.MARKET_LEVEL, "")
    return float(value) if value not in ("", None) else 0.0


def holdout_version_of(record: registry.PackageRecord) -> int:
    value = record.metadata.get(PackageMetadata.HOLDOUT_VERSION, "")
    return int(value) if value not in ("", None) else 1


def production(sagemaker: Any, s3: Any, ssm: Any, parameter: str) -> Production | None:
    """The production model, as the production pointer names it (pipeline.promotion)."""
    pointer = registry.read_pointer(ssm, parameter)
    if not pointer.arn:
        return None
    record = registry.describe(sagemaker, pointer.arn)
    model, _ = fetch_model(s3, record.model_data_url, MODEL_CACHE, record.artifact_sha256)
    return Production(record, model)


def lake_frame(s3: Any, bucket: str, key: str) -> pd.DataFrame:
    frame = lake.read_csv(s3, bucket, key)
    return frame.drop(columns=[c for c in (ROW_COLUMN, ROW_HASH_COLUMN) if c in frame])


def holdout(s3: Any, bucket: str) -> tuple[pd.DataFrame, HoldoutManifest]:
    manifest = HoldoutManifest.from_json(lake.read_bytes(s3, bucket, HOLDOUT_MANIFEST_KEY).decode())
    return lake_frame(s3, bucket, HOLDOUT_KEY), manifest


def relevel(frame: pd.DataFrame, from_level: float, to_level: float) -> pd.DataFrame:
    """The same stones with their prices moved from one price level to another."""
    if math.isclose(from_level, to_level, abs_tol=LEVEL_TOLERANCE):
        return frame
    moved = frame.copy()
    moved[LABEL_NAME] = moved[LABEL_NAME].to_numpy(dtype=float) * math.exp(to_level - from_level)
    return moved


def residuals(model: PriceModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(log price - log predicted, predicted) of a model on labelled stones."""
    predicted = np.asarray(model.predict(frame), dtype=float)
    return np.log(frame[LABEL_NAME].to_numpy(dtype=float)) - np.log(predicted), predicted
