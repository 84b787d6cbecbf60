"""Which AWS endpoint a command talks to, and running the pipeline there with progress.

Order: `AWS_ENDPOINT_URL` if set (LocalStack, a `facet emulator` in another terminal, ...); else the
emulator a running `facet demo`/`facet emulator` recorded in .facet/endpoint.json; else an embedded
emulator started for this command alone (its state ends with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from contracts.names import LOCAL_TRIGGER_QUEUE, STATE_MACHINE, Zone
from local_emulation.emulator import EmbeddedEmulator
from local_emulation.provision import Deployment, client, deployment_names, provision
from local_emulation.triggers import ExecutionResult, drain, wait_for
from pipeline.lake import list_keys

STATE_DIR: Final = Path(".facet")
ENDPOINT_FILE: Final = STATE_DIR / "endpoint.json"
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

    def land_batch(self, path: Path, name: str) -> str:
        key = f"{Zone.RAW.prefix()}{name}"
        client("s3").upload_file(str(path), self.deployment.data_bucket, key)
        return key

    def run_triggers(
        self, on_state: Callable[[str, str], None], timeout: float = 600
    ) -> list[ExecutionResult]:
        """Start an execution per queued trigger and wait for all of them."""
        sfn = client("stepfunctions")
        arns: list[str] = []
        deadline = time.monotonic() + 5
        while not arns and time.monotonic() < deadline:
            arns = drain(
                client("sqs"),
                sfn,
                self.deployment.trigger_queue_url,
                self.deployment.state_machine_arn,
            )
            if not arns:
                time.sleep(0.2)
        return [self.wait(arn, on_state, timeout) for arn in arns]

    def wait(
        self, arn: str, on_state: Callable[[str, str], None], timeout: float = 600
    ) -> ExecutionResult:
        name = arn.rsplit(":", 1)[-1]
        return wait_for(
            client("stepfunctions"),
            arn,
            timeout=timeout,
            on_state=lambda state: on_state(name, state),
        )

    def download_report(self, execution: str, target: Path) -> Path:
        s3 = client("s3")
        prefix = f"{Zone.REPORTS.prefix()}{execution}/"
        directory = target / execution
        directory.mkdir(parents=True, exist_ok=True)
        for key in list_keys(s3, self.deployment.data_bucket, prefix):
            s3.download_file(self.deployment.data_bucket, key, str(directory / key[len(prefix) :]))
        return directory


def existing_deployment() -> Deployment:
    """The names of an already provisioned deployment, without touching it."""
    account = client("sts").get_caller_identity()["Account"]
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    names = deployment_names(account, region)
    queue_url = client("sqs").get_queue_url(QueueName=LOCAL_TRIGGER_QUEUE)["QueueUrl"]
    return Deployment(
        names.account,
        region,
        names.data_bucket,
        names.artifacts_bucket,
        names.state_machine_arn,
        queue_url,
        names.model_package_group,
    )


def _provisioned() -> bool:
    """Whether the endpoint already holds Facet's state machine (provisioned by someone else)."""
    try:
        existing_deployment()
        names = [m["name"] for m in client("stepfunctions").list_state_machines()["stateMachines"]]
    except client("sqs").exceptions.QueueDoesNotExist:
        return False
    return STATE_MACHINE in names


def _reachable(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
            return True
    except OSError:
        return False


def recorded_endpoint() -> str | None:
    if not ENDPOINT_FILE.exists():
        return None
    endpoint = str(json.loads(ENDPOINT_FILE.read_text())["endpoint"])
    return endpoint if _reachable(endpoint) else None


def record_endpoint(endpoint: str) -> None:
    STATE_DIR.mkdir(exist_ok=True)
    ENDPOINT_FILE.write_text(json.dumps({"endpoint": endpoint, "pid": os.getpid()}))


def forget_endpoint() -> None:
    if ENDPOINT_FILE.exists() and json.loads(ENDPOINT_FILE.read_text()).get("pid") == os.getpid():
        ENDPOINT_FILE.unlink()


@contextlib.contextmanager
def open_session(
    *,
    port: int | None = None,
    fresh: bool = False,
    record: bool = False,
    provision_resources: bool = True,
    provision_options: dict[str, Any] | None = None,
) -> Iterator[Session]:
    """A provisioned deployment on the chosen endpoint; `fresh` always starts an embedded one."""
    external = None if fresh else (os.environ.get("AWS_ENDPOINT_URL") or recorded_endpoint())
    embedded: EmbeddedEmulator | None = None
    saved = os.environ.get("AWS_ENDPOINT_URL")
    try:
        if external:
            os.environ["AWS_ENDPOINT_URL"] = external
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
            endpoint = external
        else:
            embedded = EmbeddedEmulator(port).start()
            endpoint = embedded.endpoint
        if embedded is not None or (provision_resources and not _provisioned()):
            deployment = provision(**(provision_options or {}))
        else:
            deployment = existing_deployment()
        if record and embedded is not None:
            record_endpoint(endpoint)  # only now: other commands may use it from here on
        yield Session(endpoint, deployment, embedded)
    except EMULATOR_GONE_ERRORS as error:
        raise EmulatorGoneError(
            f"the AWS endpoint {os.environ.get('AWS_ENDPOINT_URL')} stopped answering ({error})"
        ) from None
    finally:
        if embedded is not None:
            if record:
                forget_endpoint()
            embedded.stop()
        elif saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
