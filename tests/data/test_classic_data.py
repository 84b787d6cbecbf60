"""Expectations on the shipped classic data and the frozen holdout."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from training.data import (
    CLASSIC_DATA_PATH,
    CLASSIC_DATA_ROWS,
    DataIntegrityError,
    load_classic,
    read_classic_bytes,
)
from training.split import (
    FROZEN_HOLDOUT_HASH,
    FROZEN_HOLDOUT_ROWS,
    ROW_HASH_COLUMN,
    HoldoutLeakError,
    assert_disjoint,
    exclude_holdout,
    split_validation,
)
from training.train import ClassicSplit, prepare_classic


def test_classic_data_checksum_verified_on_load() -> None:
    assert len(load_classic()) == CLASSIC_DATA_ROWS


def test_classic_data_altered_file_refused(tmp_path: Path) -> None:
    altered = read_classic_bytes().replace(b"326", b"327", 1)
    path = tmp_path / "diamonds.csv.gz"
    path.write_bytes(gzip.compress(altered))
    with pytest.raises(DataIntegrityError, match="sha256"):
        read_classic_bytes(path)


def test_classic_data_quarantines_only_impossible_stones(classic: ClassicSplit) -> None:
    # 20 stones with a zero dimension and 3 with a y or z typo (58.9, 31.8, 31.8 mm).
    assert classic.report.quarantined_rows == 23
    assert classic.report.reasons == {"zero_dimension": 20, "out_of_range": 3}
    assert classic.report.accepted_rows + classic.report.quarantined_rows == CLASSIC_DATA_ROWS


def test_holdout_is_frozen(classic: ClassicSplit) -> None:
    assert classic.manifest.rows == FROZEN_HOLDOUT_ROWS
    assert classic.manifest.holdout_hash == FROZEN_HOLDOUT_HASH


def test_holdout_and_training_partition_the_valid_rows(classic: ClassicSplit) -> None:
    assert len(classic.training) + len(classic.holdout) == classic.report.accepted_rows
    overlap = set(classic.training[ROW_HASH_COLUMN]) & set(classic.holdout[ROW_HASH_COLUMN])
    assert overlap == set()


def test_holdout_row_never_reaches_training(classic: ClassicSplit) -> None:
    # GIVEN a fresh batch that repeats 50 holdout stones among new ones
    batch = pd.concat([classic.training.head(200), classic.holdout.head(50)], ignore_index=True)
    # WHEN holdout rows are excluded, THEN exactly those 50 go and the rest stay
    kept, removed = exclude_holdout(batch, classic.manifest)
    assert removed == 50
    assert len(kept) == 200
    assert_disjoint(kept, classic.manifest)
    # AND training on the unfiltered batch is refused
    with pytest.raises(HoldoutLeakError, match="50 holdout rows"):
        assert_disjoint(batch, classic.manifest)


def test_validation_split_is_carved_from_training_only(classic: ClassicSplit) -> None:
    fit, validation = split_validation(classic.training)
    assert len(fit) + len(validation) == len(classic.training)
    assert 0.12 < len(validation) / len(classic.training) < 0.18
    assert not set(validation[ROW_HASH_COLUMN]) & classic.manifest.row_hashes


def test_row_hash_ignores_number_spelling() -> None:
    from training.data import row_hashes

    a = pd.DataFrame({"carat": [0.5], "table": [55.0]})
    b = pd.DataFrame({"carat": [0.50], "table": [55]})
    assert row_hashes(a).iloc[0] == row_hashes(b).iloc[0]


def test_row_hashes_are_the_ones_the_lake_already_holds(classic: ClassicSplit) -> None:
    # A row's hash is its identity in manifests written by earlier releases (the frozen
    # holdout's, each dataset's): a faster implementation must give the same texts, bit for bit.
    from contracts.schema import example_diamond
    from training.data import row_hashes

    stone = pd.DataFrame([example_diamond() | {"price": 2757.0}])
    assert row_hashes(stone).iloc[0] == (
        "f39689a54b7eadb64c7fbafbbb2e3e83c35613696f293780a638c6eb364ab091"
    )
    assert classic.manifest.holdout_hash == (
        "702c047c2f951581fa843fde9b08b7fa9845f349783b130b1409be56defb797a"
    )


def test_shipped_file_is_where_the_docs_say() -> None:
    assert CLASSIC_DATA_PATH.name == "diamonds.csv.gz"
    assert (CLASSIC_DATA_PATH.parent / "README.md").exists()


def test_each_caller_gets_a_split_of_its_own() -> None:
    # GIVEN one caller that changes the split it was given (the demo's bad candidate does)
    changed = prepare_classic()
    changed.training["price"] = 0.0
    changed.holdout.loc[:, "carat"] = -1.0
    # THEN the next caller, in the same process, gets the split as validated
    fresh = prepare_classic()
    assert fresh.training["price"].min() > 0
    assert fresh.holdout["carat"].min() > 0
    assert len(fresh.holdout) == FROZEN_HOLDOUT_ROWS
