"""The scoring flow's pure parts: result names from untrusted keys, input parts per instance,
mini-batches as the service cuts them, and the join's line-count check."""

from __future__ import annotations

import pytest

from contracts.names import TRANSFORM_MAX_PAYLOAD_MB
from local_emulation.transform_runner import (
    TransformJobError,
    TransformSpec,
    assemble,
    mini_batches,
)
from pipeline.scoring import (
    PART_ROWS,
    CatalogueError,
    catalogue_name,
    check_rows,
    part_sizes,
    read_scored,
)


def test_catalogue_names_keep_only_safe_characters_and_the_landing_time() -> None:
    assert (
        catalogue_name("scoring/incoming/Partner A/Spring 2026.CSV", "2026-12-02T13:55:07Z")
        == "partner-a-spring-2026-20261202T135507"
    )
    assert catalogue_name("scoring/incoming/../<script>.csv", "2026-12-02T13:55:07Z") == (
        "script-20261202T135507"
    )
    assert catalogue_name("scoring/incoming/....csv", "not a time").startswith("catalogue-")


@pytest.mark.parametrize(
    ("rows", "instances", "expected"),
    [
        (0, 2, []),
        (1, 4, [1]),
        (10, 2, [5, 5]),
        (PART_ROWS * 2 + 1, 1, [166_667] * 3),
        (1_000_000, 4, [250_000] * 4),
    ],
)
def test_parts_are_a_multiple_of_the_instances_and_never_over_the_part_size(
    rows: int, instances: int, expected: list[int]
) -> None:
    sizes = part_sizes(rows, instances)
    assert sizes == expected
    assert sum(sizes) == rows and all(size <= PART_ROWS for size in sizes)


def _spec(**overrides: object) -> TransformSpec:
    values: dict[str, object] = {
        "name": "job",
        "image": "facet-serving:local",
        "model_data_url": "s3://b/model.tar.gz",
        "environment": {},
        "input_s3_uri": "s3://b/in/",
        "output_s3_uri": "s3://b/out/",
        "split_type": "Line",
        "assemble_with": "Line",
    }
    return TransformSpec(**(values | overrides))  # type: ignore[arg-type]


def test_mini_batches_are_whole_lines_up_to_the_payload_bound_in_order() -> None:
    line = b"0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6\n"
    body = line * 400_000  # ~15 MB: three requests at 6 MB
    batches = mini_batches(body, _spec())
    limit = TRANSFORM_MAX_PAYLOAD_MB * 1024 * 1024
    assert len(batches) == 3
    assert all(len(payload) <= limit and payload.endswith(b"\n") for _, payload in batches)
    assert b"".join(payload for _, payload in batches) == body
    assert [first for first, _ in batches] == [
        1,
        1 + limit // len(line),
        1 + 2 * (limit // len(line)),
    ]
    # SingleRecord: one line per request; a last line without a newline still counts
    single = mini_batches(b"a\nb\nc", _spec(batch_strategy="SingleRecord"))
    assert single == [(1, b"a\n"), (2, b"b\n"), (3, b"c\n")]


def test_a_line_over_the_payload_bound_fails_the_job_naming_the_line() -> None:
    with pytest.raises(TransformJobError, match="line 2 is"):
        mini_batches(b"a\n" + b"x" * (2 * 1024 * 1024) + b"\n", _spec(max_payload_mb=1))


def test_answers_are_assembled_line_by_line() -> None:
    assert assemble([b"1\n2", b"3\n"], "Line") == b"1\n2\n3\n"
    assert assemble([b"1", b"2"], "None") == b"12"


def test_the_join_refuses_an_output_that_does_not_match_its_input() -> None:
    body = b"100.0,80.0,120.0,\n200.0,160.0,240.0,\n"
    frame = read_scored(body, False, "s3://b/out/part-00000.csv.out", 2)
    assert frame["price_usd"].tolist() == [100.0, 200.0]
    with pytest.raises(CatalogueError, match="2 lines for 3 input lines"):
        read_scored(body, False, "s3://b/out/part-00000.csv.out", 3)
    with pytest.raises(CatalogueError, match="empty or non-numeric"):
        read_scored(b"100.0,,120.0,\n", False, "s3://b/out/part.out", 1)


def test_a_catalogue_over_the_row_bound_is_refused_before_it_is_parsed() -> None:
    header = b"carat,cut,color,clarity,depth,table,x,y,z\n"
    row = b"0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6\n"
    check_rows(header + row * 5, "s3://b/k.csv", limit=5)
    check_rows(header + row * 4 + row.rstrip(b"\n"), "s3://b/k.csv", limit=5)
    with pytest.raises(
        CatalogueError, match=r"s3://b/k\.csv has 6 rows; a catalogue may have at most 5"
    ):
        check_rows(header + row * 6, "s3://b/k.csv", limit=5)
