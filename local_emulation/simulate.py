"""The data-source simulator: fresh appraisals as deterministic dated batches.

Batches replay classic training rows the demo's archive does not hold (so every batch brings
stones the model has not seen), optionally drifted (prices up, larger stones) or corrupted
(prices shuffled between stones), and named `diamonds_raw_YYYYMMDDTHHMMSS.csv`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from contracts.names import RAW_BATCH_PATTERN
from contracts.schema import CARAT, FEATURE_NAMES, LABELLED_COLUMNS, X, Y, Z
from training.split import ROW_HASH_COLUMN, split_archive
from training.train import prepare_classic

FIRST_BATCH_TIME: Final = dt.datetime(2026, 1, 5, 9, 0, 0)
BATCH_INTERVAL: Final = dt.timedelta(days=7)


class Change(StrEnum):
    NONE = "none"
    PRICES = "prices"  # the market moved: every price +15 %, in this batch and every later one
    SIZES = "sizes"  # larger stones arrive: the batch is drawn from the heaviest stones
    SHUFFLE = "shuffle"  # corruption: prices shuffled between stones


@dataclass(frozen=True)
class Batch:
    name: str
    frame: pd.DataFrame
    change: Change

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.name
        self.frame.to_csv(path, index=False)
        return path


def batch_name(index: int) -> str:
    stamp = (FIRST_BATCH_TIME + index * BATCH_INTERVAL).strftime("%Y%m%dT%H%M%S")
    return RAW_BATCH_PATTERN.format(stamp=stamp)


def future_rows() -> pd.DataFrame:
    """The training rows outside the demo's archive, in a fixed order."""
    future = split_archive(prepare_classic().training)[1]
    return future.sort_values(ROW_HASH_COLUMN).reset_index(drop=True)


MARKET_MOVE: Final = 1.15


def make_batches(
    count: int,
    rows: int = 5000,
    changes: list[Change] | None = None,
    start: int = 0,
    price_level: float = 1.0,
) -> list[Batch]:
    """`count` batches of `rows` stones; `changes[i]` alters batch i (default: none).

    Prices are the classic data's times `price_level`; a PRICES change moves the market by
    +15 % from that batch on (a market does not move back by itself).
    """
    pool = future_rows()
    batches = []
    level = price_level
    for index in range(start, start + count):
        change = (
            (changes or [])[index - start]
            if changes and index - start < len(changes)
            else Change.NONE
        )
        rng = np.random.default_rng(1000 + index)
        if change is Change.SIZES:
            heavy = pool.loc[pool[CARAT.name] >= pool[CARAT.name].quantile(0.6)]
            frame = heavy.sample(min(rows, len(heavy)), random_state=index).copy()
        else:
            offset = (index * rows) % max(len(pool) - rows, 1)
            frame = pool.iloc[offset : offset + rows].copy()
        if change is Change.PRICES:
            level *= MARKET_MOVE
        if level != 1.0:
            frame["price"] = np.round(frame["price"] * level)
        if change is Change.SHUFFLE:
            frame["price"] = rng.permutation(frame["price"].to_numpy())
        frame = frame.loc[:, list(LABELLED_COLUMNS)]
        for dimension in (X, Y, Z):
            frame[dimension.name] = frame[dimension.name].round(2)
        batches.append(Batch(batch_name(index), frame.reset_index(drop=True), change))
    return batches


def catalogue_name(stones: int) -> str:
    return f"catalogue_{stones}.csv"


def make_catalogue(stones: int, seed: int = 0) -> pd.DataFrame:
    """`stones` unlabelled stones (a partner's catalogue, no price column) drawn with replacement
    from the classic data's valid rows: deterministic for a seed, any size."""
    if stones < 1:
        raise ValueError(f"a catalogue needs at least one stone, not {stones}")
    pool = prepare_classic().training.loc[:, list(FEATURE_NAMES)].reset_index(drop=True)
    picks = np.random.default_rng(seed).integers(0, len(pool), size=stones)
    frame = pool.iloc[picks].reset_index(drop=True)
    for dimension in (X, Y, Z):
        frame[dimension.name] = frame[dimension.name].round(2)
    return frame
