"""Validation on real dirty inputs: every row accepted or quarantined with a reason, counted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contracts.schema import LABELLED_COLUMNS
from training.validate import (
    REASON_CODES_COLUMN,
    REASONS_COLUMN,
    ROW_COLUMN,
    BatchRejectedError,
    Reason,
    Rejection,
    validate_batch,
    validate_frame,
    validate_to_files,
)

HEADER = ",".join(LABELLED_COLUMNS)
GOOD = "0.23,Ideal,E,SI2,61.5,55,3.95,3.98,2.43,326"


def csv_file(tmp_path: Path, *lines: str, name: str = "batch.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def quarantined_reason(path: Path, row: int) -> tuple[str, str]:
    result = validate_batch(path)
    match = result.quarantined.loc[result.quarantined[ROW_COLUMN] == row]
    assert len(match) == 1, result.quarantined
    return match[REASON_CODES_COLUMN].iloc[0], match[REASONS_COLUMN].iloc[0]


def test_validate_clean_rows_all_accepted_with_types(tmp_path: Path) -> None:
    result = validate_batch(csv_file(tmp_path, HEADER, GOOD, GOOD.replace("0.23", "1.5")))
    assert result.report.accepted_rows == 2
    assert result.report.quarantined_rows == 0
    assert result.accepted["carat"].tolist() == [0.23, 1.5]
    assert result.accepted["cut"].tolist() == ["Ideal", "Ideal"]


@pytest.mark.parametrize(
    ("bad_line", "code", "message_part"),
    [
        (
            "0.23,Ideal,E,SI2,61.5,55,3.95,3.98,2.43,-1",
            Reason.PRICE_NOT_POSITIVE,
            "price '-1' must be greater than 0",
        ),
        ("0.23,Ideal,E,SI2,61.5,55,0,3.98,2.43,326", Reason.ZERO_DIMENSION, "x is 0 mm"),
        (
            "0.23,Excellent,E,SI2,61.5,55,3.95,3.98,2.43,326",
            Reason.UNKNOWN_CATEGORY,
            "cut 'Excellent' is not one of Fair, Good, Very Good, Premium, Ideal",
        ),
        (
            "heavy,Ideal,E,SI2,61.5,55,3.95,3.98,2.43,326",
            Reason.NOT_A_NUMBER,
            "carat 'heavy' is not a number",
        ),
        ("0.23,Ideal,E,SI2,NaN,55,3.95,3.98,2.43,326", Reason.MISSING_VALUE, "depth is missing"),
        ("0.23,Ideal,E,SI2,61.5,,3.95,3.98,2.43,326", Reason.MISSING_VALUE, "table is missing"),
        (
            "0.23,Ideal,E,SI2,61.5,55,3.95,31.8,2.43,326",
            Reason.OUT_OF_RANGE,
            "y '31.8' is outside (0, 15] mm",
        ),
        ("0.23,Ideal,E,SI2,61.5,55,3.95,3.98,inf,326", Reason.OUT_OF_RANGE, "z 'inf' is outside"),
        (
            "0.23,Ideal,Z,SI2,61.5,55,3.95,3.98,2.43,326",
            Reason.UNKNOWN_CATEGORY,
            "color 'Z' is not one of J, I, H, G, F, E, D",
        ),
        (
            "0.23,Ideal,E,SI2,61.5,55,3.95,3.98,2.43",
            Reason.WRONG_FIELD_COUNT,
            "row has 9 fields, expected 10",
        ),
        (
            "0.23,Ideal,E,SI2,61.5,55,3.95,3.98,2.43,326,7",
            Reason.WRONG_FIELD_COUNT,
            "row has 11 fields",
        ),
    ],
)
def test_validate_dirty_row_quarantined_with_reason(
    tmp_path: Path, bad_line: str, code: Reason, message_part: str
) -> None:
    # GIVEN one bad row between two good ones
    path = csv_file(tmp_path, HEADER, GOOD, bad_line, GOOD)
    # WHEN validated
    result = validate_batch(path)
    # THEN exactly that row (data row 2) is quarantined, with the reason, and nothing is lost
    assert result.report.input_rows == 3
    assert result.report.accepted_rows == 2
    codes, message = quarantined_reason(path, 2)
    assert code.value in codes.split(";")
    assert message_part in message


def test_validate_row_with_several_problems_lists_each(tmp_path: Path) -> None:
    path = csv_file(tmp_path, HEADER, "0.23,Excellent,E,SI2,61.5,55,0,3.98,2.43,-1")
    codes, message = quarantined_reason(path, 1)
    assert set(codes.split(";")) == {"unknown_category", "zero_dimension", "price_not_positive"}
    assert "cut 'Excellent'" in message and "x is 0 mm" in message and "price '-1'" in message


def test_validate_quarantined_row_keeps_the_original_text(tmp_path: Path) -> None:
    result = validate_batch(
        csv_file(tmp_path, HEADER, "heavy,Ideal,E,SI2,61.5,55,3.95,3.98,2.43,326")
    )
    assert result.quarantined["carat"].iloc[0] == "heavy"


def test_validate_zero_byte_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(BatchRejectedError) as error:
        validate_batch(path)
    assert error.value.code is Rejection.EMPTY_FILE
    assert str(path) in str(error.value)


def test_validate_header_only_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(BatchRejectedError) as error:
        validate_batch(csv_file(tmp_path, HEADER))
    assert error.value.code is Rejection.NO_ROWS
    assert "no data rows" in error.value.message


def test_validate_missing_column_rejected_naming_it(tmp_path: Path) -> None:
    header = HEADER.replace(",table", "")
    with pytest.raises(BatchRejectedError) as error:
        validate_batch(csv_file(tmp_path, header, "0.23,Ideal,E,SI2,61.5,3.95,3.98,2.43,326"))
    assert error.value.code is Rejection.BAD_COLUMNS
    assert "missing columns: table" in error.value.message


def test_validate_extra_column_rejected_naming_it(tmp_path: Path) -> None:
    with pytest.raises(BatchRejectedError) as error:
        validate_batch(csv_file(tmp_path, HEADER + ",certificate", GOOD + ",GIA"))
    assert "unexpected column 'certificate'" in error.value.message


def test_validate_renamed_column_rejected_with_hint(tmp_path: Path) -> None:
    with pytest.raises(BatchRejectedError) as error:
        validate_batch(csv_file(tmp_path, HEADER.replace("price", "Price"), GOOD))
    assert "missing columns: price" in error.value.message
    assert "unexpected column 'Price' (renamed? expected 'price')" in error.value.message


def test_validate_undecodable_bytes_rejected_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        f"{HEADER}\n{GOOD}\n".encode()
        + "0.3,Idéal,E,SI2,61.5,55,3.95,3.98,2.43,326\n".encode("latin-1")
    )
    with pytest.raises(BatchRejectedError) as error:
        validate_batch(path)
    assert error.value.code is Rejection.NOT_UTF8
    assert "line 3 is not valid UTF-8" in error.value.message


def test_validate_utf8_bom_and_spaces_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(
        ("\ufeff" + HEADER.replace(",", ", ") + "\n" + GOOD.replace(",", " , ") + "\n").encode()
    )
    result = validate_batch(path)
    assert result.report.accepted_rows == 1


def test_validate_duplicates_reported_not_dropped(tmp_path: Path) -> None:
    result = validate_batch(csv_file(tmp_path, HEADER, GOOD, GOOD, GOOD))
    assert result.report.accepted_rows == 3
    assert result.report.duplicate_rows == 2
    assert result.report.duplicate_examples == [2, 3]


def test_validate_blank_lines_are_not_rows(tmp_path: Path) -> None:
    result = validate_batch(csv_file(tmp_path, HEADER, GOOD, "", GOOD))
    assert result.report.input_rows == 2


def test_validate_frame_with_nan_quarantines_by_position() -> None:
    frame = pd.DataFrame(
        [
            [0.23, "Ideal", "E", "SI2", 61.5, 55.0, 3.95, 3.98, 2.43, 326.0],
            [0.5, "Good", "E", "SI2", float("nan"), 55.0, 3.95, 3.98, 2.43, 326.0],
        ],
        columns=list(LABELLED_COLUMNS),
    )
    result = validate_frame(frame)
    assert result.report.accepted_rows == 1
    assert result.quarantined[ROW_COLUMN].tolist() == [2]
    assert result.quarantined[REASON_CODES_COLUMN].tolist() == ["missing_value"]


def test_validate_in_chunks_streams_and_balances(tmp_path: Path) -> None:
    # GIVEN 2,500 rows where every 100th has a negative price, validated 300 rows at a time
    lines = [HEADER] + [
        GOOD.replace("326", "-5")
        if i % 100 == 0
        else GOOD.replace("0.23", f"{0.2 + i / 10000:.4f}")
        for i in range(2500)
    ]
    source = csv_file(tmp_path, *lines)
    report = validate_to_files(
        source, tmp_path / "accepted.csv", tmp_path / "quarantine.csv", chunk_rows=300
    )
    # THEN counts balance, and the files hold exactly those rows
    assert (report.input_rows, report.accepted_rows, report.quarantined_rows) == (2500, 2475, 25)
    assert report.reasons == {"price_not_positive": 25}
    assert len(pd.read_csv(tmp_path / "accepted.csv")) == 2475
    quarantine = pd.read_csv(tmp_path / "quarantine.csv")
    assert quarantine[ROW_COLUMN].tolist() == list(range(1, 2501, 100))


def test_validate_unlabelled_batch_needs_no_price(tmp_path: Path) -> None:
    header = HEADER.replace(",price", "")
    result = validate_batch(csv_file(tmp_path, header, GOOD.rsplit(",", 1)[0]), labelled=False)
    assert result.report.accepted_rows == 1
    assert "price" not in result.accepted


def test_validate_bytes_name_their_source_in_errors() -> None:
    # The pipeline validates an S3 object's bytes: errors name the object, not "<bytes>"
    with pytest.raises(BatchRejectedError, match=r"^s3://lake/raw/x\.csv: the file is empty"):
        validate_batch(b"", name="s3://lake/raw/x.csv")
    with pytest.raises(BatchRejectedError, match=r"^s3://lake/raw/y\.csv: line 2 cannot be read"):
        validate_batch(
            (",".join(LABELLED_COLUMNS) + '\n"' + "x" * 140_000 + '"\n').encode(),
            name="s3://lake/raw/y.csv",
        )
