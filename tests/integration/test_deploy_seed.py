"""`make deploy` seeds a stage's lake with what every pipeline run reads, once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from contracts.names import (
    HOLDOUT_KEY,
    HOLDOUT_MANIFEST_KEY,
    REFERENCE_DATASET_KEY,
    BucketRole,
    StageNames,
)

REPO = Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "eu-west-1"


def deploy_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("facet_deploy", REPO / "scripts" / "deploy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["facet_deploy"] = module
    spec.loader.exec_module(module)
    return module


@mock_aws
def test_a_deployed_stage_is_seeded_once_with_the_reference_data_and_frozen_holdout() -> None:
    # GIVEN a stage's empty, versioned lake, as the deploy leaves it
    deploy = deploy_script()
    bucket = StageNames("staging").bucket(BucketRole.DATA_LAKE, ACCOUNT, REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # WHEN the deploy script seeds it
    written = deploy.seed("staging", ACCOUNT, REGION)
    # THEN the reference data, the frozen holdout and its manifest are there, and readable
    assert written["reference_rows"] > 20_000 and written["holdout_rows"] > 10_000
    reference = pd.read_csv(
        s3.get_object(Bucket=bucket, Key=REFERENCE_DATASET_KEY)["Body"], compression="gzip"
    )
    holdout = pd.read_csv(s3.get_object(Bucket=bucket, Key=HOLDOUT_KEY)["Body"])
    assert (len(reference), len(holdout)) == (written["reference_rows"], written["holdout_rows"])
    manifest = s3.head_object(Bucket=bucket, Key=HOLDOUT_MANIFEST_KEY)
    # WHEN it runs again (every later deploy does)
    again = deploy.seed("staging", ACCOUNT, REGION)
    # THEN nothing is rewritten: the frozen holdout stays the one the registry's metrics used
    assert again == {}
    latest = s3.head_object(Bucket=bucket, Key=HOLDOUT_MANIFEST_KEY)
    assert latest["VersionId"] == manifest["VersionId"]
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == 3


@mock_aws
def test_a_dry_run_names_the_seeding_and_touches_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    deploy = deploy_script()
    bucket = StageNames("dev").bucket(BucketRole.DATA_LAKE, ACCOUNT, REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    assert deploy.seed("dev", ACCOUNT, REGION, dry_run=True) == {}
    assert f"seed s3://{bucket}/curated/" in capsys.readouterr().out
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
