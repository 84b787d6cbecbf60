"""The frozen holdout and the validation split, both decided by each row's content hash.

A row's side depends only on its values and a documented salt, never on row order, file or run:
the same stone always lands on the same side, so exact duplicates cannot straddle the split, and a
fresh batch that repeats a holdout row can be recognised and kept out of training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import pandas as pd

from training.data import bucket_of, content_hash, row_hashes

# The yardstick for every model, forever: changing either value changes the holdout.
HOLDOUT_SALT: Final = "facet-holdout-v1"
HOLDOUT_PERCENT: Final = 20
# Model selection happens on this slice of the training rows, never on the holdout.
VALIDATION_SALT: Final = "facet-validation-v1"
VALIDATION_PERCENT: Final = 15
# Recorded when the holdout was frozen (classic data, 53,917 valid rows); a test recomputes both.
FROZEN_HOLDOUT_ROWS: Final = 10_724
FROZEN_HOLDOUT_HASH: Final = "702c047c2f951581fa843fde9b08b7fa9845f349783b130b1409be56defb797a"
ROW_HASH_COLUMN: Final = "row_hash"


class HoldoutLeakError(Exception):
    """Rows of the frozen holdout were about to be used for training."""


@dataclass(frozen=True)
class HoldoutManifest:
    """A frozen holdout: its rows' hashes, its version and the price level its labels are at
    (log factor against the classic data's; a refresh from recent data records the new one)."""

    salt: str
    percent: int
    rows: int
    holdout_hash: str
    row_hashes: frozenset[str]
    version: int = 1
    market_level: float = 0.0
    frozen_at: str = ""
    source: str = "the classic data"

    def to_json(self) -> str:
        return json.dumps(
            {
                "salt": self.salt,
                "percent": self.percent,
                "rows": self.rows,
                "holdout_hash": self.holdout_hash,
                "version": self.version,
                "market_level": self.market_level,
                "frozen_at": self.frozen_at,
                "source": self.source,
                "row_hashes": sorted(self.row_hashes),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> HoldoutManifest:
        data = json.loads(text)
        return cls(
            data["salt"],
            int(data["percent"]),
            int(data["rows"]),
            data["holdout_hash"],
            frozenset(data["row_hashes"]),
            int(data.get("version", 1)),
            float(data.get("market_level", 0.0)),
            str(data.get("frozen_at", "")),
            str(data.get("source", "the classic data")),
        )


def with_row_hashes(frame: pd.DataFrame) -> pd.DataFrame:
    if ROW_HASH_COLUMN in frame:
        return frame
    hashed = frame.copy()
    hashed[ROW_HASH_COLUMN] = row_hashes(frame).to_numpy()
    return hashed


def _in_slice(hashes: pd.Series, salt: str, percent: int) -> pd.Series:
    return pd.Series(bucket_of(hashes, salt) < percent * 100, index=hashes.index)


def split_holdout(
    valid_classic: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, HoldoutManifest]:
    """Training rows, holdout rows and the holdout's manifest, from the validated classic data."""
    hashed = with_row_hashes(valid_classic)
    in_holdout = _in_slice(hashed[ROW_HASH_COLUMN], HOLDOUT_SALT, HOLDOUT_PERCENT)
    holdout = hashed.loc[in_holdout].reset_index(drop=True)
    training = hashed.loc[~in_holdout].reset_index(drop=True)
    manifest = HoldoutManifest(
        HOLDOUT_SALT,
        HOLDOUT_PERCENT,
        len(holdout),
        content_hash(holdout[ROW_HASH_COLUMN]),
        frozenset(holdout[ROW_HASH_COLUMN]),
    )
    return training, holdout, manifest


def exclude_holdout(rows: pd.DataFrame, manifest: HoldoutManifest) -> tuple[pd.DataFrame, int]:
    """Rows minus any holdout row, and how many went (a fresh batch may repeat a stone)."""
    hashed = with_row_hashes(rows)
    leaking = hashed[ROW_HASH_COLUMN].isin(manifest.row_hashes)
    return hashed.loc[~leaking].reset_index(drop=True), int(leaking.sum())


def assert_disjoint(training: pd.DataFrame, manifest: HoldoutManifest) -> None:
    """The last check before fitting: no holdout row may reach training."""
    leaked = with_row_hashes(training)[ROW_HASH_COLUMN].isin(manifest.row_hashes)
    if leaked.any():
        raise HoldoutLeakError(f"{int(leaked.sum())} holdout rows are in the training data")


def split_validation(training: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit rows and validation rows carved from the training rows, for model selection."""
    hashed = with_row_hashes(training)
    in_validation = _in_slice(hashed[ROW_HASH_COLUMN], VALIDATION_SALT, VALIDATION_PERCENT)
    return (
        hashed.loc[~in_validation].reset_index(drop=True),
        hashed.loc[in_validation].reset_index(drop=True),
    )


# A slice of every accepted batch is held out as recent data: the yardstick when the market has
# moved since the frozen holdout was frozen. Decided by the row's hash, so it never changes and
# a recent-holdout row never reaches training.
RECENT_SALT: Final = "facet-recent-v1"
RECENT_PERCENT: Final = 20


def split_recent(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trainable, recent holdout) rows of a batch."""
    hashed = with_row_hashes(rows)
    in_recent = _in_slice(hashed[ROW_HASH_COLUMN], RECENT_SALT, RECENT_PERCENT)
    return (
        hashed.loc[~in_recent].reset_index(drop=True),
        hashed.loc[in_recent].reset_index(drop=True),
    )


# The local demo starts from an archive of past appraisals and replays the rest of the training
# rows as fresh batches, so each batch brings stones the model has not seen.
ARCHIVE_SALT: Final = "facet-archive-v1"
ARCHIVE_PERCENT: Final = 60


def split_archive(training: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(archive, future): the training rows the demo seeds the lake with, and those it replays."""
    hashed = with_row_hashes(training)
    in_archive = _in_slice(hashed[ROW_HASH_COLUMN], ARCHIVE_SALT, ARCHIVE_PERCENT)
    return (
        hashed.loc[in_archive].reset_index(drop=True),
        hashed.loc[~in_archive].reset_index(drop=True),
    )
