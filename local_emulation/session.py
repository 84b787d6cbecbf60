"""Which AWS endpoint a command talks to, and running the pipeline there with progress.

Order: `AWS_ENDPOINT_URL` if set (LocalStack, a `facet emulator` in another terminal, ...); else the
emulator a running `facet demo`/`facet emulator` recorded in .facet/endpoint.json; else an embedded
emulator started for this command alone (its state ends with it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from contracts.names import (
    CATALOGUE_EXPLAIN_METADATA,
    MLFLOW_ARTIFACTS_PREFIX,
    SCORING_INCOMING_PREFIX,
    TrainingJobEnv,
    Zone,
)
from contracts.settings import Settings
from local_emulation import localstack
from local_emulation.emulator import REGION, EmbeddedEmulator
from local_emulation.provision import Deployment, client, deployment_names, provision
from local_emulation.tracking_server import TrackingServer
from local_emulation.triggers import ExecutionResult, drain, wait_for
from pipeline.lake import list_keys

# Told of each state an execution enters: (execution name, state name, when it was entered).
StateReport = Callable[[str, str, dt.datetime], None]
STATE_DIR: Final = Path(".facet")
ENDPOINT_FILE: Final = STATE_DIR / "endpoint.json"
SESSION_VARIABLES: Final = (
    "AWS_ENDPOINT_URL",
    TrainingJobEnv.TRACKING_URI.value,
    *localstack.CREDENTIALS,
)
EMULATOR_GONE_ERRORS: Final = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


class EmulatorGoneError(Exception):
    """The AWS endpoint stopped answering in the middle of a command."""


@dataclass
class Session:
    endpoint: str
    deployment: Deployment
    embedded: EmbeddedEmulator | None
    labels: dict[str, str]
    # The MLflow tracking server this session started, if it started one.
    tracking: TrackingServer | None = None

    def land_batch(self, path: Path, name: str) -> str:
        key = f"{Zone.RAW.prefix()}{name}"
        client("s3").upload_file(str(path), self.deployment.data_bucket, key)
        return key

    def ingest(
        self, path: Path, name: str, on_state: StateReport | None = None
    ) -> list[ExecutionResult]:
        """Land a batch in raw/ and wait for the pipeline runs its upload starts."""
        landed_at = dt.datetime.now(dt.UTC)
        key = self.land_batch(path, name)
        return self.run_triggers(on_state, landed=(key, landed_at))

    def land_catalogue(self, path: Path, *, explain: bool) -> tuple[str, dt.datetime]:
        """Upload a catalogue under scoring/incoming/ as a partner would; (key, when)."""
        key = f"{SCORING_INCOMING_PREFIX}{path.name}"
        landed_at = dt.datetime.now(dt.UTC)
        client("s3").upload_file(
            str(path),
            self.deployment.data_bucket,
            key,
            ExtraArgs={
                "ContentType": "text/csv",
                "Metadata": {CATALOGUE_EXPLAIN_METADATA: "true" if explain else "false"},
            },
        )
        return key, landed_at

    def score(
        self,
        path: Path,
        on_state: StateReport | None,
        *,
        explain: bool = True,
        timeout: float = 3600,
    ) -> ExecutionResult:
        """Land a catalogue and wait for the scoring run its upload starts."""
        landed = self.land_catalogue(path, explain=explain)
        results = self.run_triggers(
            on_state,
            timeout,
            landed=landed,
            queue_url=self.deployment.scoring_queue_url,
            state_machine_arn=self.deployment.scoring_state_machine_arn,
        )
        sfn = client("stepfunctions")
        own = [
            r
            for r in results
            if _triggered_by(sfn, r.arn, *landed)
            and not ((r.output or {}).get("scoring") or {}).get("duplicate")
        ]
        if not own:
            raise EmulatorGoneError(f"no scoring run started for {landed[0]}")
        return own[-1]

    def run_triggers(
        self,
        on_state: StateReport | None,
        timeout: float = 600,
        *,
        landed: tuple[str, dt.datetime] | None = None,
        arrival_seconds: float = 10,
        queue_url: str | None = None,
        state_machine_arn: str | None = None,
    ) -> list[ExecutionResult]:
        """Start an execution per queued trigger and wait for all of them. With `landed` (the
        key just uploaded, and when), keep draining until that upload's own trigger has
        arrived: an older message (one redelivered after a crash, for the same key) may be in
        the queue before it. The queue and state machine are the training pipeline's unless
        given (the scoring flow's)."""
        sfn = client("stepfunctions")
        arns: list[str] = []
        deadline = time.monotonic() + arrival_seconds
        while time.monotonic() < deadline:
            arns += drain(
                client("sqs"),
                sfn,
                queue_url or self.deployment.trigger_queue_url,
                state_machine_arn or self.deployment.state_machine_arn,
            )
            if arns and (landed is None or any(_triggered_by(sfn, arn, *landed) for arn in arns)):
                break
            time.sleep(0.2)
        return [self.wait(arn, on_state, timeout) for arn in arns]

    def wait(self, arn: str, on_state: StateReport | None, timeout: float = 600) -> ExecutionResult:
        """Wait for an execution; with `on_state`, report each state it enters (from its
        history, read now and then: triggers.wait_for)."""
        name = arn.rsplit(":", 1)[-1]
        report = None if on_state is None else lambda state, at: on_state(name, state, at)
        return wait_for(client("stepfunctions"), arn, timeout=timeout, on_state=report)

    def download_report(self, execution: str, target: Path) -> Path:
        s3 = client("s3")
        prefix = f"{Zone.REPORTS.prefix()}{execution}/"
        directory = target / execution
        directory.mkdir(parents=True, exist_ok=True)
        for key in list_keys(s3, self.deployment.data_bucket, prefix):
            s3.download_file(self.deployment.data_bucket, key, str(directory / key[len(prefix) :]))
        return directory


# S3 event times have whole seconds; clocks of the emulators may differ slightly.
EVENT_TIME_SLACK: Final = dt.timedelta(seconds=2)


def _triggered_by(sfn: Any, arn: str, key: str, since: dt.datetime) -> bool:
    """Whether an execution was started by the upload of `key` at or after `since`."""
    run_input = json.loads(sfn.describe_execution(executionArn=arn).get("input") or "{}")
    if run_input.get("key") != key:
        return False
    text = str(run_input.get("event_time") or "")
    try:
        happened = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True  # no time to tell by: the first trigger for the key is taken as its own
    if happened.tzinfo is None:
        happened = happened.replace(tzinfo=dt.UTC)
    return happened >= since - EVENT_TIME_SLACK


def existing_deployment() -> Deployment:
    """The names of an already provisioned deployment of this stage (FACET_STAGE, default dev),
    without touching it."""
    account = client("sts").get_caller_identity()["Account"]
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    names = deployment_names(account, region, Settings().stage)
    sqs = client("sqs")
    queue_url = sqs.get_queue_url(QueueName=names.names.local_trigger_queue)["QueueUrl"]
    try:
        scoring_queue = sqs.get_queue_url(QueueName=names.names.local_scoring_queue)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:  # provisioned by a checkout without scoring
        scoring_queue = ""
    return replace(names, trigger_queue_url=queue_url, scoring_queue_url=scoring_queue)


def _provisioned() -> bool:
    """Whether the endpoint holds the stage's state machine already (provisioned elsewhere)."""
    try:
        deployment = existing_deployment()
        machines = [
            m["name"] for m in client("stepfunctions").list_state_machines()["stateMachines"]
        ]
    except client("sqs").exceptions.QueueDoesNotExist:
        return False
    return deployment.names.state_machine in machines


def _reachable(endpoint: str) -> bool:
    """Whether something listens at the endpoint's host and port."""
    parts = urllib.parse.urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


# With LocalStack, these services stay on the embedded moto: SageMaker (not in LocalStack's free
# edition), and Step Functions, Lambda and IAM because only moto's executions can reach the local
# Lambda compute (LocalStack's Lambda needs Docker).
# boto3 service name -> the suffix of its AWS_ENDPOINT_URL_<SERVICE> variable
MOTO_SERVICES_WITH_LOCALSTACK: Final = {
    "sagemaker": "SAGEMAKER",
    "stepfunctions": "SFN",
    "lambda": "LAMBDA",
    "iam": "IAM",
}
SHOWN_SERVICES: Final = (
    "s3",
    "ssm",
    "events",
    "sqs",
    "apigateway",
    "cloudwatch",
    "stepfunctions",
    "lambda",
    "sagemaker",
    "iam",
)


def endpoint_environment(default: str, moto: str | None = None) -> dict[str, str]:
    """AWS_ENDPOINT_URL (and per-service overrides): boto3 reads these itself."""
    environment = {"AWS_ENDPOINT_URL": default}
    if moto is not None:
        environment |= {
            f"AWS_ENDPOINT_URL_{suffix}": moto for suffix in MOTO_SERVICES_WITH_LOCALSTACK.values()
        }
    return environment


def service_backends(labels: dict[str, str]) -> list[tuple[str, str, str]]:
    """(service, endpoint, backend) for the services Facet uses, as boto3 resolves them now."""
    rows = []
    for service in SHOWN_SERVICES:
        endpoint = str(client(service).meta.endpoint_url)
        label = next(
            (name for url, name in labels.items() if endpoint.rstrip("/") == url.rstrip("/")), "?"
        )
        rows.append((service, endpoint, label))
    return rows


def recorded_environment() -> dict[str, str] | None:
    """The endpoints (and emulator credentials) a running demo or emulator recorded, if they
    still answer."""
    if not ENDPOINT_FILE.exists():
        return None
    environment = dict(json.loads(ENDPOINT_FILE.read_text())["environment"])
    endpoints = {v for k, v in environment.items() if k.startswith("AWS_ENDPOINT_URL")}
    return environment if all(_reachable(url) for url in endpoints) else None


def record_endpoint(environment: dict[str, str]) -> None:
    STATE_DIR.mkdir(exist_ok=True)
    ENDPOINT_FILE.write_text(json.dumps({"environment": environment, "pid": os.getpid()}))


def forget_endpoint() -> None:
    if ENDPOINT_FILE.exists() and json.loads(ENDPOINT_FILE.read_text()).get("pid") == os.getpid():
        ENDPOINT_FILE.unlink()


class EndpointError(Exception):
    """The endpoints given cannot serve every service a command needs."""


def external_environment() -> dict[str, str] | None:
    """The endpoints a command uses when it starts no emulator of its own, or None.

    AWS_ENDPOINT_URL set by the user wins; pointed at the LocalStack a running demo uses, the
    demo's per-service endpoints come with it (SageMaker, Step Functions, Lambda and IAM live on
    that demo's moto). Pointed at a LocalStack alone, the command cannot work: say so before
    doing anything.
    """
    given = {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")}
    recorded = recorded_environment()
    if not given.get("AWS_ENDPOINT_URL"):
        return recorded
    try:
        given["AWS_ENDPOINT_URL"] = localstack.normalized_url(given["AWS_ENDPOINT_URL"])
    except ValueError as error:
        raise EndpointError(f"AWS_ENDPOINT_URL: {error}") from None
    if recorded and recorded.get("AWS_ENDPOINT_URL") == given["AWS_ENDPOINT_URL"]:
        return recorded | given
    moved = [
        suffix
        for suffix in MOTO_SERVICES_WITH_LOCALSTACK.values()
        if f"AWS_ENDPOINT_URL_{suffix}" not in given
    ]
    if moved and localstack.healthy(given["AWS_ENDPOINT_URL"]):
        raise EndpointError(
            f"{given['AWS_ENDPOINT_URL']} is a LocalStack: SageMaker is not in its free edition "
            "and its Step Functions cannot reach a Lambda without Docker. Run `facet demo "
            "--backend localstack` (it keeps SageMaker, Step Functions, Lambda and IAM on an "
            "embedded moto and records both endpoints in .facet/endpoint.json for other "
            "commands), or set " + ", ".join(f"AWS_ENDPOINT_URL_{s}" for s in moved) + "."
        )
    return given


class PreflightError(Exception):
    """A resource a command is about to change or use is missing where the endpoints point."""


def deploy_function(deployment: Deployment) -> str:
    return deployment.names.step_function("deploy_model")


def _require(what: str, name: str, service: str, probe: Callable[[Any], object]) -> None:
    api = client(service)
    try:
        probe(api)
    except ClientError as error:
        details = error.response.get("Error", {})
        raise PreflightError(
            f"the {what} {name} is not usable at {api.meta.endpoint_url} "
            f"({details.get('Code')}: {details.get('Message')}); nothing was changed. "
            "Is the demo that provisioned it still running, with this stage (FACET_STAGE)?"
        ) from None


def require_pipeline(deployment: Deployment) -> None:
    """What landing a batch or starting a run needs, checked before anything is written."""
    _require(
        "state machine",
        deployment.state_machine_arn,
        "stepfunctions",
        lambda sfn: sfn.describe_state_machine(stateMachineArn=deployment.state_machine_arn),
    )
    _require(
        "data lake bucket",
        deployment.data_bucket,
        "s3",
        lambda s3: s3.head_bucket(Bucket=deployment.data_bucket),
    )
    _require(
        "trigger queue",
        deployment.trigger_queue_url,
        "sqs",
        lambda sqs: sqs.get_queue_attributes(
            QueueUrl=deployment.trigger_queue_url, AttributeNames=["QueueArn"]
        ),
    )


def require_scoring(deployment: Deployment) -> None:
    """What scoring a catalogue needs, checked before anything is written."""
    _require(
        "scoring state machine",
        deployment.scoring_state_machine_arn,
        "stepfunctions",
        lambda sfn: sfn.describe_state_machine(
            stateMachineArn=deployment.scoring_state_machine_arn
        ),
    )
    if not deployment.scoring_queue_url:
        raise PreflightError(
            "the emulator holds no scoring trigger queue (it was provisioned by a checkout "
            "without bulk scoring); nothing was changed. Restart the demo or emulator."
        )
    _require(
        "scoring trigger queue",
        deployment.scoring_queue_url,
        "sqs",
        lambda sqs: sqs.get_queue_attributes(
            QueueUrl=deployment.scoring_queue_url, AttributeNames=["QueueArn"]
        ),
    )


def require_promotion(deployment: Deployment) -> None:
    """What changing production needs (the registry, the deploy function that moves the
    pointer, the pointer itself), checked before the registry is written."""
    _require(
        "model package group",
        deployment.model_package_group,
        "sagemaker",
        lambda sagemaker: sagemaker.describe_model_package_group(
            ModelPackageGroupName=deployment.model_package_group
        ),
    )
    name = deploy_function(deployment)
    _require("deploy function", name, "lambda", lambda lam: lam.get_function(FunctionName=name))
    parameter = deployment.names.production_parameter
    _require(
        "production pointer",
        parameter,
        "ssm",
        lambda ssm: ssm.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Values": [parameter]}]
        ),
    )


def _start_tracking(embedded: EmbeddedEmulator, stage: str | None) -> TrackingServer:
    """The stage's tracking server, started in the background; training jobs wait for it. Its
    artifact store is the bucket provisioning is about to create (names are deterministic)."""
    account = client("sts").get_caller_identity()["Account"]
    region = boto3.session.Session().region_name or REGION
    names = deployment_names(account, region, stage or Settings().stage)
    server = TrackingServer(
        work_dir=embedded.work_dir / "mlflow",
        artifact_root=f"s3://{names.artifacts_bucket}/{MLFLOW_ARTIFACTS_PREFIX}",
        s3_endpoint=str(client("s3").meta.endpoint_url),
        credentials={**localstack.CREDENTIALS, "AWS_DEFAULT_REGION": region},
    ).start()
    assert embedded.seams is not None
    embedded.seams.runner.before_job = server.wait_ready
    return server


@contextlib.contextmanager
def open_session(
    *,
    port: int | None = None,
    fresh: bool = False,
    record: bool = False,
    provision_resources: bool = True,
    provision_options: dict[str, Any] | None = None,
    localstack_url: str | None = None,
    tracking: bool = False,
) -> Iterator[Session]:
    """A provisioned deployment on the chosen endpoints.

    `fresh` starts an embedded moto; with `localstack_url` too, LocalStack serves everything but
    the MOTO_SERVICES_WITH_LOCALSTACK, which stay on the embedded moto. `tracking` (with an
    embedded emulator) starts an MLflow tracking server whose artifact store is the stage's
    artifacts bucket, and points the pipeline's training jobs at it.
    """
    external = None if fresh else external_environment()
    embedded: EmbeddedEmulator | None = None
    server: TrackingServer | None = None
    saved = {k: v for k, v in os.environ.items() if k.startswith(SESSION_VARIABLES)}
    labels: dict[str, str] = {}
    try:
        # Emulator credentials, always: LocalStack's account is the access key, and both
        # emulators must agree on it (see localstack.CREDENTIALS).
        os.environ.update(localstack.CREDENTIALS)
        if external:
            os.environ.update(external)
            environment = external
        else:
            embedded = EmbeddedEmulator(port).start()
            environment = endpoint_environment(
                localstack_url or embedded.endpoint, embedded.endpoint if localstack_url else None
            ) | dict(localstack.CREDENTIALS)
            os.environ.update(environment)
            labels[embedded.endpoint] = "moto (embedded)"
        if localstack_url:
            labels[localstack_url] = "LocalStack"
        endpoint = environment["AWS_ENDPOINT_URL"]
        labels.setdefault(endpoint, "moto (embedded)" if embedded else "external")
        options = dict(provision_options or {})
        if tracking and embedded is not None:
            # Started first: its ~3 s start-up overlaps provisioning instead of the first job.
            server = _start_tracking(embedded, options.get("stage"))
            options["tracking_uri"] = server.url
            environment = environment | {TrainingJobEnv.TRACKING_URI.value: server.url}
            os.environ[TrainingJobEnv.TRACKING_URI.value] = server.url
            labels[server.url] = "MLflow (local)"
        if embedded is not None or (provision_resources and not _provisioned()):
            deployment = provision(**options)
        if embedded is not None and embedded.seams is not None and provision_resources:
            # A provisioned pipeline trains: the training image imports its libraries (~4 s of
            # CPU) now, while a first batch is validated, not beside provisioning.
            embedded.seams.runner.image.start()
        else:
            deployment = existing_deployment()
        if record and embedded is not None:
            record_endpoint(environment)  # only now: other commands may use it from here on
        yield Session(endpoint, deployment, embedded, labels, server)
    except EMULATOR_GONE_ERRORS as error:
        raise EmulatorGoneError(
            f"the AWS endpoint {os.environ.get('AWS_ENDPOINT_URL')} stopped answering ({error})"
        ) from None
    finally:
        if embedded is not None:
            if record:
                forget_endpoint()
            embedded.halt()
        if server is not None:
            server.stop()
        if embedded is not None:
            embedded.discard_work_dir()
        for name in [k for k in os.environ if k.startswith(SESSION_VARIABLES)]:
            if name not in saved:
                os.environ.pop(name)
        os.environ.update(saved)
