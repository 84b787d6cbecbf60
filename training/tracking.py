"""Experiment tracking: every training job is an MLflow run, every candidate a run nested in it.

The tracking URI comes from the job's environment (MLFLOW_TRACKING_URI: a SageMaker MLflow
tracking server's ARN in AWS, read through the sagemaker-mlflow plugin; a URL locally). Without
one, nothing is tracked and the job says so once. Tracking never costs a model: if the server
fails mid-run, the job logs why, stops tracking and trains on (the package then has no run id).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from contracts.names import TrainingJobEnv, asset_name, figure_name, model_name
from training.explain import one_price_latency_ms

if TYPE_CHECKING:
    from training.predict import PriceModel
    from training.train import CandidateResult, TrainingOutcome

log = logging.getLogger("facet.training.tracking")
# SageMaker sets these in every training container.
TRAINING_JOB_NAME_ENV: Final = "TRAINING_JOB_NAME"
DEFAULT_EXPERIMENT: Final = "facet-dev"
UNVERSIONED: Final = "draft"
LOGGED_MODEL_TYPE: Final = "facet-price-model"
# MLflow caps a tag value at 8,000 characters; the full batch list is an artifact beside it.
TAG_LIMIT: Final = 5000
# Calls to time one price with its explanation per candidate: enough for a p99 of the tail.
LATENCY_CALLS: Final = 100


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
    experiment_id: str | None = None

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


class MlflowTracking(Tracking):
    """The parent run for the job, a nested run and a logged model per candidate."""

    def __init__(self, config: TrackingConfig) -> None:
        super().__init__(config)
        import mlflow  # only when tracking: the import costs ~2 s

        self.mlflow = mlflow
        self.client = mlflow.MlflowClient()
        self.failed = False
        self.day = dt.date.today().isoformat()

    def _guard(self, what: str, action: Any) -> Any:
        if self.failed:
            return None
        try:
            return action()
        except Exception as error:  # any failure of the tracking server stops tracking only
            self.failed = True
            log.warning("experiment tracking stopped (%s: %s); training goes on", what, error)
            return None

    @contextmanager
    def run(self, params: Mapping[str, str], dataset: DatasetInfo) -> Iterator[Tracking]:
        started = self._guard("start the run", lambda: self._start(params, dataset))
        if started is None:
            yield self
            return
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        finally:
            self._guard("end the run", lambda: self.mlflow.end_run(status=status))

    def _start(self, params: Mapping[str, str], dataset: DatasetInfo) -> bool:
        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.config.tracking_uri)
        experiment = mlflow.set_experiment(self.config.experiment)
        run = mlflow.start_run(run_name=self.config.training_job or None)
        self.run_id, self.experiment_id = run.info.run_id, experiment.experiment_id
        mlflow.log_params({k: v[:500] for k, v in params.items()})
        manifest = dataset.manifest
        mlflow.set_tags(
            {
                "facet.training_job": self.config.training_job,
                "facet.model_version": str(self.config.model_version or ""),
                "facet.dataset_hash": str(manifest.get("dataset_hash", "")),
                "facet.retrain_reason": str(manifest.get("retrain_reason", ""))[:TAG_LIMIT],
                "facet.batches": dataset.batch_summary()[:TAG_LIMIT],
                "facet.code_version": _code_version(),
            }
        )
        mlflow.log_metric("training_rows", dataset.rows)
        mlflow.log_dict({"sources": dataset.sources, "manifest": manifest}, "dataset/manifest.json")
        log.info(
            "tracking in experiment %s, run %s at %s",
            self.config.experiment,
            self.run_id,
            self.config.tracking_uri,
        )
        return True

    def candidate(self, result: CandidateResult) -> None:
        self._guard(f"candidate {result.entry.family}", lambda: self._candidate(result))

    def _candidate(self, result: CandidateResult) -> None:
        mlflow, entry = self.mlflow, result.entry
        name = self.config.model_name(entry.family)
        p50, p99 = one_price_latency_ms(result.model, calls=LATENCY_CALLS)
        with mlflow.start_run(run_name=name, nested=True) as nested:
            mlflow.log_param("family", entry.family)
            mlflow.set_tag("facet.model_name", name)
            metrics = {f"validation_{k}": v for k, v in entry.validation.to_dict().items()}
            metrics |= {f"holdout_{k}": v for k, v in entry.holdout.to_dict().items()}
            metrics |= {
                "fit_seconds": entry.fit_seconds,
                "explain_p50_ms": p50,
                "explain_p99_ms": p99,
            }
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            mlflow.log_figure(
                _predicted_vs_actual(result, name),
                figure_name(f"predicted_vs_actual_{entry.family}", self.day),
            )
            self._log_model(nested.info.run_id, name, result.model)

    def _log_model(self, run_id: str, name: str, model: PriceModel) -> None:
        from mlflow.entities import LoggedModelOutput

        logged = self.mlflow.initialize_logged_model(
            name=name,
            source_run_id=run_id,
            model_type=LOGGED_MODEL_TYPE,
            params={"family": model.family},
        )
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as directory:
            model.save(Path(directory))
            self.client.log_model_artifacts(logged.model_id, directory)
        self.mlflow.finalize_logged_model(logged.model_id, "READY")
        self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])

    def finish(self, outcome: TrainingOutcome, report_dir: Path) -> None:
        self._guard("record the winner", lambda: self._finish(outcome, report_dir))

    def _finish(self, outcome: TrainingOutcome, report_dir: Path) -> None:
        mlflow = self.mlflow
        metrics = outcome.model.metadata["metrics"]
        for scope in ("holdout", "validation"):
            mlflow.log_metrics(
                {f"{scope}_{k}": float(v) for k, v in metrics[scope].items() if k != "rows"}
            )
        mlflow.set_tags(
            {
                "facet.selected_family": outcome.model.family,
                "facet.model_name": self.config.model_name(outcome.model.family),
            }
        )
        for path in sorted(report_dir.glob("leaderboard.*")):
            mlflow.log_artifact(str(path), "leaderboard")


def _code_version() -> str:
    from contracts.version import code_version

    return code_version()


def _predicted_vs_actual(result: CandidateResult, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actual: np.ndarray = result.holdout_prices
    predicted: np.ndarray = result.holdout_predictions
    # 2,000 stones draw the same picture as 10,000 at a fifth of the cost.
    shown = np.random.default_rng(0).permutation(len(actual))[:2000]
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(actual[shown], predicted[shown], s=3, alpha=0.4)
    top = float(max(actual.max(), predicted.max()))
    axes.plot([0, top], [0, top], color="black", linewidth=0.8)
    axes.set(
        xlabel="appraised price (USD)",
        ylabel="predicted price (USD)",
        title=f"{title}: holdout, MAPE {result.entry.holdout.mape:.2%}",
    )
    plt.close(figure)
    return figure


def open_tracking(config: TrackingConfig) -> Tracking:
    if not config.tracking_uri:
        log.info("experiment tracking is off: %s is not set", TrainingJobEnv.TRACKING_URI.value)
        return Tracking(config)
    try:
        return MlflowTracking(config)
    except ImportError as error:
        log.warning("experiment tracking is off: the MLflow client is not installed (%s)", error)
        return Tracking(config)
