"""Inference rows reach the lake while the API runs, and a hard kill loses at most one window.

Before (issue: serving hardened): the Lambda handler ran with lifespan "off", so the logger's
thread never started and rows were written only at a clean shutdown; 80,881 priced requests made
0 objects in 23 minutes and a SIGKILL lost all of them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from contracts.names import Zone
from contracts.schema import example_diamond
from local_emulation.emulator import EmbeddedEmulator, aws_environment
from local_emulation.gateway import Gateway
from local_emulation.processes import free_port

pytestmark = pytest.mark.slow
FLUSH_ROWS = 50
FLUSH_SECONDS = 1.0


def logged_rows(bucket: str) -> int:
    s3 = boto3.client("s3")
    rows = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=Zone.INFERENCE.prefix()
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            rows += len(body.splitlines()) - 1  # minus the header
    return rows


def price_many(gateway: Gateway, count: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    body = json.dumps(example_diamond())
    for _ in range(count):
        connection.request("POST", "/prod/v1/prices", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    connection.close()


def lake_gateway(model_dir: Path, bucket: str) -> Gateway:
    return Gateway.for_local_model(
        model_dir,
        free_port(),
        workers=1,
        environment=aws_environment()
        | {
            "FACET_DATA_BUCKET": bucket,
            "FACET_INFERENCE_LOG_FLUSH_ROWS": str(FLUSH_ROWS),
            "FACET_INFERENCE_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS),
        },
    )


def wait_for_rows(bucket: str, expected: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    rows = logged_rows(bucket)
    while rows < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = logged_rows(bucket)
    return rows


def test_rows_reach_the_lake_during_traffic_not_at_shutdown(
    aws_emulator: EmbeddedEmulator, served_model_dir: Path
) -> None:
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    with lake_gateway(served_model_dir, bucket) as gateway:
        price_many(gateway, 7)  # fewer than FLUSH_ROWS: only the age bound can write them
        # WHILE the gateway keeps running, they are written within the age bound
        assert wait_for_rows(bucket, 7, timeout=FLUSH_SECONDS + 5) == 7


def test_a_hard_kill_loses_at_most_one_flush_window(
    aws_emulator: EmbeddedEmulator, served_model_dir: Path
) -> None:
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    gateway = lake_gateway(served_model_dir, bucket).start()
    try:
        # the first request loads the model; on a busy host that alone can outlast the loop below
        price_many(gateway, 1)
        sent = 1
        started = time.monotonic()
        while time.monotonic() - started < 3 * FLUSH_SECONDS:
            price_many(gateway, 25)
            sent += 25
        # WHEN every worker is killed without a chance to flush
        for process in gateway.processes:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    finally:
        gateway.processes = []
    # THEN what was lost is at most the rows of one window (by size or by age)
    written = logged_rows(bucket)
    rate = sent / (time.monotonic() - started)
    bound = max(FLUSH_ROWS, rate * FLUSH_SECONDS) + 25
    assert sent - written <= bound, f"sent {sent}, written {written}, bound {bound:.0f}"
    assert written > 0


def test_in_lambda_a_request_writes_the_rows_that_are_due(
    aws_emulator: EmbeddedEmulator, served_model_dir: Path
) -> None:
    """Lambda freezes threads between invocations: the handler (lifespan off) flushes itself."""
    from mangum import Mangum

    from contracts.settings import Settings
    from serving.app import create_app

    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    app = create_app(
        Settings(
            model_dir=served_model_dir,
            data_bucket=bucket,
            inference_log_flush_rows=FLUSH_ROWS,
            inference_log_flush_seconds=3600,
        )
    )
    handler = Mangum(app, lifespan="off")
    event: dict[str, Any] = json.loads(
        (Path(__file__).resolve().parents[1] / "events" / "price_one.json").read_text()
    )

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 29_000

    for _ in range(FLUSH_ROWS):
        assert handler(event, Context())["statusCode"] == 200
    assert logged_rows(bucket) == FLUSH_ROWS  # written by the request that made it due
