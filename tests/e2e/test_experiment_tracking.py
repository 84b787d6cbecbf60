"""Experiment tracking end to end: the pipeline's training job is an MLflow run on the tracking
server the emulator starts, its artifacts in the emulated S3, linked both ways to the registry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from contracts.names import MLFLOW_ARTIFACTS_PREFIX, PackageMetadata, StageNames, model_name
from local_emulation.cli import app
from local_emulation.provision import client
from local_emulation.session import Session, open_session
from local_emulation.simulate import make_batches
from pipeline.tracking import PACKAGE_ARN_TAG, PACKAGE_VERSION_TAG
from training import registry

pytestmark = pytest.mark.slow
CANDIDATES = ("linear", "tree", "lightgbm")
# A stage of its own: moto's backends are per process, and a pytest worker may already hold the
# session emulator's dev registry with other tests' packages in it.
STAGE = "mlflowtest"
NAMES = StageNames(STAGE)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Session, str]]:
    """One batch through the pipeline of a session with tracking on; the run's execution."""
    with open_session(fresh=True, tracking=True, provision_options={"stage": STAGE}) as session:
        batch = make_batches(1, rows=3000)[0]
        path = batch.write(tmp_path_factory.mktemp("batches"))
        (result,) = session.ingest(path, batch.name)
        assert result.status == "SUCCEEDED", result.cause
        assert session.embedded is not None
        session.embedded.settle()
        yield session, result.name


def _experiment_runs(session: Session) -> list[object]:
    assert session.tracking is not None
    tracker = MlflowClient(tracking_uri=session.tracking.url)
    experiment = tracker.get_experiment_by_name(NAMES.experiment)
    assert experiment is not None, "no experiment facet-dev on the tracking server"
    return list(tracker.search_runs([experiment.experiment_id]))


def test_the_training_job_is_a_run_with_a_nested_run_per_candidate(
    tracked_run: tuple[Session, str],
) -> None:
    session, _ = tracked_run
    runs = _experiment_runs(session)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]  # type: ignore[attr-defined]
    (parent,) = parents
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]  # type: ignore[attr-defined]
    # the parent: the job's hyperparameters, data and code, and the winner's holdout metrics
    assert parent.info.status == "FINISHED"
    assert parent.data.params["models"] == ",".join(CANDIDATES)
    assert parent.data.tags["facet.training_job"].startswith(NAMES.training_job_prefix)
    assert len(parent.data.tags["facet.dataset_hash"]) == 64
    assert parent.data.tags["facet.batches"].startswith("raw/diamonds_raw_")
    assert 0 < parent.data.metrics["holdout_mape"] < 0.2
    # one nested run per candidate, each with validation and holdout metrics, timings, a model
    assert sorted(c.data.params["family"] for c in children) == sorted(CANDIDATES)
    for child in children:
        metrics = child.data.metrics
        for name in ("validation_mape", "holdout_mape", "holdout_rmse", "holdout_r2"):
            assert 0 < metrics[name] < 10_000, (child.info.run_name, name, metrics)
        assert metrics["fit_seconds"] > 0 and 0 < metrics["explain_p99_ms"] < 1_000
    winner = parent.data.tags["facet.selected_family"]
    assert parent.data.tags["facet.model_name"] == model_name(winner, 1)


def test_the_model_and_figures_land_in_the_artifacts_bucket_under_their_names(
    tracked_run: tuple[Session, str],
) -> None:
    session, _ = tracked_run
    s3 = client("s3")
    bucket = session.deployment.artifacts_bucket
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=MLFLOW_ARTIFACTS_PREFIX
        )
        for item in page.get("Contents", [])
    ]
    assert session.tracking is not None
    tracker = MlflowClient(tracking_uri=session.tracking.url)
    experiment = tracker.get_experiment_by_name(NAMES.experiment)
    assert experiment is not None
    logged = tracker.search_logged_models([experiment.experiment_id])
    assert sorted(m.name for m in logged) == sorted(model_name(f, 1) for f in CANDIDATES)
    for model in logged:
        # the logged model's files are in the emulated S3, where its artifact location says
        location = model.artifact_location.removeprefix(f"s3://{bucket}/")
        assert f"{location}/metadata.json" in keys, (model.name, location)
        metadata = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{location}/metadata.json")["Body"].read()
        )
        assert metadata["model_family"] == model.params["family"]
    today = dt.date.today().isoformat()
    figures = [Path(k).name for k in keys if k.endswith(".png")]
    assert f"predicted-vs-actual-lightgbm_diamonds_{today}.png" in figures, figures
    assert any(Path(k).name == "leaderboard.json" for k in keys)


def test_the_training_jobs_log_has_no_warnings(tracked_run: tuple[Session, str]) -> None:
    # sagemaker-mlflow's header provider fails on a tracking URL (it expects an ARN) and MLflow
    # warned about it on every request: noise that would hide a real warning in the job's log.
    session, _ = tracked_run
    assert session.embedded is not None
    # this stage's job only: moto's backends are per process, shared with other files' stages
    (job,) = client("sagemaker").list_training_jobs(
        NameContains=NAMES.training_job_prefix, MaxResults=100
    )["TrainingJobSummaries"]
    log = (session.embedded.work_dir / f"{job['TrainingJobName']}.log").read_text()
    assert "tracking in experiment" in log  # the writer's own lines are there
    assert [line for line in log.splitlines() if "WARNING" in line] == []


def test_the_package_and_the_run_point_at_each_other(tracked_run: tuple[Session, str]) -> None:
    session, _ = tracked_run
    (package,) = registry.list_packages(client("sagemaker"), session.deployment.model_package_group)
    run_id = package.metadata[PackageMetadata.MLFLOW_RUN_ID]
    assert session.tracking is not None
    run = MlflowClient(tracking_uri=session.tracking.url).get_run(run_id)
    assert run.data.tags[PACKAGE_ARN_TAG] == package.arn
    assert run.data.tags[PACKAGE_VERSION_TAG] == str(package.version)
    assert package.metadata[PackageMetadata.MODEL_NAME] == run.data.tags["facet.model_name"]
    assert package.metadata[PackageMetadata.MODEL_NAME] == model_name(
        package.metadata[PackageMetadata.MODEL_FAMILY], package.version
    )


def test_the_run_report_names_its_figures_by_the_convention(
    tracked_run: tuple[Session, str], tmp_path: Path
) -> None:
    session, execution = tracked_run
    directory = session.download_report(execution, tmp_path)
    today = dt.date.today().isoformat()
    names = sorted(p.name for p in directory.glob("*.png"))
    assert f"predicted-vs-actual_diamonds_{today}.png" in names, names
    assert all(name.endswith(f"_diamonds_{today}.png") for name in names), names


def test_facet_experiments_lists_the_run_its_candidates_and_shows_tags_as_text(
    tracked_run: tuple[Session, str],
) -> None:
    session, _ = tracked_run
    assert session.tracking is not None
    tracker = MlflowClient(tracking_uri=session.tracking.url)
    (package,) = registry.list_packages(client("sagemaker"), session.deployment.model_package_group)
    run_id = package.metadata[PackageMetadata.MLFLOW_RUN_ID]
    # a tag anyone with access to the tracking server could have written
    tracker.set_tag(run_id, "facet.model_name", "\x1b[2J\x1b[31mlgbm_diamonds_v1")
    try:
        result = CliRunner().invoke(
            app,
            [
                "experiments",
                "--tracking-uri",
                session.tracking.url,
                "--stage",
                STAGE,
                "--limit",
                "5",
            ],
        )
    finally:
        tracker.set_tag(run_id, "facet.model_name", package.metadata[PackageMetadata.MODEL_NAME])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "\x1b" not in result.output
    assert any("[2J[31mlgbm_diamonds_v1" in line and "registry v1" in line for line in lines)
    assert any(line.strip().startswith(f"run {run_id}") for line in lines)
    candidates = [line for line in lines if "validation MAPE" in line]
    assert sorted(
        line.split()[1 if line.lstrip().startswith("*") else 0] for line in candidates
    ) == sorted(CANDIDATES)
    winner = package.metadata[PackageMetadata.MODEL_FAMILY]
    assert [line.split()[1] for line in candidates if line.lstrip().startswith("*")] == [winner]


def test_facet_experiments_without_a_tracking_server_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .facet/endpoint.json here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["experiments"])
    assert result.exit_code == 2
    assert "no MLflow tracking server" in result.output and "--tracking-uri" in result.output
