"""`facet experiments`: the MLflow runs of a stage's experiment, with their candidates, in the
terminal. Works against the emulator's tracking server or, with the sagemaker-mlflow plugin and
an ARN as the tracking URI, against a SageMaker MLflow tracking server.

Everything shown comes from the tracking server: names and tags are printed as plain text, with
control characters removed, and cut to their column.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Final

from pipeline.tracking import PACKAGE_VERSION_TAG, REGISTRY_STATUS_TAG

PARENT_TAG: Final = "mlflow.parentRunId"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_RUNS: Final = 500


def plain_text(value: object, width: int | None = None) -> str:
    """A value from a server, for the terminal: control characters removed, cut to `width`."""
    cleaned = _CONTROL.sub("", str(value if value is not None else ""))
    return cleaned if width is None or len(cleaned) <= width else cleaned[: width - 1] + "…"


def _percent(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(name)
    return f"{value:.2%}" if isinstance(value, float) else "—"


def _number(metrics: dict[str, float], name: str, spec: str) -> str:
    value = metrics.get(name)
    return format(value, spec) if isinstance(value, float) else "—"


def print_experiments(
    tracking_uri: str, experiment: str, limit: int, echo: Callable[[str], None]
) -> int:
    """Print the newest `limit` training runs; return how many were printed."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        echo(f"No experiment {experiment} at {tracking_uri} yet: no training job has run.")
        return 0
    runs: list[Any] = list(
        client.search_runs(
            [found.experiment_id], order_by=["attributes.start_time DESC"], max_results=MAX_RUNS
        )
    )
    children: dict[str, list[Any]] = {}
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent:
            children.setdefault(parent, []).append(run)
    parents = [r for r in runs if PARENT_TAG not in r.data.tags][:limit]
    echo(f"Experiment {experiment} at {tracking_uri} (newest first)\n")
    for run in parents:
        tags, metrics = run.data.tags, run.data.metrics
        started = dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC)
        registry = (
            f"registry v{plain_text(tags[PACKAGE_VERSION_TAG], 6)} "
            f"{plain_text(tags.get(REGISTRY_STATUS_TAG, ''), 24)}"
            if PACKAGE_VERSION_TAG in tags
            else "not registered"
        )
        echo(
            f"{started:%Y-%m-%d %H:%M:%S} {plain_text(tags.get('facet.model_name', '—'), 24):<24} "
            f"{plain_text(run.info.status, 9):<9} "
            f"holdout MAPE {_percent(metrics, 'holdout_mape')}, "
            f"RMSE {_number(metrics, 'holdout_rmse', '.0f')}, "
            f"R² {_number(metrics, 'holdout_r2', '.4f')}  {registry}"
        )
        echo(f"  run {plain_text(run.info.run_id, 32)}  job {plain_text(run.info.run_name, 64)}")
        winner = tags.get("facet.selected_family")
        for child in sorted(
            children.get(run.info.run_id, []),
            key=lambda c: c.data.metrics.get("validation_mape", float("inf")),
        ):
            m = child.data.metrics
            family = child.data.params.get("family", "?")
            mark = "*" if family == winner else " "
            echo(
                f"  {mark} {plain_text(family, 10):<10} "
                f"validation MAPE {_percent(m, 'validation_mape')}, "
                f"holdout MAPE {_percent(m, 'holdout_mape')}, "
                f"RMSE {_number(m, 'holdout_rmse', '.0f')}, R² {_number(m, 'holdout_r2', '.4f')}, "
                f"fit {_number(m, 'fit_seconds', '.1f')} s, "
                f"explained price p99 {_number(m, 'explain_p99_ms', '.2f')} ms"
            )
    if not parents:
        echo("No runs yet.")
    elif tracking_uri.startswith("http"):
        echo(f"\n(* = selected) In a browser: {tracking_uri}/#/experiments/{found.experiment_id}")
    return len(parents)
