"""The SageMaker training-job entry point, honouring the container contract.

Reads the `train` and `holdout` channels from /opt/ml/input/data/<channel>/ (or `SM_CHANNEL_*`),
hyperparameters from SM_HPS or /opt/ml/input/config/hyperparameters.json (all values strings),
writes the artifact to /opt/ml/model (SageMaker packs it into model.tar.gz), the leaderboard to
/opt/ml/output/data, metric lines to stdout, and on error the reason to /opt/ml/output/failure.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Final

import pandas as pd

from contracts.settings import TrainingJobSettings
from training.hyperparameters import parse_hyperparameters
from training.tracking import DatasetInfo, TrackingConfig, open_tracking
from training.train import metric_lines, train_and_evaluate
from training.validate import ROW_COLUMN, validate_batch

log = logging.getLogger("facet.training")
# SageMaker keeps the first 1,024 characters of the failure file as the job's FailureReason.
FAILURE_REASON_LIMIT: Final = 1024


class ChannelError(Exception):
    """A training channel is missing or holds no usable rows."""


def read_channel(directory: Path, channel: str) -> tuple[pd.DataFrame, list[str]]:
    """Every CSV in a channel directory, validated; quarantined rows are counted and reported."""
    if not directory.is_dir():
        raise ChannelError(f"channel '{channel}' not found at {directory}")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name.endswith(".csv"))
    if not files:
        raise ChannelError(f"channel '{channel}' at {directory} has no .csv files")
    frames = []
    for path in files:
        result = validate_batch(path)
        report = result.report
        log.info(
            "channel %s: %s: %d rows, %d accepted, %d quarantined %s",
            channel,
            path.name,
            report.input_rows,
            report.accepted_rows,
            report.quarantined_rows,
            dict(report.reasons),
        )
        frames.append(result.accepted.drop(columns=[ROW_COLUMN]))
    rows = pd.concat(frames, ignore_index=True)
    if rows.empty:
        raise ChannelError(f"channel '{channel}' has no valid rows")
    return rows, [str(p.relative_to(directory)) for p in files]


def run(settings: TrainingJobSettings) -> None:
    raw_parameters = settings.hyperparameters()
    params = parse_hyperparameters(raw_parameters)
    # Opened first: its writer process imports MLflow (~1.5 s) while the channels are read.
    tracking = open_tracking(TrackingConfig.from_environment())
    try:
        training, sources = read_channel(settings.train_channel, "train")
        holdout, _ = read_channel(settings.holdout_channel, "holdout")
    except BaseException:
        tracking.close()
        raise
    dataset = DatasetInfo.from_channel(settings.train_channel, len(training), sources)
    tracked = {k: v for k, v in raw_parameters.items() if not k.startswith("sagemaker_")}
    with tracking.run(tracked, dataset):
        outcome = train_and_evaluate(
            training,
            holdout,
            params,
            sources=sources,
            progress=log.info,
            on_candidate=tracking.candidate,
        )
        outcome.model.metadata.update(tracking.model_metadata(outcome.model.family))
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        outcome.save(settings.model_dir, settings.output_data_dir)
        tracking.finish(outcome, settings.output_data_dir)
    for line in metric_lines(outcome.model.metadata["metrics"]):
        print(line, flush=True)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    settings = TrainingJobSettings()
    try:
        run(settings)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        traceback.print_exc()
        settings.failure_file.parent.mkdir(parents=True, exist_ok=True)
        settings.failure_file.write_text(reason[:FAILURE_REASON_LIMIT])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
