"""Local delivery of the pipeline's triggers, and waiting for executions.

In the cloud the EventBridge rule starts the state machine itself. moto records that target but
does not act on it, so the same rule also feeds an SQS queue, and `drain` turns each message (the
rule's transformed input, identical to what the state machine would get) into an execution.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from contracts.names import RAW_BATCH_EVENT_PATHS, RAW_BATCH_EVENT_TEMPLATE
from local_emulation import failpoints
from pipeline.lake import batch_stamp


class PipelineTimeoutError(Exception):
    """An execution did not finish in the time allowed."""


@dataclass(frozen=True)
class ExecutionResult:
    arn: str
    name: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    seconds: float


def execution_name(run_input: dict[str, Any]) -> str:
    """Unique, readable, and valid (80 chars of [A-Za-z0-9-_]) like the console's."""
    trigger = run_input.get("trigger", "run")
    label = (
        batch_stamp(run_input["key"]) if run_input.get("key") else time.strftime("%Y%m%dT%H%M%S")
    )
    return f"{trigger}-{label}-{uuid.uuid4().hex[:8]}"[:80]


def _lookup(document: Any, path: str) -> Any:
    value = document
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def apply_input_transformer(
    event: dict[str, Any], paths: dict[str, str], template: str
) -> dict[str, Any]:
    """EventBridge's InputTransformer for the dot paths the rule uses; missing paths give ""."""
    text = template
    for name, path in paths.items():
        value = _lookup(event, path)
        text = text.replace(f"<{name}>", json.dumps("" if value is None else str(value))[1:-1])
    return dict(json.loads(text))


def run_input_from_message(body: str) -> dict[str, Any]:
    """The state machine input for a queued event, as the cloud rule's transformer would make it."""
    event = json.loads(body)
    if event.get("source") == "aws.s3":
        return apply_input_transformer(event, RAW_BATCH_EVENT_PATHS, RAW_BATCH_EVENT_TEMPLATE)
    return dict(event)


def start(sfn: Any, state_machine_arn: str, run_input: dict[str, Any]) -> str:
    response = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=execution_name(run_input),
        input=json.dumps(run_input),
    )
    return str(response["executionArn"])


def drain(
    sqs: Any, sfn: Any, queue_url: str, state_machine_arn: str, wait_seconds: int = 0
) -> list[str]:
    """Start one execution per queued trigger; returns their ARNs.

    A message is deleted only once its execution has started: a crash in between redelivers it
    after the queue's visibility timeout, and the batch ledger makes the second run a no-op.
    """
    started: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        ).get("Messages", [])
        if not messages:
            return started
        for message in messages:
            started.append(start(sfn, state_machine_arn, run_input_from_message(message["Body"])))
            failpoints.reach("trigger:started")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        wait_seconds = 0


# The emulator serializes an execution's whole history on each read (~30 ms of its CPU late in a
# run, beside the training job): states are reported in small bursts, each with its own time.
HISTORY_POLL_SECONDS: Final = 1.5


def wait_for(
    sfn: Any,
    execution_arn: str,
    *,
    timeout: float = 600,
    on_state: Callable[[str, dt.datetime], None] | None = None,
    poll: float = 0.5,
    history_poll: float = HISTORY_POLL_SECONDS,
) -> ExecutionResult:
    """Poll until the execution leaves RUNNING. With `on_state`, report each state it enters
    and when it entered it: the history is read every `history_poll` seconds and at the end."""
    started = time.monotonic()
    seen: set[int] = set()
    history_read = -math.inf
    while True:
        description = sfn.describe_execution(executionArn=execution_arn)
        running = description["status"] == "RUNNING"
        history_due = not running or time.monotonic() - history_read >= history_poll
        if on_state is not None and history_due:
            history_read = time.monotonic()
            history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)[
                "events"
            ]
            for event in history:
                details = event.get("stateEnteredEventDetails")
                if details and event["id"] not in seen:
                    seen.add(event["id"])
                    on_state(details["name"], event["timestamp"])
        if not running:
            output = description.get("output")
            return ExecutionResult(
                arn=execution_arn,
                name=description["name"],
                status=description["status"],
                output=json.loads(output) if output else None,
                error=description.get("error"),
                cause=description.get("cause"),
                seconds=time.monotonic() - started,
            )
        if time.monotonic() - started > timeout:
            raise PipelineTimeoutError(
                f"execution {description['name']} still running after {timeout:.0f} s"
            )
        time.sleep(poll)
