"""The SageMaker batch transform compute the emulator lacks, honouring the service's contract.

For a created transform job: resolve its model (a model package's image and model data, or a
container's own), unpack the model data where the container expects /opt/ml/model, start one
hosting container per instance (InstanceCount, capped by the CPUs this process may use) running
the serving image's entry point, split each input object by lines into mini-batches of at most
MaxPayloadInMB (MultiRecord) or one line each (SingleRecord), POST them in order to
/invocations with the job's ContentType and Accept, and write each object's answers, assembled
by line, to <S3OutputPath>/<object name>.out. Objects are spread over the instances as the
service spreads them; each instance takes one request at a time (MaxConcurrentTransforms 1).
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from contracts.compute import host_cpus
from contracts.names import CONTAINER_MODEL_DIR, LOCAL_SERVING_IMAGE
from local_emulation.processes import clean_environment, free_port, stop_group
from local_emulation.transform_worker import PARENT_ENV
from training.artifact_store import download, parse_s3_uri, unpack

log = logging.getLogger("facet.emulation.transform")
FAILURE_REASON_LIMIT: Final = 1024
REPO: Final = Path(__file__).resolve().parents[1]
START_SECONDS: Final = 90.0
MEGABYTE: Final = 1024 * 1024


class TransformJobError(Exception):
    """The job cannot go on (its model, its input, a container's answer); becomes FailureReason."""


@dataclass
class TransformSpec:
    name: str
    image: str
    model_data_url: str
    environment: dict[str, str]
    input_s3_uri: str
    output_s3_uri: str
    content_type: str = "text/csv"
    accept: str = "text/csv"
    split_type: str = "None"
    assemble_with: str = "None"
    batch_strategy: str = "MultiRecord"
    max_payload_mb: int = 6
    instance_count: int = 1
    kms_key_id: str = ""
    invocation_timeout_seconds: float = 600.0


@dataclass
class InstanceStats:
    """What one local instance did: the benchmark's rows per second per worker, and its memory."""

    objects: int = 0
    lines: int = 0
    requests: int = 0
    busy_seconds: float = 0.0
    peak_rss_mb: float = 0.0


@dataclass
class TransformOutcome:
    status: str
    failure_reason: str | None = None
    instances: list[InstanceStats] = field(default_factory=list)
    seconds: float = 0.0


def mini_batches(body: bytes, spec: TransformSpec) -> list[tuple[int, bytes]]:
    """(first line number, payload) per request, as the service splits an object: whole lines,
    as many as fit MaxPayloadInMB (MultiRecord) or one each (SingleRecord); unsplit, the object."""
    limit = spec.max_payload_mb * MEGABYTE
    if spec.split_type != "Line":
        if len(body) > limit:
            raise TransformJobError(
                f"an object of {len(body):,} bytes is over MaxPayloadInMB ({spec.max_payload_mb})"
                " and SplitType is None"
            )
        return [(1, body)] if body else []
    lines = [line if line.endswith(b"\n") else line + b"\n" for line in body.splitlines(True)]
    batches: list[tuple[int, bytes]] = []
    current: list[bytes] = []
    size, first = 0, 1
    for number, line in enumerate(lines, start=1):
        if len(line) > limit:
            raise TransformJobError(
                f"line {number} is {len(line):,} bytes, over MaxPayloadInMB ({spec.max_payload_mb})"
            )
        if current and (spec.batch_strategy == "SingleRecord" or size + len(line) > limit):
            batches.append((first, b"".join(current)))
            current, size, first = [], 0, number
        current.append(line)
        size += len(line)
    if current:
        batches.append((first, b"".join(current)))
    return batches


def assemble(answers: list[bytes], assemble_with: str) -> bytes:
    """The output object: answers joined line by line (AssembleWith Line) or as they came."""
    if assemble_with != "Line":
        return b"".join(answers)
    return b"".join(a if a.endswith(b"\n") or not a else a + b"\n" for a in answers)


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident memory (Linux VmHWM), 0 where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _Instance:
    """One hosting container: the serving entry point on a port of 127.0.0.1."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.stats = InstanceStats()
        with log_path.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local_emulation.transform_worker"],
                cwd=REPO,
                env=environment
                | {"SAGEMAKER_BIND_TO_HOST": "127.0.0.1", "SAGEMAKER_BIND_TO_PORT": str(self.port)},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TransformJobError(
                    f"the container exited with code {self.process.returncode} before answering "
                    f"/ping: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TransformJobError(f"the container did not answer /ping in time: {self.log_tail()}")

    def invoke(self, payload: bytes, spec: TransformSpec, where: str) -> bytes:
        request = urllib.request.Request(
            f"{self.url}/invocations",
            data=payload,
            headers={"Content-Type": spec.content_type, "Accept": spec.accept},
            method="POST",
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(
                request, timeout=spec.invocation_timeout_seconds
            ) as response:
                answer: bytes = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise TransformJobError(
                f"ClientError: the container answered {error.code} for {where}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise TransformJobError(
                f"ClientError: the container did not answer for {where}: {error}"
            ) from None
        self.stats.busy_seconds += time.perf_counter() - started
        self.stats.requests += 1
        return answer

    def log_tail(self, characters: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self) -> None:
        self.stats.peak_rss_mb = peak_rss_mb(self.process.pid)
        stop_group(self.process, grace=5)


class TransformRunner:
    """Runs jobs in threads; `s3_client` reaches the lake wherever it is (moto or LocalStack)."""

    def __init__(
        self,
        work_dir: Path,
        s3_client: Callable[[], Any],
        cpus: Callable[[], int] = host_cpus,
    ) -> None:
        self.work_dir = work_dir
        self.s3_client = s3_client
        self.cpus = cpus
        self.threads: list[threading.Thread] = []
        self.outcomes: dict[str, TransformOutcome] = {}

    def start(
        self, spec: TransformSpec, report: Callable[[TransformOutcome], None]
    ) -> threading.Thread:
        thread = threading.Thread(
            target=self._run_and_report, args=(spec, report), name=f"transform-{spec.name}"
        )
        thread.daemon = True
        self.threads.append(thread)
        thread.start()
        return thread

    def wait(self, timeout: float = 600) -> None:
        for thread in list(self.threads):
            thread.join(timeout)

    def _run_and_report(
        self, spec: TransformSpec, report: Callable[[TransformOutcome], None]
    ) -> None:
        started = time.perf_counter()
        instances: list[_Instance] = []
        try:
            self.run(spec, instances)
            outcome = TransformOutcome("Completed")
        except Exception as error:  # any failure fails the job, visibly, as the service does
            if not isinstance(error, TransformJobError):
                log.exception("transform job %s could not run", spec.name)
            reason = str(error) if isinstance(error, TransformJobError) else f"{error!r}"
            outcome = TransformOutcome("Failed", reason[:FAILURE_REASON_LIMIT])
        finally:
            for instance in instances:
                instance.stop()
        outcome.instances = [instance.stats for instance in instances]
        outcome.seconds = time.perf_counter() - started
        self.outcomes[spec.name] = outcome
        report(outcome)

    def _objects(self, spec: TransformSpec) -> tuple[str, str, list[str]]:
        bucket, prefix = parse_s3_uri(spec.input_s3_uri, key_required=False)
        s3 = self.s3_client()
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        if not keys:
            raise TransformJobError(f"ClientError: no objects under {spec.input_s3_uri}")
        return bucket, prefix, sorted(keys)

    def _container_environment(self, spec: TransformSpec, model_dir: Path) -> dict[str, str]:
        instances = self._instance_count(spec)
        mapped = {
            name: value.replace(CONTAINER_MODEL_DIR, str(model_dir), 1)
            if value.startswith(CONTAINER_MODEL_DIR)
            else value
            for name, value in spec.environment.items()
        }
        return (
            clean_environment()
            | {
                "PYTHONPATH": str(REPO),
                PARENT_ENV: str(os.getpid()),
                # What SageMaker tells a batch transform container, and its CPU share here.
                "SAGEMAKER_BATCH": "true",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(spec.max_payload_mb),
                "SAGEMAKER_BATCH_STRATEGY": spec.batch_strategy.upper().replace(
                    "RECORD", "_RECORD"
                ),
                "SM_NUM_CPUS": str(max(1, self.cpus() // instances)),
            }
            | mapped
        )

    def _instance_count(self, spec: TransformSpec) -> int:
        return max(1, min(spec.instance_count, self.cpus()))

    def run(self, spec: TransformSpec, instances: list[_Instance]) -> None:
        if spec.image != LOCAL_SERVING_IMAGE:
            raise TransformJobError(
                f"ClientError: the image {spec.image[:200]} cannot run here: the emulator runs "
                f"the serving image of this checkout ({LOCAL_SERVING_IMAGE}) only"
            )
        root = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=self._root()))
        model_dir = root / "model"
        try:
            unpack(download(self.s3_client(), spec.model_data_url), model_dir)
        except Exception as error:
            raise TransformJobError(
                f"ClientError: the model data {spec.model_data_url} cannot be read: {error}"
            ) from None
        bucket, prefix, keys = self._objects(spec)
        environment = self._container_environment(spec, model_dir)
        count = min(self._instance_count(spec), len(keys))
        for index in range(count):
            instances.append(_Instance(environment, root / f"instance-{index}.log"))
        deadline = time.monotonic() + START_SECONDS
        for instance in instances:
            instance.wait_until_ready(deadline)
        work: queue.Queue[str] = queue.Queue()
        for key in keys:
            work.put(key)
        failures: list[str] = []
        threads = [
            threading.Thread(
                target=self._serve_objects,
                args=(instance, spec),
                kwargs={"bucket": bucket, "prefix": prefix, "work": work, "failures": failures},
                name=f"{spec.name}-instance-{index}",
            )
            for index, instance in enumerate(instances)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise TransformJobError(failures[0])

    def _root(self) -> Path:
        root = self.work_dir / "transform"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _serve_objects(
        self,
        instance: _Instance,
        spec: TransformSpec,
        *,
        bucket: str,
        prefix: str,
        work: queue.Queue[str],
        failures: list[str],
    ) -> None:
        s3 = self.s3_client()
        out_bucket, out_prefix = parse_s3_uri(spec.output_s3_uri, key_required=False)
        folder = prefix[: prefix.rfind("/") + 1]
        while not failures:
            try:
                key = work.get_nowait()
            except queue.Empty:
                return
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                answers = []
                for first, payload in mini_batches(body, spec):
                    lines = payload.count(b"\n")
                    where = f"s3://{bucket}/{key} lines {first}-{first + lines - 1}"
                    answers.append(instance.invoke(payload, spec, where))
                    instance.stats.lines += lines
                output_key = f"{out_prefix.rstrip('/')}/{key[len(folder) :]}.out".lstrip("/")
                extra: dict[str, Any] = (
                    {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": spec.kms_key_id}
                    if spec.kms_key_id
                    else {}
                )
                s3.put_object(
                    Bucket=out_bucket,
                    Key=output_key,
                    Body=assemble(answers, spec.assemble_with),
                    ContentType=spec.accept,
                    **extra,
                )
                instance.stats.objects += 1
            except Exception as error:
                failures.append(
                    str(error) if isinstance(error, TransformJobError) else f"{key}: {error!r}"
                )
                return


def spec_from_job(job: Any, model: Any, package: Any | None) -> TransformSpec:
    """What a moto transform job, its model and (if the model names one) its package say."""
    container = dict(model.primary_container or (model.containers or [{}])[0])
    if package is not None:
        registered = (package.inference_specification or {}).get("Containers") or [{}]
        image, model_data = registered[0].get("Image", ""), registered[0].get("ModelDataUrl", "")
    else:
        image, model_data = container.get("Image", ""), container.get("ModelDataUrl", "")
    transform_input = job.transform_input or {}
    transform_output = job.transform_output or {}
    resources = job.transform_resources or {}
    client_config = job.model_client_config or {}
    return TransformSpec(
        name=job.transform_job_name,
        image=str(image),
        model_data_url=str(model_data),
        environment={
            **{k: str(v) for k, v in (container.get("Environment") or {}).items()},
            **{k: str(v) for k, v in (job.environment or {}).items()},
        },
        input_s3_uri=transform_input["DataSource"]["S3DataSource"]["S3Uri"],
        output_s3_uri=transform_output["S3OutputPath"],
        content_type=transform_input.get("ContentType", "text/csv"),
        accept=transform_output.get("Accept", "text/csv"),
        split_type=transform_input.get("SplitType", "None"),
        assemble_with=transform_output.get("AssembleWith", "None"),
        batch_strategy=job.batch_strategy or "MultiRecord",
        max_payload_mb=int(job.max_payload_in_mb or 6),
        instance_count=int(resources.get("InstanceCount", 1)),
        kms_key_id=str(transform_output.get("KmsKeyId", "")),
        invocation_timeout_seconds=float(client_config.get("InvocationsTimeoutInSeconds", 600)),
    )
