"""The embedded AWS emulator: moto's server on 127.0.0.1 with local compute plugged in.

moto is the control plane (S3, SSM, EventBridge, SQS, IAM, Step Functions, SageMaker). Seams
add the compute and the behaviour it does not have here (DESIGN.md §3):
  - `LambdaFunction._invoke_lambda`: runs the function's handler (lambda_executor);
  - `SageMakerModelBackend.create_training_job`: runs the training container contract
    (training_runner) in a thread and drives the job's status, metrics and failure reason;
    `SageMakerResponse.create_training_job` hands it the request's Environment (moto drops it);
  - `SageMakerModelBackend.create_transform_job`: runs the batch transform contract
    (transform_runner: the serving image's hosting entry point in one local process per instance)
    in a thread and drives the job's status and failure reason;
  - `SageMakerModelBackend.update_model_package`: keeps what the caller did not send (moto
    cleared it; AWS keeps it) and, when the approval status changes, emits the registry's
    "SageMaker Model Package State Change" event to EventBridge, as SageMaker does;
  - `Rule.send_to_targets`: delivers to Lambda targets (moto cannot), asynchronously, as
    EventBridge does;
  - `EventBridgeSchedulerBackend.create_schedule`: a one-time schedule invokes its Lambda
    target when due (time compressed as the rollout's);
  - `CodeDeployBackend.create_deployment`: runs a Lambda deployment (alias weights on the
    configuration's schedule, alarms evaluated, rollback) with local_emulation.codedeploy.
moto is pinned (5.2.5); tests/integration/test_moto_seams.py fails loudly if a seam moves.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config

from contracts.settings import Settings
from local_emulation.background import BackgroundThreads
from local_emulation.codedeploy import LocalCodeDeploy
from local_emulation.lambda_executor import ConcurrencyLimitError, Invocation, LambdaExecutor
from local_emulation.processes import PortInUseError, free_port, require_free_port
from local_emulation.training_runner import JobOutcome, JobSpec, TrainingRunner
from local_emulation.transform_runner import TransformOutcome, TransformRunner, spec_from_job

log = logging.getLogger("facet.emulation")
REGION: Final = "us-east-1"
CREDENTIALS: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
MOTO_CONFIG: Final = {
    "lambda": {"use_docker": True},
    "stepfunctions": {"execute_state_machine": True},
}
# Short timeouts and few retries: when the emulator goes away, callers fail fast and clearly.
CLIENT_CONFIG: Final = Config(
    connect_timeout=3, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"}
)


def aws_environment() -> dict[str, str]:
    """What local compute passes on to handlers: region, credentials and every endpoint variable."""
    environment = {"AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION)}
    environment["AWS_REGION"] = environment["AWS_DEFAULT_REGION"]
    for name, value in os.environ.items():
        if name.startswith("AWS_ENDPOINT_URL") or name in CREDENTIALS:
            environment[name] = value
    return environment


@dataclass
class Seams:
    """The patched moto methods: moto's own (`originals`, what the seams delegate to) and what
    was installed before them (`previous`, put back by uninstall)."""

    executor: LambdaExecutor
    runner: TrainingRunner
    transforms: TransformRunner
    originals: dict[str, Any]
    deliveries: EventDeliveries
    codedeploy: LocalCodeDeploy
    previous: dict[str, Any]

    def uninstall(self) -> None:
        for owner, attribute, key in _patch_points():
            setattr(owner, attribute, self.previous[key])


def _patch_points() -> list[tuple[type, str, str]]:
    """Every moto method the seams replace: (class, attribute, the seams' key for it)."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.codedeploy.models import CodeDeployBackend
    from moto.events.models import Rule
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.scheduler.models import EventBridgeSchedulerBackend

    return [
        (LambdaFunction, "_invoke_lambda", "invoke"),
        (LambdaBackend, "create_function", "create_function"),
        (SageMakerModelBackend, "create_training_job", "create_training_job"),
        (SageMakerResponse, "create_training_job", "create_training_job_response"),
        (SageMakerModelBackend, "create_transform_job", "create_transform_job"),
        (SageMakerModelBackend, "update_model_package", "update_model_package"),
        (Rule, "send_to_targets", "send_to_targets"),
        (CodeDeployBackend, "create_deployment", "create_deployment"),
        (EventBridgeSchedulerBackend, "create_schedule", "create_schedule"),
    ]


class EventDeliveries:
    """EventBridge's delivery of events to Lambda targets: asynchronous, retried, recorded."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts
        self._threads = BackgroundThreads()
        self.failures: list[str] = []

    def deliver(
        self,
        function_arn: str,
        event: dict[str, Any],
        *,
        after: float = 0.0,
        then: Callable[[], None] | None = None,
    ) -> None:
        def run() -> None:
            time.sleep(after)  # a schedule's delivery is due later; it counts as under way
            try:
                attempt_all()
            finally:
                if then is not None:
                    then()

        def attempt_all() -> None:
            client = boto3.client("lambda", config=CLIENT_CONFIG)
            for attempt in range(1, self.attempts + 1):
                try:
                    response = client.invoke(
                        FunctionName=function_arn, Payload=json.dumps(event).encode()
                    )
                    if not response.get("FunctionError"):
                        return
                    detail = response["Payload"].read().decode()
                except Exception as error:  # the emulator may be stopping; retry, then record
                    detail = str(error)
                log.warning(
                    "event delivery to %s failed (attempt %d): %s", function_arn, attempt, detail
                )
                time.sleep(0.5 * attempt)
            self.failures.append(f"{function_arn}: {detail}")

        self._threads.start(run, name="eventbridge-delivery")

    def wait(self, timeout: float = 60) -> None:
        self._threads.wait(timeout)

    @property
    def busy(self) -> bool:
        return self._threads.busy


def package_state_change(package: Any) -> dict[str, Any]:
    """The registry's state-change event for a moto model package, in SageMaker's shape."""
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Package State Change",
        "Resources": [package.arn],
        "Detail": json.dumps(
            {
                "ModelPackageGroupName": package.model_package_group_name,
                "ModelPackageVersion": package.model_package_version,
                "ModelPackageArn": package.arn,
                "ModelApprovalStatus": package.model_approval_status,
                "ModelPackageStatus": "Completed",
            }
        ),
    }


def one_time(expression: str) -> dt.datetime | None:
    """The moment of an EventBridge Scheduler one-time expression, at(yyyy-mm-ddThh:mm:ss) UTC."""
    if not (expression.startswith("at(") and expression.endswith(")")):
        return None
    return dt.datetime.fromisoformat(expression[3:-1]).replace(tzinfo=dt.UTC)


def install_seams(work_dir: Path) -> Seams:
    from moto.core.exceptions import JsonRESTError

    class TooManyRequestsError(JsonRESTError):
        """Lambda's answer when a function's reserved concurrency is exhausted (HTTP 429)."""

        code = 429

        def __init__(self, message: str) -> None:
            super().__init__("TooManyRequestsException", message)

    settings = Settings()
    executor = LambdaExecutor(
        work_dir,
        aws_environment(),
        idle_seconds=settings.local_lambda_idle_seconds,
        max_environments=settings.local_lambda_max_environments,
    )
    runner = TrainingRunner(
        work_dir, lambda: boto3.client("s3", config=CLIENT_CONFIG), aws_environment
    )
    transforms = TransformRunner(work_dir, lambda: boto3.client("s3", config=CLIENT_CONFIG))
    # A second emulator in the same process (a test's own beside a session's) finds the first
    # one's seams installed: it delegates to moto's own methods, not to them (or every training
    # job would run once per emulator), and puts the first one's back when it stops.
    previous = {key: getattr(owner, name) for owner, name, key in _patch_points()}
    originals = {key: _moto_own(method) for key, method in previous.items()}
    # moto's response handler drops CreateTrainingJob's Environment; the request's copy reaches
    # the backend seam below through this variable (same thread, same request).
    request_environment: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
        "training_environment", default=None
    )

    def create_training_job_response(self: Any) -> Any:
        token = request_environment.set(dict(self._get_param("Environment") or {}))
        try:
            return originals["create_training_job_response"](self)
        finally:
            request_environment.reset(token)

    def invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        executor.aws_environment = aws_environment()
        invocation = Invocation(
            function_name=self.function_name,
            function_arn=self.function_arn,
            handler=self.handler,
            code=self.code_bytes,
            environment=dict(self.environment_vars or {}),
            timeout_seconds=float(self.timeout or 3),
            memory_mb=int(self.memory_size or 128),
            reserved_concurrency=(
                int(self.reserved_concurrency) if self.reserved_concurrency is not None else None
            ),
        )
        try:
            result = executor.invoke(invocation, event if event is not None else {})
        except ConcurrencyLimitError as error:
            raise TooManyRequestsError(str(error)) from None
        logs = ("INIT_START (cold start)\n" if result.cold_start else "") + result.logs
        self.logs_backend.ensure_log_group(self.logs_group_name)
        self.save_logs(logs or "(no output)")
        return result.payload, result.is_error, logs

    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        function = originals["create_function"](self, spec)
        # Its runtime image starts importing the image's libraries now, during provisioning,
        # not at its first cold start.
        executor.prepare(function.code_bytes)
        return function

    def create_training_job(self: Any, training_job_name: str, **kwargs: Any) -> Any:
        algorithm = kwargs.get("algorithm_specification") or {}
        # moto overwrites MetricDefinitions with a fixture of its own; keep the caller's.
        definitions = copy.deepcopy(algorithm.get("MetricDefinitions", []))
        job = originals["create_training_job"](self, training_job_name, **kwargs)
        job.algorithm_specification["MetricDefinitions"] = definitions
        job.training_end_time = None
        job.final_metric_data_list = []
        job.secondary_status = "Starting"
        job.training_job_status = "InProgress"
        spec = JobSpec(
            name=training_job_name,
            hyperparameters={k: str(v) for k, v in (kwargs.get("hyper_parameters") or {}).items()},
            input_data_config=kwargs.get("input_data_config") or [],
            output_path=(kwargs.get("output_data_config") or {})["S3OutputPath"],
            max_runtime_seconds=int(
                (kwargs.get("stopping_condition") or {}).get("MaxRuntimeInSeconds", 3600)
            ),
            metric_definitions=definitions,
            instance_type=(kwargs.get("resource_config") or {}).get("InstanceType", "ml.m5.large"),
            environment={k: str(v) for k, v in (request_environment.get() or {}).items()},
        )

        def report(outcome: JobOutcome) -> None:
            job.final_metric_data_list = outcome.final_metrics
            job.failure_reason = outcome.failure_reason
            if outcome.model_artifact:
                job.model_artifacts = {"S3ModelArtifacts": outcome.model_artifact}
            job.training_end_time = dt.datetime.now(dt.UTC)
            job.secondary_status = outcome.secondary_status
            job.training_job_status = outcome.status  # last: the pipeline polls on this field

        runner.start(spec, report)
        return job

    def create_transform_job(self: Any, transform_job_name: str, **kwargs: Any) -> Any:
        job = originals["create_transform_job"](self, transform_job_name, **kwargs)
        job.transform_job_status = "InProgress"  # moto's job is Completed from the start
        job.transform_end_time = None
        model = self._models.get(job.model_name)
        if model is None:
            job.transform_job_status = "Failed"
            job.failure_reason = f"ClientError: the model {job.model_name} does not exist"
            job.transform_end_time = dt.datetime.now(dt.UTC)
            return job
        container = model.primary_container or (model.containers or [{}])[0]
        package_arn = container.get("ModelPackageName")
        package = None
        if package_arn:
            name = self.model_package_name_mapping.get(package_arn, package_arn)
            package = self.model_packages.get(name)

        def report(outcome: TransformOutcome) -> None:
            job.failure_reason = outcome.failure_reason or ""
            job.transform_end_time = dt.datetime.now(dt.UTC)
            job.last_modified_time = job.transform_end_time
            job.transform_job_status = outcome.status  # last: the scoring flow polls on it

        if package_arn and package is None:
            report(TransformOutcome("Failed", f"ClientError: no model package {package_arn}"))
            return job
        transforms.start(spec_from_job(job, model, package), report)
        return job

    deliveries = EventDeliveries()

    def update_model_package(  # noqa: PLR0917 (moto's own signature, called positionally)
        self: Any,
        model_package_arn: str,
        model_approval_status: str | None,
        approval_description: str | None,
        customer_metadata_properties: dict[str, str] | None,
        customer_metadata_properties_to_remove: list[str],
        additional_inference_specifications_to_add: list[Any] | None,
    ) -> str:
        name = self.model_package_name_mapping.get(model_package_arn, model_package_arn)
        package = self.model_packages.get(name)
        before = package.model_approval_status if package is not None else None
        if package is not None:  # as AWS: what is not sent stays as it was
            model_approval_status = model_approval_status or before
            if approval_description is None:
                approval_description = package.approval_description
            customer_metadata_properties = {
                **(package.customer_metadata_properties or {}),
                **(customer_metadata_properties or {}),
            }
        arn = originals["update_model_package"](
            self,
            model_package_arn,
            model_approval_status,
            approval_description,
            customer_metadata_properties,
            customer_metadata_properties_to_remove,
            additional_inference_specifications_to_add,
        )
        if package is not None and package.model_approval_status != before:
            from moto.events.models import events_backends

            events_backends[self.account_id][self.region_name].put_events(
                [package_state_change(package)]
            )
        return str(arn)

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        lambdas = [t for t in self.targets if ":lambda:" in t["Arn"]]
        if lambdas and self.event_pattern.matches_event(original_event):
            for target in lambdas:
                deliveries.deliver(target["Arn"], dict(original_event))
        others = [t for t in self.targets if t not in lambdas]
        if others:
            rule = copy.copy(self)
            rule.targets = others
            originals["send_to_targets"](rule, original_event, transform_input)

    def put_event(account: str, region: str, entry: dict[str, Any]) -> None:
        from moto.events.models import events_backends

        events_backends[account][region].put_events([entry])

    def metric_data(account: str, region: str) -> list[Any]:
        from moto.cloudwatch.models import cloudwatch_backends

        return list(cloudwatch_backends[account][region].get_all_metrics())

    def alarms(account: str, region: str) -> dict[str, Any]:
        from moto.cloudwatch.models import cloudwatch_backends

        return dict(cloudwatch_backends[account][region].alarms)

    codedeploy = LocalCodeDeploy(
        speedup=settings.local_rollout_speedup,
        lambda_client=lambda: boto3.client("lambda", config=CLIENT_CONFIG),
        metric_data=metric_data,
        alarms=alarms,
        emit=put_event,
    )

    def create_deployment(self: Any, *args: Any, **kwargs: Any) -> str:
        deployment_id = str(originals["create_deployment"](self, *args, **kwargs))
        codedeploy.start(self.deployments[deployment_id], self.account_id, self.region_name)
        return deployment_id

    def create_schedule(self: Any, **kwargs: Any) -> Any:
        schedule = originals["create_schedule"](self, **kwargs)
        at = one_time(str(kwargs.get("schedule_expression") or ""))
        target = kwargs.get("target") or {}
        if at is not None and ":lambda:" in str(target.get("Arn", "")):
            delay = max(0.0, (at - dt.datetime.now(dt.UTC)).total_seconds()) / codedeploy.speedup
            backend, name = self, str(kwargs["name"])

            def delete() -> None:  # ActionAfterCompletion DELETE: gone once it has run
                with contextlib.suppress(Exception):
                    backend.delete_schedule(kwargs.get("group_name"), name)

            deliveries.deliver(
                target["Arn"],
                json.loads(target.get("Input") or "{}"),
                after=delay,
                then=delete if kwargs.get("action_after_completion") == "DELETE" else None,
            )
        return schedule

    seams = {
        "invoke": invoke_lambda,
        "create_function": create_function,
        "create_training_job": create_training_job,
        "create_training_job_response": create_training_job_response,
        "create_transform_job": create_transform_job,
        "update_model_package": update_model_package,
        "send_to_targets": send_to_targets,
        "create_deployment": create_deployment,
        "create_schedule": create_schedule,
    }
    for key, seam in seams.items():
        seam.__wrapped__ = originals[key]  # type: ignore[attr-defined]
    for owner, attribute, key in _patch_points():
        setattr(owner, attribute, seams[key])
    return Seams(executor, runner, transforms, originals, deliveries, codedeploy, previous)


def _moto_own(method: Any) -> Any:
    """moto's method under any seams installed over it."""
    while hasattr(method, "__wrapped__"):
        method = method.__wrapped__
    return method


class EmbeddedEmulator:
    """moto in a thread of this process on 127.0.0.1, with the compute seams installed."""

    def __init__(self, port: int | None = None, work_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # A directory it made itself (job workspaces, Lambda code and logs) is its to remove.
        self._owns_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="facet-emulator-"))
        self._server: Any = None
        self.seams: Seams | None = None
        self._saved_environment: dict[str, str | None] = {}

    def _set_environment(self) -> None:
        values = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION),
            # moto's Step Functions engine calls other services at localhost:$MOTO_PORT.
            "MOTO_PORT": str(self.port),
            **CREDENTIALS,
        }
        for name, value in values.items():
            self._saved_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def start(self) -> EmbeddedEmulator:
        from moto.server import ThreadedMotoServer

        try:
            require_free_port(self.port, "the embedded AWS emulator")
        except PortInUseError:
            self.discard_work_dir()  # made in __init__; nothing else was started
            raise
        self._set_environment()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/config",
            data=json.dumps(MOTO_CONFIG).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        self.seams = install_seams(self.work_dir)
        log.info("embedded AWS emulator (moto) at %s", self.endpoint)
        return self

    def stop(self) -> None:
        self.halt()
        self.discard_work_dir()

    def discard_work_dir(self) -> None:
        """Remove the work directory if this emulator created it (a caller's is left alone)."""
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def halt(self) -> None:
        """Stop serving and wait for running jobs, keeping the work directory (a tracking server
        started beside the emulator keeps its database there until it stops too)."""
        if self.seams is not None:
            self.seams.runner.wait(timeout=120)
            self.seams.runner.close()
            self.seams.transforms.wait(timeout=120)
            self.seams.codedeploy.wait(timeout=60)
            self.seams.deliveries.wait(timeout=60)
            self.seams.uninstall()
            self.seams.executor.close()
            self.seams = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()

    def settle(self, timeout: float = 120) -> None:
        """Wait until no event is being delivered and no deployment is running: an approval's
        consequences (a rollout, its verdict, the next rollout) chain through both."""
        assert self.seams is not None, "the emulator is not running"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.seams.deliveries.wait(timeout=max(0.0, deadline - time.monotonic()))
            self.seams.codedeploy.wait(timeout=max(0.0, deadline - time.monotonic()))
            if not (self.seams.deliveries.busy or self.seams.codedeploy.busy):
                return
        raise TimeoutError(f"events or deployments still running after {timeout:.0f} s")

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
