"""The SageMaker training compute the emulator lacks, honouring the container contract.

For a created training job: download each input channel's S3 prefix to
/opt/ml/input/data/<channel>/ (under a temporary root), write hyperparameters.json (strings),
inputdataconfig.json and resourceconfig.json, fetch the code named by `sagemaker_submit_directory`
as a framework container does, run `sagemaker_program` with the SM_* variables, tar /opt/ml/model
to <S3OutputPath>/<job>/output/model.tar.gz, and report status, metrics and failure reason.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from contracts.compute import host_cpus
from local_emulation.training_image import TrainingImage
from training.artifact_store import download, pack, parse_s3_uri, unpack

log = logging.getLogger("facet.emulation.training")
FAILURE_REASON_LIMIT: Final = 1024


class TrainingJobError(Exception):
    """The job could not be run (bad input configuration, missing code); becomes FailureReason."""


@dataclass
class JobSpec:
    name: str
    hyperparameters: dict[str, str]
    input_data_config: list[dict[str, Any]]
    output_path: str
    max_runtime_seconds: int
    metric_definitions: list[dict[str, str]]
    instance_type: str = "ml.m5.large"
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class JobOutcome:
    status: str
    secondary_status: str
    failure_reason: str | None = None
    model_artifact: str | None = None
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    log_text: str = ""


def parse_metrics(text: str, definitions: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The last value each metric definition's regex captured (SageMaker's FinalMetricDataList)."""
    now = dt.datetime.now(dt.UTC)
    metrics = []
    for definition in definitions:
        values = re.findall(definition["Regex"], text)
        if values:
            metrics.append(
                {"MetricName": definition["Name"], "Value": float(values[-1]), "Timestamp": now}
            )
    return metrics


class TrainingRunner:
    """Runs jobs in threads; `s3_client` reaches the lake wherever it is (moto or LocalStack)."""

    def __init__(
        self,
        work_dir: Path,
        s3_client: Callable[[], Any],
        role_environment: Callable[[], dict[str, str]] = dict,
        python: str = sys.executable,
    ) -> None:
        self.work_dir = work_dir
        self.s3_client = s3_client
        # The job role's credentials, region and endpoints, as a container gets them in AWS.
        self.role_environment = role_environment
        self.image = TrainingImage(python, work_dir)
        self.threads: list[threading.Thread] = []
        # Called before each job starts: a service the job depends on may still be starting.
        self.before_job: Callable[[], None] | None = None

    def start(self, spec: JobSpec, report: Callable[[JobOutcome], None]) -> threading.Thread:
        thread = threading.Thread(
            target=self._run_and_report,
            args=(spec, report),
            name=f"training-{spec.name}",
            daemon=True,
        )
        self.threads.append(thread)
        thread.start()
        return thread

    def wait(self, timeout: float = 600) -> None:
        for thread in list(self.threads):
            thread.join(timeout)

    def close(self) -> None:
        """Stop the image interpreter the jobs fork from (a job still running dies with it)."""
        self.image.close()

    def _run_and_report(self, spec: JobSpec, report: Callable[[JobOutcome], None]) -> None:
        try:
            outcome = self.run(spec)
        except Exception as error:  # any failure of the runner itself fails the job, visibly
            log.exception("training job %s could not run", spec.name)
            outcome = JobOutcome("Failed", "Failed", f"ClientError: {error}"[:FAILURE_REASON_LIMIT])
        report(outcome)

    def _download_channel(self, channel: dict[str, Any], target: Path) -> None:
        source = channel["DataSource"]["S3DataSource"]
        bucket, prefix = parse_s3_uri(source["S3Uri"], key_required=False)
        s3 = self.s3_client()
        found = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :].lstrip("/") or Path(item["Key"]).name
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(destination))
                found += 1
        if not found:
            raise TrainingJobError(
                f"channel {channel['ChannelName']}: no objects under {source['S3Uri']}"
            )

    def _fetch_code(self, submit_directory: str, target: Path) -> None:
        if submit_directory.startswith("s3://"):
            unpack(download(self.s3_client(), submit_directory), target)
        else:
            shutil.copytree(submit_directory, target, dirs_exist_ok=True)

    def run(self, spec: JobSpec) -> JobOutcome:
        if self.before_job is not None:
            try:
                self.before_job()
            except Exception as error:  # the job runs regardless, as in AWS
                log.warning("before training job %s: %s", spec.name, error)
        root = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=self.work_dir)) / "opt" / "ml"
        data_dir, config_dir = root / "input" / "data", root / "input" / "config"
        model_dir, output_dir, code_dir = root / "model", root / "output", root / "code"
        for directory in (data_dir, config_dir, model_dir, output_dir / "data", code_dir):
            directory.mkdir(parents=True, exist_ok=True)
        channels = {}
        for channel in spec.input_data_config:
            name = channel["ChannelName"]
            self._download_channel(channel, data_dir / name)
            channels[name] = {
                "ContentType": channel.get("ContentType", ""),
                "TrainingInputMode": "File",
            }
        (config_dir / "hyperparameters.json").write_text(json.dumps(spec.hyperparameters))
        (config_dir / "inputdataconfig.json").write_text(json.dumps(channels))
        (config_dir / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": "algo-1",
                    "hosts": ["algo-1"],
                    "current_instance_type": spec.instance_type,
                }
            )
        )
        program = spec.hyperparameters.get("sagemaker_program")
        submit = spec.hyperparameters.get("sagemaker_submit_directory")
        if not program or not submit:
            raise TrainingJobError(
                "hyperparameters sagemaker_program and sagemaker_submit_directory are required"
            )
        self._fetch_code(submit, code_dir)
        if not (code_dir / program).exists():
            raise TrainingJobError(f"entry point {program} not found in {submit}")
        # The caller's Environment first: SageMaker's own variables cannot be overridden.
        environment = {
            **spec.environment,
            **self.role_environment(),
            "PATH": "/usr/bin:/bin",
            "TRAINING_JOB_NAME": spec.name,
            "SM_MODEL_DIR": str(model_dir),
            "SM_INPUT_DIR": str(root / "input"),
            "SM_INPUT_CONFIG_DIR": str(config_dir),
            "SM_OUTPUT_DIR": str(output_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
            "SM_HPS": json.dumps(spec.hyperparameters),
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_CURRENT_HOST": "algo-1",
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_MODULE_DIR": submit,
            "SM_USER_ENTRY_POINT": program,
            "SM_NUM_CPUS": str(host_cpus()),  # the instance is this machine
            "SM_NUM_GPUS": "0",
            "PYTHONPATH": str(code_dir),
            "PYTHONUNBUFFERED": "1",
        }
        environment |= {f"SM_CHANNEL_{name.upper()}": str(data_dir / name) for name in channels}
        started = dt.datetime.now()
        completed = self.image.run(
            program, code_dir, environment, root.parents[1] / "logs", spec.max_runtime_seconds
        )
        text = completed.stdout + completed.stderr
        if completed.returncode is None:
            return JobOutcome("Stopped", "MaxRuntimeExceeded", None, log_text=text)
        (self.work_dir / f"{spec.name}.log").write_text(text)
        log.info(
            "training job %s exited %s after %.1f s",
            spec.name,
            completed.returncode,
            (dt.datetime.now() - started).total_seconds(),
        )
        metrics = parse_metrics(completed.stdout, spec.metric_definitions)
        if completed.returncode != 0:
            failure = output_dir / "failure"
            reason = failure.read_text().strip() if failure.exists() else ""
            reason = reason or f"AlgorithmError: training exited with code {completed.returncode}"
            return JobOutcome(
                "Failed",
                "Failed",
                reason[:FAILURE_REASON_LIMIT],
                final_metrics=metrics,
                log_text=text,
            )
        artifact = self._upload_model(spec, model_dir)
        return JobOutcome("Completed", "Completed", None, artifact, metrics, text)

    def _upload_model(self, spec: JobSpec, model_dir: Path) -> str:
        bucket, prefix = parse_s3_uri(spec.output_path, key_required=False)
        key = "/".join(
            part for part in (prefix.rstrip("/"), spec.name, "output", "model.tar.gz") if part
        )
        self.s3_client().put_object(Bucket=bucket, Key=key, Body=pack(model_dir))
        return f"s3://{bucket}/{key}"
