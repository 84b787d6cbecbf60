"""The hosting container as a batch transform job calls it: text/csv mini-batches of whole lines,
answered with one text/csv line per input line, in order, for any chunk up to MaxPayloadInMB."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from contracts.names import TRANSFORM_MAX_PAYLOAD_MB
from contracts.schema import FEATURE_NAMES, scored_columns
from contracts.settings import Settings
from serving.app import create_hosting_app
from training.data import load_classic
from training.validate import validate_frame

CSV_ANSWER = {"content-type": "text/csv", "accept": "text/csv"}


def _hosting(model_dir: Path, *, explain: bool) -> TestClient:
    return TestClient(
        create_hosting_app(Settings(model_dir=model_dir, data_bucket="", explain=explain))
    )


@pytest.fixture(scope="module")
def stones() -> pd.DataFrame:
    return validate_frame(load_classic()).accepted.loc[:, list(FEATURE_NAMES)]


def _lines(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, header=False).encode()


def _answer(client: TestClient, body: bytes) -> list[list[str]]:
    response = client.post("/invocations", content=body, headers=CSV_ANSWER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def test_each_input_line_gets_one_output_line_in_order_matching_the_json_answer(
    served_model_dir: Path, stones: pd.DataFrame
) -> None:
    with _hosting(served_model_dir, explain=True) as client:
        chunk = stones.sample(300, random_state=1)
        rows = _answer(client, _lines(chunk))
        assert len(rows) == len(chunk)
        assert all(len(row) == len(scored_columns(True)) for row in rows)
        quotes = client.post("/invocations", json={"instances": chunk.to_dict("records")}).json()[
            "predictions"
        ]
    columns = scored_columns(True)
    for row, expected in zip(rows, quotes, strict=True):
        values = dict(zip(columns, row, strict=True))
        assert float(values["price_usd"]) == expected["price_usd"]
        assert float(values["low_usd"]) == expected["range_usd"]["low"]
        product = float(values["base_price_usd"]) * math.prod(
            float(values[c]) for c in columns if c.startswith("factor_")
        )
        assert abs(product - expected["price_usd"]) <= 0.005 + 1e-9


def test_a_chunk_at_max_payload_is_answered_whole(
    served_model_dir: Path, stones: pd.DataFrame
) -> None:
    # GIVEN a mini-batch as large as the transform job sends (MaxPayloadInMB of whole lines)
    limit = TRANSFORM_MAX_PAYLOAD_MB * 1024 * 1024
    repeated = pd.concat([stones] * 4, ignore_index=True)
    body = _lines(repeated)
    cut = body.rfind(b"\n", 0, limit) + 1
    chunk = body[:cut]
    lines = chunk.count(b"\n")
    assert limit - 100 < len(chunk) <= limit
    with _hosting(served_model_dir, explain=False) as client:
        rows = _answer(client, chunk)
    # THEN every line is priced, in order (the last line's price is the last stone's)
    assert len(rows) == lines > 100_000
    assert all(len(row) == len(scored_columns(False)) for row in rows)
    with _hosting(served_model_dir, explain=False) as client:
        last = _answer(client, _lines(repeated.iloc[[lines - 1]]))
    assert rows[-1] == last[0]


def test_a_bad_line_names_its_row_and_field(served_model_dir: Path, stones: pd.DataFrame) -> None:
    body = _lines(stones.head(3)).replace(b"Ideal", b"Idealish", 1)
    with _hosting(served_model_dir, explain=False) as client:
        response = client.post("/invocations", content=body, headers=CSV_ANSWER)
    assert response.status_code == 422
    assert "rows[" in response.text and "cut" in response.text


def test_the_container_tells_batch_transform_what_to_send(served_model_dir: Path) -> None:
    with _hosting(served_model_dir, explain=False) as client:
        parameters: dict[str, Any] = client.get("/execution-parameters").json()
    assert parameters == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": TRANSFORM_MAX_PAYLOAD_MB,
    }
