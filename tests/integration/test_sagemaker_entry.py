"""The training entry point under the SageMaker container contract, run as its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from training.predict import load_model
from training.train import ClassicSplit

REPO = Path(__file__).resolve().parents[2]


def container_layout(
    root: Path, classic: ClassicSplit, hyperparameters: dict[str, str], train_rows: int = 4000
) -> dict[str, str]:
    """/opt/ml as SageMaker lays it out, under `root`, and the SM_* variables it sets."""
    train_dir = root / "input" / "data" / "train"
    holdout_dir = root / "input" / "data" / "holdout"
    config = root / "input" / "config"
    for directory in (train_dir, holdout_dir, config, root / "model", root / "output"):
        directory.mkdir(parents=True, exist_ok=True)
    classic.training.drop(columns=["row_hash"]).head(train_rows).to_csv(
        train_dir / "part-0.csv", index=False
    )
    classic.holdout.drop(columns=["row_hash"]).to_csv(holdout_dir / "holdout.csv", index=False)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(
        json.dumps({"train": {"ContentType": "text/csv"}, "holdout": {"ContentType": "text/csv"}})
    )
    return {
        **os.environ,
        "SM_MODEL_DIR": str(root / "model"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_CHANNEL_TRAIN": str(train_dir),
        "SM_CHANNEL_HOLDOUT": str(holdout_dir),
    }


def run_entry(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training.sagemaker_entry"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_entry_point_writes_artifact_and_metric_lines(
    tmp_path: Path, classic: ClassicSplit
) -> None:
    env = container_layout(
        tmp_path, classic, {"models": "linear,lightgbm", "lgb_max_rounds": "200"}
    )
    completed = run_entry(env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "facet-metric holdout_mape=" in completed.stdout
    assert "facet-metric validation_rmse=" in completed.stdout
    model = load_model(tmp_path / "model")
    assert model.metadata["training_rows"] == 4000
    assert model.metadata["dataset_sources"] == ["part-0.csv"]
    assert (tmp_path / "output" / "data" / "leaderboard.json").exists()
    assert not (tmp_path / "output" / "failure").exists()


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        ({"lgb_num_leaves": "many"}, "hyperparameter lgb_num_leaves='many' is not a valid int"),
        ({"learning_rate_typo": "0.1"}, "unknown hyperparameter 'learning_rate_typo'"),
        ({"models": "xgboost"}, "choose from linear, tree, lightgbm, mlp"),
    ],
)
def test_entry_point_bad_hyperparameter_writes_failure_file(
    tmp_path: Path, classic: ClassicSplit, hyperparameters: dict[str, str], reason: str
) -> None:
    completed = run_entry(container_layout(tmp_path, classic, hyperparameters, train_rows=200))
    assert completed.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert reason in failure
    assert len(failure) <= 1024


def test_entry_point_missing_channel_fails_clearly(tmp_path: Path, classic: ClassicSplit) -> None:
    env = container_layout(tmp_path, classic, {})
    env["SM_CHANNEL_TRAIN"] = str(tmp_path / "nowhere")
    completed = run_entry(env)
    assert completed.returncode == 1
    assert "channel 'train' not found" in (tmp_path / "output" / "failure").read_text()


def test_entry_point_reads_sm_hps_as_sagemaker_sets_it(
    tmp_path: Path, classic: ClassicSplit
) -> None:
    env = container_layout(tmp_path, classic, {"models": "tree"})
    env["SM_HPS"] = json.dumps({"models": "linear"})  # the toolkit's JSON of the same values
    completed = run_entry(env)
    assert completed.returncode == 0, completed.stderr
    assert load_model(tmp_path / "model").family == "linear"


def test_without_a_tracking_uri_the_job_tracks_nothing_and_says_so_once(
    tmp_path: Path, classic: ClassicSplit
) -> None:
    env = container_layout(tmp_path, classic, {"models": "linear"}, train_rows=500)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["FACET_MODEL_VERSION"] = "7"
    completed = run_entry(env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = completed.stdout + completed.stderr
    assert output.count("experiment tracking is off: MLFLOW_TRACKING_URI is not set") == 1
    metadata = load_model(tmp_path / "model").metadata
    assert metadata["model_name"] == "linear_diamonds_v7"
    assert "mlflow_run_id" not in metadata


def test_a_tracking_server_that_does_not_answer_costs_the_run_not_the_model(
    tmp_path: Path, classic: ClassicSplit
) -> None:
    env = container_layout(tmp_path, classic, {"models": "linear"}, train_rows=500)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env |= {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    env.pop("FACET_MODEL_VERSION", None)
    completed = run_entry(env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "experiment tracking stopped (start the run" in completed.stdout + completed.stderr
    metadata = load_model(tmp_path / "model").metadata
    assert metadata["model_name"] == "linear_diamonds_draft"
    assert "mlflow_run_id" not in metadata
    assert (tmp_path / "output" / "data" / "leaderboard.json").exists()


def test_a_missing_channel_with_tracking_on_fails_clearly_and_leaves_nothing_behind(
    tmp_path: Path, classic: ClassicSplit
) -> None:
    # GIVEN a job whose tracking writer starts before its channels are read, and no train channel
    env = container_layout(tmp_path / "ml", classic, {"models": "linear"}, train_rows=200)
    env["SM_CHANNEL_TRAIN"] = str(tmp_path / "nowhere")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        env |= {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{probe.getsockname()[1]}"}
    env |= {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "TMPDIR": str(scratch)}
    # WHEN it runs
    completed = run_entry(env)
    # THEN it fails with the channel's reason, and the writer's scratch space is gone with it
    assert completed.returncode == 1, completed.stdout + completed.stderr
    failure = (tmp_path / "ml" / "output" / "failure").read_text()
    assert "channel 'train' not found" in failure
    assert list(scratch.iterdir()) == []
