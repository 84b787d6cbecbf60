"""Serving follows the production pointer (on the emulator): new production without restart, bad
artifacts refused. The pointer is moved by the deploy function's own code (pipeline.promotion),
called here as the registry's state-change event would call it."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from contracts.names import PackageMetadata
from contracts.settings import Settings
from local_emulation.emulator import EmbeddedEmulator
from pipeline import promotion
from serving.errors import NoModelError
from serving.model_store import AwsClients, ModelStore
from training import registry
from training.artifact_store import pack, sha256

GROUP = "store-test-group"
BUCKET = "store-test-artifacts"
POINTER = "/facet-test/store-production"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def aws(aws_emulator: EmbeddedEmulator) -> AwsClients:
    clients = AwsClients(boto3.client("sagemaker"), boto3.client("s3"), boto3.client("ssm"))
    clients.s3.create_bucket(Bucket=BUCKET)
    registry.ensure_group(clients.sagemaker, GROUP)
    return clients


def repoint(aws: AwsClients, record: registry.PackageRecord) -> None:
    """What the deploy function does when the registry reports a state change."""
    promotion.on_state_change(
        promotion.state_change_event(record, GROUP),
        sagemaker=aws.sagemaker,
        ssm=aws.ssm,
        cloudwatch=boto3.client("cloudwatch"),
        group=GROUP,
        parameter=POINTER,
        namespace="Facet/store-test",
    )


def publish(
    aws: AwsClients,
    model_dir: Path,
    name: str,
    *,
    status: registry.ApprovalStatus,
    recorded_sha: str | None = None,
) -> registry.PackageRecord:
    sagemaker, s3 = aws.sagemaker, aws.s3
    tarball = pack(model_dir)
    s3.put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=tarball)
    record = registry.register(
        sagemaker,
        GROUP,
        model_data_url=f"s3://{BUCKET}/{name}/model.tar.gz",
        image="local",
        metadata={PackageMetadata.ARTIFACT_SHA256.value: recorded_sha or sha256(tarball)},
        description=name,
    )
    decided = registry.set_status(sagemaker, record, status, f"{status.value} for the test")
    repoint(aws, decided)
    return decided


@pytest.fixture
def store(aws: AwsClients, tmp_path: Path) -> tuple[ModelStore, Clock]:
    clock = Clock()
    settings = Settings(
        model_package_group=GROUP, production_model_param=POINTER, model_refresh_seconds=30
    )
    return ModelStore(settings, lambda: aws, clock=clock, cache_dir=tmp_path / "cache"), clock


def refreshed(models: ModelStore) -> Any:
    """What serves once the refresh a request starts has finished (it runs in the background)."""
    models.get()
    models.wait_for_refresh()
    return models.get()


def test_store_follows_production_and_keeps_serving_through_bad_artifacts(
    aws: AwsClients, store: tuple[ModelStore, Clock], served_model_dir: Path, tmp_path: Path
) -> None:
    models, clock = store
    # An empty registry is a valid start: a clear NoModelError (the API's 503).
    with pytest.raises(NoModelError, match="No model is approved yet"):
        models.get()
    publish(aws, served_model_dir, "rejected-one", status=registry.ApprovalStatus.REJECTED)
    clock.now += 31
    with pytest.raises(NoModelError):
        models.get()
    # v2 approved: served on the next refresh.
    v2 = publish(aws, served_model_dir, "v2", status=registry.ApprovalStatus.APPROVED)
    clock.now += 31
    assert refreshed(models).info.version == v2.version
    # A newer approval: within the TTL the old one keeps serving, after it the new one, no restart.
    v3 = publish(aws, served_model_dir, "v3", status=registry.ApprovalStatus.APPROVED)
    clock.now += 5
    assert models.get().info.version == v2.version
    clock.now += 30
    assert refreshed(models).info.version == v3.version
    # A production package whose artifact does not match its recorded sha256 is refused.
    publish(
        aws,
        served_model_dir,
        "tampered",
        status=registry.ApprovalStatus.APPROVED,
        recorded_sha="0" * 64,
    )
    clock.now += 31
    assert refreshed(models).info.version == v3.version
    assert models.last_error is not None and "does not match the registry's" in models.last_error
    # An artifact written for another schema version is refused too.
    other_schema = tmp_path / "other-schema"
    shutil.copytree(served_model_dir, other_schema)
    metadata = json.loads((other_schema / "metadata.json").read_text())
    metadata["schema_version"] = "0"
    (other_schema / "metadata.json").write_text(json.dumps(metadata))
    publish(aws, other_schema, "other-schema", status=registry.ApprovalStatus.APPROVED)
    clock.now += 31
    assert refreshed(models).info.version == v3.version
    assert models.last_error is not None and "schema version 0" in models.last_error
    # Rollback: approving v2 again makes it production; serving follows.
    rolled_back = registry.set_status(
        aws.sagemaker,
        registry.find_version(registry.list_packages(aws.sagemaker, GROUP), v2.version),
        registry.ApprovalStatus.APPROVED,
        "rollback",
    )
    repoint(aws, rolled_back)
    clock.now += 31
    assert refreshed(models).info.version == v2.version
    assert models.last_error is None


def test_store_keeps_the_model_when_the_registry_is_unreachable(
    store: tuple[ModelStore, Clock], served_model_dir: Path, aws: AwsClients
) -> None:
    models, clock = store
    publish(aws, served_model_dir, "reachable", status=registry.ApprovalStatus.APPROVED)
    loaded = models.get()

    def unreachable() -> AwsClients:
        raise ConnectionError("registry endpoint down")

    models.clients = unreachable
    clock.now += 31
    assert refreshed(models) is loaded
    assert "registry endpoint down" in (models.last_error or "")


def test_a_due_refresh_never_delays_a_request(
    aws: AwsClients, served_model_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a served model and a registry that takes 0.5 s to answer
    first = publish(aws, served_model_dir, "slow-v1", status=registry.ApprovalStatus.APPROVED)
    clock = Clock()
    settings = Settings(
        model_package_group=GROUP, production_model_param=POINTER, model_refresh_seconds=30
    )
    models = ModelStore(settings, lambda: aws, clock=clock, cache_dir=tmp_path / "cache")
    assert models.get().info.version == first.version  # the first load waits: nothing to serve
    answered = threading.Event()

    def slow_registry() -> AwsClients:
        time.sleep(0.5)
        answered.set()
        return aws

    models.clients = slow_registry
    second = publish(aws, served_model_dir, "slow-v2", status=registry.ApprovalStatus.APPROVED)
    clock.now += 31
    # WHEN requests arrive while the refresh is due
    started = time.perf_counter()
    served = [models.get().info.version for _ in range(50)]
    elapsed = time.perf_counter() - started
    # THEN they are answered at once by the current model, and the refresh lands afterwards
    assert elapsed < 0.1 and set(served) == {first.version} and not answered.is_set()
    models.wait_for_refresh()
    assert models.get().info.version == second.version
