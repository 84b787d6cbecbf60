"""The classic diamonds table, row hashing and content-hashed dataset manifests."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from contracts.schema import LABEL_NAME, LABELLED_COLUMNS, NUMERIC_FEATURES, ORDINAL_FEATURES

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
CLASSIC_DATA_PATH: Final = REPO_ROOT / "data" / "diamonds.csv.gz"
# sha256 of the decompressed CSV exactly as plotnine 0.15.9 ships it (plotnine/data/diamonds.csv).
CLASSIC_DATA_SHA256: Final = "9574730b03aba241d899c4a97511c5061b19358fab89510774fb6c24168345c4"
CLASSIC_DATA_ROWS: Final = 53_940


class DataIntegrityError(Exception):
    """A shipped data file does not match its recorded checksum."""


def read_classic_bytes(path: Path = CLASSIC_DATA_PATH) -> bytes:
    """The classic CSV's bytes, after checking them against the recorded sha256."""
    raw = gzip.decompress(path.read_bytes())
    actual = hashlib.sha256(raw).hexdigest()
    if actual != CLASSIC_DATA_SHA256:
        raise DataIntegrityError(
            f"{path}: sha256 of the decompressed CSV is {actual}, expected {CLASSIC_DATA_SHA256}"
        )
    return raw


def load_classic(path: Path = CLASSIC_DATA_PATH) -> pd.DataFrame:
    """The classic table as typed columns, checksum verified. Nothing is dropped here."""
    return typed_frame(pd.read_csv(io.BytesIO(read_classic_bytes(path))))


def typed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order with numeric columns as float64 and ordinal columns as str."""
    columns = [column for column in LABELLED_COLUMNS if column in frame.columns]
    typed = frame.loc[:, columns].copy()
    for feature in NUMERIC_FEATURES:
        typed[feature.name] = typed[feature.name].astype("float64")
    if LABEL_NAME in typed:
        typed[LABEL_NAME] = typed[LABEL_NAME].astype("float64")
    for ordinal in ORDINAL_FEATURES:
        typed[ordinal.name] = typed[ordinal.name].astype(str)
    return typed.reset_index(drop=True)


def canonical_rows(frame: pd.DataFrame) -> list[str]:
    """One canonical text per row, identical for equal values however the source spelled them."""
    columns = [column for column in LABELLED_COLUMNS if column in frame.columns]
    parts: list[list[str]] = []
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            # repr of a float is the shortest text that round-trips, so "55" and "55.0" agree.
            # Over plain Python floats: half the time of Series.map(repr), a third of numpy's
            # astype(str) (the same texts).
            parts.append(list(map(repr, values.to_numpy(dtype="float64").tolist())))
        else:
            parts.append(values.astype(str).tolist())
    return ["|".join(row) for row in zip(*parts, strict=True)]


def row_hashes(frame: pd.DataFrame) -> pd.Series:
    """sha256 (hex) of each row's canonical text."""
    hashes = [hashlib.sha256(text.encode()).hexdigest() for text in canonical_rows(frame)]
    return pd.Series(hashes, index=frame.index, dtype=object)


def content_hash(hashes: pd.Series | list[str]) -> str:
    """Order-independent digest of a set of rows: the same rows give the same dataset version."""
    digest = hashlib.sha256()
    for value in sorted(hashes):
        digest.update(value.encode())
    return digest.hexdigest()


def bucket_of(hashes: pd.Series, salt: str, buckets: int = 10_000) -> np.ndarray:
    """A deterministic pseudo-random bucket per row, from its hash and a salt."""
    return np.fromiter(
        (
            int(hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:12], 16) % buckets
            for value in hashes
        ),
        dtype=np.int64,
        count=len(hashes),
    )
