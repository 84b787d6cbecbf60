"""A pinned serving version serves its one package; a comparison prices twice and says so.

On the embedded emulator: packages in the registry and S3, inference rows in the lake, the
disagreement metric in CloudWatch, all read back through boto3.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from contracts.names import PackageMetadata, Zone
from contracts.pointer import ProductionPointer
from contracts.rollout import (
    PRICE_DISAGREEMENT_METRIC,
    ComparisonRole,
    ModelPin,
    comparison_dimensions,
)
from contracts.schema import example_diamond
from contracts.settings import Settings
from local_emulation.emulator import EmbeddedEmulator
from serving.app import create_app
from training import registry
from training.artifact_store import pack, sha256
from training.registry import pointer_to, write_pointer

GROUP = "comparison-test-group"
STAGE = "cmptest"


def publish(bucket: str, model_dir: Path, name: str) -> registry.PackageRecord:
    s3, sagemaker = boto3.client("s3"), boto3.client("sagemaker")
    tarball = pack(model_dir)
    s3.put_object(Bucket=bucket, Key=f"{name}/model.tar.gz", Body=tarball)
    registry.ensure_group(sagemaker, GROUP)
    record = registry.register(
        sagemaker,
        GROUP,
        model_data_url=f"s3://{bucket}/{name}/model.tar.gz",
        image="local",
        metadata={PackageMetadata.ARTIFACT_SHA256.value: sha256(tarball)},
        description=name,
    )
    return registry.set_status(sagemaker, record, registry.ApprovalStatus.APPROVED, "test")


def pin(record: registry.PackageRecord) -> str:
    return ModelPin.of(pointer_to(record)).to_env()


@pytest.fixture(scope="module")
def bucket(aws_emulator: EmbeddedEmulator) -> str:
    name = f"cmp-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def packages(
    bucket: str, served_model_dir: Path, mislabelled_model_dir: Path
) -> tuple[registry.PackageRecord, registry.PackageRecord]:
    return (
        publish(bucket, served_model_dir, "production"),
        publish(bucket, mislabelled_model_dir, "mislabelled"),
    )


def inference_rows(bucket: str) -> list[dict[str, str]]:
    s3 = boto3.client("s3")
    rows: list[dict[str, str]] = []
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=Zone.INFERENCE.prefix())
    for item in listed.get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
        rows += list(csv.DictReader(io.StringIO(body)))
    return rows


def stones(count: int) -> list[dict[str, object]]:
    colors, cuts = "DEFGHIJ", ("Fair", "Good", "Very Good", "Premium", "Ideal")
    return [
        {
            **example_diamond(),
            "color": colors[i % len(colors)],
            "cut": cuts[i % len(cuts)],
            "carat": 0.3 + 0.05 * (i % 20),
        }
        for i in range(count)
    ]


@pytest.fixture
def serving(
    bucket: str, packages: tuple[registry.PackageRecord, registry.PackageRecord]
) -> Iterator[tuple[str, Settings]]:
    """A fresh lake prefix per test: each test gets its own bucket for inference rows."""
    lake = f"cmp-lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=lake)
    yield (
        lake,
        Settings(
            stage=STAGE,
            data_bucket=lake,
            model_package_group=GROUP,
            production_model_param=f"/facet/{STAGE}/pointer-{uuid.uuid4().hex[:6]}",
        ),
    )


def test_a_pinned_version_serves_its_package_whatever_the_pointer_says(
    serving: tuple[str, Settings],
    packages: tuple[registry.PackageRecord, registry.PackageRecord],
) -> None:
    _, settings = serving
    production, candidate = packages
    # GIVEN the production pointer names one package and the version is pinned to another
    write_pointer(boto3.client("ssm"), settings.production_model_param, pointer_to(production))
    pinned = settings.model_copy(update={"model_pin": pin(candidate)})
    with TestClient(create_app(pinned)) as client:
        answer = client.post("/v1/prices", json=example_diamond())
        model = client.get("/v1/model").json()
    # THEN it prices with the pinned package, and says which one
    assert answer.status_code == 200
    assert answer.json()["model_version"] == candidate.version
    assert model["version"] == candidate.version
    assert model["artifact_sha256"] == candidate.artifact_sha256


def test_a_pin_whose_artifact_does_not_match_serves_nothing_rather_than_another_model(
    serving: tuple[str, Settings],
    packages: tuple[registry.PackageRecord, registry.PackageRecord],
) -> None:
    _, settings = serving
    production, _ = packages
    write_pointer(boto3.client("ssm"), settings.production_model_param, pointer_to(production))
    altered = ProductionPointer(**{**pointer_to(production).__dict__, "artifact_sha256": "0" * 64})
    pinned = settings.model_copy(update={"model_pin": ModelPin.of(altered).to_env()})
    with TestClient(create_app(pinned)) as client:
        answer = client.post("/v1/prices", json=example_diamond())
    assert answer.status_code == 503
    assert "does not match" in answer.json()["message"]


def test_a_canary_answers_with_the_candidate_and_logs_and_counts_production_beside_it(
    serving: tuple[str, Settings],
    packages: tuple[registry.PackageRecord, registry.PackageRecord],
) -> None:
    lake, settings = serving
    production, candidate = packages
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    canary = settings.model_copy(
        update={
            "model_pin": pin(candidate),
            "compare_pin": pin(production),
            "compare_role": ComparisonRole.CANARY,
            "compare_sample": 1.0,
        }
    )
    sent = stones(70)
    with TestClient(create_app(canary)) as client:
        one = client.post("/v1/prices", json=sent[0])
        many = client.post("/v1/prices/batch", json=sent[1:])
    assert one.status_code == many.status_code == 200
    answered = [one.json()["price_usd"]] + [q["price_usd"] for q in many.json()["quotes"]]
    rows = inference_rows(lake)
    # THEN every stone's row has the answered (candidate) price and production's beside it
    assert len(rows) == len(sent)
    assert {r["model_version"] for r in rows} == {str(candidate.version)}
    assert {r["compared_version"] for r in rows} == {str(production.version)}
    assert sorted(float(r["price"]) for r in rows) == sorted(answered)
    for row in rows:
        gap = float(row["price"]) / float(row["compared_price"]) - 1
        assert float(row["price_gap"]) == pytest.approx(gap, abs=1e-3)
        assert row["disagrees"] == str(int(abs(gap) > settings.disagreement))
    disagreeing = sum(int(r["disagrees"]) for r in rows)
    mislabelled = sum(1 for s in sent if s["color"] in "DEFG")
    assert disagreeing >= 0.8 * mislabelled, (disagreeing, mislabelled)
    # AND the share that disagrees is in CloudWatch, as the canary's model alarm reads it
    statistics = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=settings.names.metric_namespace,
        MetricName=PRICE_DISAGREEMENT_METRIC,
        Dimensions=[
            {"Name": n, "Value": v} for n, v in comparison_dimensions(ComparisonRole.CANARY)
        ],
        StartTime=started,
        EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
        Period=600,
        Statistics=["SampleCount", "Sum"],
    )["Datapoints"]
    assert sum(p["SampleCount"] for p in statistics) == len(sent)
    assert sum(p["Sum"] for p in statistics) == disagreeing


def test_a_shadow_answers_with_production_and_prices_only_the_sample_with_the_candidate(
    serving: tuple[str, Settings],
    packages: tuple[registry.PackageRecord, registry.PackageRecord],
) -> None:
    lake, settings = serving
    production, candidate = packages
    shadow = settings.model_copy(
        update={
            "model_pin": pin(production),
            "compare_pin": pin(candidate),
            "compare_role": ComparisonRole.SHADOW,
            "compare_sample": 0.3,
        }
    )
    with TestClient(create_app(shadow)) as client:
        answers = [client.post("/v1/prices", json=stone) for stone in stones(200)]
    assert all(a.status_code == 200 for a in answers)
    assert {a.json()["model_version"] for a in answers} == {production.version}
    rows = inference_rows(lake)
    compared = [r for r in rows if r["compared_role"] == ComparisonRole.SHADOW.value]
    assert len(rows) == 200
    # a 30 % sample of 200 requests: 60 expected, 99.9 % of samples fall in 38-84
    assert 38 <= len(compared) <= 84, len(compared)
    assert {r["compared_version"] for r in compared} == {str(candidate.version)}
    for row in compared:  # the gap is the candidate's price against production's (answered)
        gap = float(row["compared_price"]) / float(row["price"]) - 1
        assert float(row["price_gap"]) == pytest.approx(gap, abs=1e-3)
