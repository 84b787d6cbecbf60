"""Experiment tracking: every training job is an MLflow run, every candidate a run nested in it.

The tracking URI comes from the job's environment (MLFLOW_TRACKING_URI: a SageMaker MLflow
tracking server's ARN in AWS, read through the sagemaker-mlflow plugin; a URL locally). Without
one, nothing is tracked and the job says so once. Tracking never costs a model: if the server
fails mid-run, the job logs why, stops tracking and trains on (the package then has no run id).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import logging
import multiprocessing
import os
import queue
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from contracts.names import TrainingJobEnv, asset_name, figure_name, model_name
from contracts.version import code_version
from training.explain import one_price_latency_ms

if TYPE_CHECKING:
    from training.train import CandidateResult, TrainingOutcome

log = logging.getLogger("facet.training.tracking")
# SageMaker sets these in every training container.
TRAINING_JOB_NAME_ENV: Final = "TRAINING_JOB_NAME"
DEFAULT_EXPERIMENT: Final = "facet-dev"
UNVERSIONED: Final = "draft"
LOGGED_MODEL_TYPE: Final = "facet-price-model"
# MLflow caps a tag value at 8,000 characters; the full batch list is an artifact beside it.
TAG_LIMIT: Final = 5000
# Calls to time one price with its explanation per candidate: a p99 over 100 calls is the
# second-slowest call; benchmarks/bench_model_frontier.py measures the tail properly.
LATENCY_CALLS: Final = 100
# How long the job waits for the writer process (its run id; its last uploads at the end).
WRITER_DRAIN_SECONDS: Final = 120


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str | None
    experiment: str
    model_version: int | None
    training_job: str

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] = os.environ) -> TrackingConfig:
        version = environment.get(TrainingJobEnv.MODEL_VERSION.value, "").strip()
        return cls(
            tracking_uri=environment.get(TrainingJobEnv.TRACKING_URI.value, "").strip() or None,
            experiment=environment.get(TrainingJobEnv.EXPERIMENT.value, "").strip()
            or DEFAULT_EXPERIMENT,
            model_version=int(version) if version.isdigit() else None,
            training_job=environment.get(TRAINING_JOB_NAME_ENV, ""),
        )

    def model_name(self, family: str) -> str:
        """`<algorithm>_diamonds_v<version>`; a model trained outside the pipeline is a draft."""
        if self.model_version is None:
            return asset_name(family, UNVERSIONED)
        return model_name(family, self.model_version)


@dataclass
class DatasetInfo:
    """What the model was trained on: the dataset build's manifest when the channel has one."""

    rows: int
    sources: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_channel(cls, channel: Path, rows: int, sources: list[str]) -> DatasetInfo:
        path = channel / "manifest.json"
        manifest: dict[str, Any] = {}
        if path.is_file() and path.stat().st_size <= 5_000_000:
            try:
                manifest = json.loads(path.read_text())
            except ValueError:
                log.warning("%s is not JSON: the run records the CSV files only", path)
        return cls(rows, sources, manifest if isinstance(manifest, dict) else {})

    def batch_summary(self) -> str:
        """`key (verdict)` for every batch trained on, then every batch left out and why."""
        used = [
            f"{b.get('key')} ({b.get('verdict') or 'no verdict'})"
            for b in self.manifest.get("batches", [])
        ]
        left_out = [
            f"{b.get('key')} (left out: {b.get('why') or b.get('verdict')})"
            for b in self.manifest.get("excluded_batches", [])
        ]
        return "; ".join(used + left_out) or "reference data only"


class Tracking:
    """No tracking: the interface MlflowTracking fills in."""

    run_id: str | None = None

    def __init__(self, config: TrackingConfig) -> None:
        self.config = config

    def candidate(self, result: CandidateResult) -> None:
        """Called by train_and_evaluate after each candidate is fitted."""

    def finish(self, outcome: TrainingOutcome, report_dir: Path) -> None:
        """Called once the winner is saved."""

    def model_metadata(self, family: str) -> dict[str, str]:
        """What the artifact's metadata (and so the registry) records about the run."""
        metadata = {"model_name": self.config.model_name(family)}
        if self.run_id:
            metadata |= {"mlflow_run_id": self.run_id, "mlflow_experiment": self.config.experiment}
        return metadata

    @contextmanager
    def run(self, params: Mapping[str, str], dataset: DatasetInfo) -> Iterator[Tracking]:
        yield self

    def close(self) -> None:
        """For a job that fails before its run starts: whatever tracking started, stopped."""


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate as the writer process logs it: numbers, and files already on disk."""

    family: str
    name: str
    metrics: dict[str, float]
    holdout_mape: float
    model_dir: Path
    predictions: Path  # .npy: holdout prices, then the candidate's predictions


class MlflowTracking(Tracking):
    """The parent run for the job, a nested run and a logged model per candidate.

    MLflow is imported and talked to in a child process fed in order through a queue: its ~1.5 s
    import and each candidate's figure and uploads run on the second core while the job reads
    its channels and fits the next candidate, instead of adding to the job's time. What must
    not overlap is done here: a candidate's explanation latency is timed, its files are saved.

    The child is forked, at the start of the job: nothing has run in parallel yet (LightGBM's
    OpenMP threads start with the first fit), and it inherits the job's imports instead of
    paying for an interpreter of its own."""

    def __init__(self, config: TrackingConfig) -> None:
        super().__init__(config)
        context = multiprocessing.get_context("fork")
        self._tasks: Any = context.Queue()
        self._answers: Any = context.Queue()
        self._scratch = tempfile.TemporaryDirectory(prefix="facet-tracking-")
        self._writer = context.Process(
            target=_write_runs, args=(config, self._tasks, self._answers), daemon=True
        )
        self._writer.start()
        self._started = False

    @contextmanager
    def run(self, params: Mapping[str, str], dataset: DatasetInfo) -> Iterator[Tracking]:
        self._tasks.put(("start", dict(params), dataset))
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        finally:
            self._tasks.put(("end", status))
            self._tasks.put(None)
            self._writer.join(WRITER_DRAIN_SECONDS)
            if self._writer.is_alive():
                log.warning("experiment tracking did not finish in %d s", WRITER_DRAIN_SECONDS)
                self._writer.terminate()
            self._scratch.cleanup()

    def close(self) -> None:
        self._writer.terminate()
        self._writer.join(WRITER_DRAIN_SECONDS)
        self._scratch.cleanup()

    def model_metadata(self, family: str) -> dict[str, str]:
        if not self._started:
            self._started = True
            deadline = time.monotonic() + WRITER_DRAIN_SECONDS
            # The run id, once the server gave it; a writer that died gives none.
            while time.monotonic() < deadline:
                try:
                    self.run_id = self._answers.get(timeout=0.5)
                    break
                except queue.Empty:
                    if not self._writer.is_alive():
                        log.warning("experiment tracking stopped: its process exited")
                        break
            else:
                log.warning("experiment tracking gave no run id in %d s", WRITER_DRAIN_SECONDS)
        return super().model_metadata(family)

    def candidate(self, result: CandidateResult) -> None:
        entry = result.entry
        name = self.config.model_name(entry.family)
        p50, p99 = one_price_latency_ms(result.model, calls=LATENCY_CALLS)
        metrics = {f"validation_{k}": v for k, v in entry.validation.to_dict().items()}
        metrics |= {f"holdout_{k}": v for k, v in entry.holdout.to_dict().items()}
        metrics |= {"fit_seconds": entry.fit_seconds, "explain_p50_ms": p50, "explain_p99_ms": p99}
        directory = Path(self._scratch.name) / name
        result.model.save(directory / "model")
        predictions = directory / "holdout.npy"
        np.save(predictions, np.stack([result.holdout_prices, result.holdout_predictions]))
        record = CandidateRecord(
            entry.family,
            name,
            {k: float(v) for k, v in metrics.items()},
            entry.holdout.mape,
            directory / "model",
            predictions,
        )
        self._tasks.put(("candidate", record))

    def finish(self, outcome: TrainingOutcome, report_dir: Path) -> None:
        metrics = outcome.model.metadata["metrics"]
        winner = {
            f"{scope}_{k}": float(v)
            for scope in ("holdout", "validation")
            for k, v in metrics[scope].items()
            if k != "rows"
        }
        leaderboard = sorted(report_dir.glob("leaderboard.*"))
        self._tasks.put(("finish", winner, outcome.model.family, leaderboard))


class _RunWriter:
    """The child process's side: every call to the tracking server, in the order asked."""

    def __init__(self, config: TrackingConfig) -> None:
        import mlflow

        assert config.tracking_uri, "a writer is only started with a tracking URI"
        if not config.tracking_uri.startswith("arn:"):
            # sagemaker-mlflow's header provider (it signs requests to a SageMaker server's ARN)
            # fails on every request to a URL, and MLflow logs each failure as a warning; the
            # requests go on without its headers, as they should.
            logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
        self.config, self.mlflow = config, mlflow
        mlflow.set_tracking_uri(config.tracking_uri)
        self.client = mlflow.MlflowClient(tracking_uri=config.tracking_uri)
        self.day = dt.date.today().isoformat()
        self.run_id: str | None = None

    def start(self, params: dict[str, str], dataset: DatasetInfo) -> str:
        mlflow = self.mlflow
        mlflow.set_experiment(self.config.experiment)
        run = mlflow.start_run(run_name=self.config.training_job or None)
        self.run_id = run.info.run_id
        manifest = dataset.manifest
        tags = {
            "facet.training_job": self.config.training_job,
            "facet.model_version": str(self.config.model_version or ""),
            "facet.dataset_hash": str(manifest.get("dataset_hash", "")),
            "facet.retrain_reason": str(manifest.get("retrain_reason", ""))[:TAG_LIMIT],
            "facet.batches": dataset.batch_summary()[:TAG_LIMIT],
            "facet.code_version": code_version(),
        }
        self._log(self.run_id, {"training_rows": float(dataset.rows)}, params, tags)
        mlflow.log_dict({"sources": dataset.sources, "manifest": manifest}, "dataset/manifest.json")
        log.info(
            "tracking in experiment %s, run %s at %s",
            self.config.experiment,
            self.run_id,
            self.config.tracking_uri,
        )
        return self.run_id

    def _log(
        self,
        run_id: str,
        metrics: dict[str, float],
        params: dict[str, str],
        tags: dict[str, str],
    ) -> None:
        """One request for a run's metrics, parameters and tags."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v[:500]) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )

    def candidate(self, record: CandidateRecord) -> None:
        mlflow = self.mlflow
        with mlflow.start_run(run_name=record.name, nested=True) as nested:
            run_id = nested.info.run_id
            self._log(
                run_id, record.metrics, {"family": record.family}, {"facet.model_name": record.name}
            )
            prices, predicted = np.load(record.predictions)
            mlflow.log_figure(
                _predicted_vs_actual(prices, predicted, record.name, record.holdout_mape),
                figure_name(f"predicted_vs_actual_{record.family}", self.day),
            )
            self._log_model(run_id, record)

    def _log_model(self, run_id: str, record: CandidateRecord) -> None:
        from mlflow.entities import LoggedModelOutput

        logged = self.mlflow.initialize_logged_model(
            name=record.name,
            source_run_id=run_id,
            model_type=LOGGED_MODEL_TYPE,
            params={"family": record.family},
        )
        self.client.log_model_artifacts(logged.model_id, str(record.model_dir))
        self.mlflow.finalize_logged_model(logged.model_id, "READY")
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

    def finish(self, metrics: dict[str, float], family: str, leaderboard: list[Path]) -> None:
        assert self.run_id is not None
        tags = {"facet.selected_family": family, "facet.model_name": self.config.model_name(family)}
        self._log(self.run_id, metrics, {}, tags)
        for path in leaderboard:
            self.mlflow.log_artifact(str(path), "leaderboard")

    def end(self, status: str) -> None:
        self.mlflow.end_run(status=status)


def _write_runs(config: TrackingConfig, tasks: Any, answers: Any) -> None:
    """The writer process: any failure of the tracking server stops tracking, never the job."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    # Imported now, while the job reads its channels; a failed import is reported at the start.
    with contextlib.suppress(ImportError):
        import mlflow  # noqa: F401
    writer: _RunWriter | None = None
    failed = False
    while (task := tasks.get()) is not None:
        kind, *arguments = task
        if failed or (writer is None and kind != "start"):
            if kind == "start":
                answers.put(None)
            continue
        try:
            if kind == "start":
                writer = _RunWriter(config)
                answers.put(writer.start(*arguments))
            else:
                getattr(writer, kind)(*arguments)
        except Exception as error:
            failed = True
            what = {"start": "start the run"}.get(kind, kind)
            log.warning("experiment tracking stopped (%s: %s); training goes on", what, error)
            if kind == "start":
                answers.put(None)


def _predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str, mape: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # 2,000 stones draw the same picture as 10,000 at a fifth of the cost.
    shown = np.random.default_rng(0).permutation(len(actual))[:2000]
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(actual[shown], predicted[shown], s=3, alpha=0.4)
    top = float(max(actual.max(), predicted.max()))
    axes.plot([0, top], [0, top], color="black", linewidth=0.8)
    axes.set(
        xlabel="appraised price (USD)",
        ylabel="predicted price (USD)",
        title=f"{title}: holdout, MAPE {mape:.2%}",
    )
    plt.close(figure)
    return figure


def open_tracking(config: TrackingConfig) -> Tracking:
    if not config.tracking_uri:
        log.info("experiment tracking is off: %s is not set", TrainingJobEnv.TRACKING_URI.value)
        return Tracking(config)
    if importlib.util.find_spec("mlflow") is None:  # imported by the writer process, not here
        log.warning("experiment tracking is off: the MLflow client is not installed")
        return Tracking(config)
    return MlflowTracking(config)
