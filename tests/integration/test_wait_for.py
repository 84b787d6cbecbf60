"""Waiting for an execution on the embedded emulator: each state it enters is reported once, in
order, stamped with the time it was entered, though the history is read only now and then."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import boto3

from local_emulation.emulator import EmbeddedEmulator
from local_emulation.triggers import wait_for


def _started(definition: dict[str, Any]) -> tuple[Any, str]:
    sfn, iam = boto3.client("stepfunctions"), boto3.client("iam")
    suffix = uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=f"wait-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = sfn.create_state_machine(
        name=f"wait-{suffix}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    return sfn, sfn.start_execution(stateMachineArn=machine, name=suffix, input="{}")[
        "executionArn"
    ]


def test_states_are_stamped_with_when_they_were_entered_not_when_they_were_read(
    aws_emulator: EmbeddedEmulator,
) -> None:
    sfn, execution = _started(
        {
            "StartAt": "First",
            "States": {
                "First": {"Type": "Pass", "Next": "Hold"},
                "Hold": {"Type": "Wait", "Seconds": 1, "Next": "Hold again"},
                "Hold again": {"Type": "Wait", "Seconds": 1, "Next": "Last"},
                "Last": {"Type": "Pass", "End": True},
            },
        }
    )
    reads: list[str] = []
    sfn.meta.events.register(
        "before-call.sfn.GetExecutionHistory", lambda **_: reads.append("history")
    )
    reports: list[tuple[str, dt.datetime]] = []

    result = wait_for(
        sfn,
        execution,
        on_state=lambda state, entered: reports.append((state, entered)),
        poll=0.1,
        history_poll=60,  # once at the start and once at the end
    )

    assert result.status == "SUCCEEDED"
    assert len(reads) == 2
    assert [state for state, _ in reports] == ["First", "Hold", "Hold again", "Last"]
    entered = {state: at for state, at in reports}
    # "Hold again" was read at the end, two seconds in; it was entered one second in.
    assert 0.9 <= (entered["Hold again"] - entered["Hold"]).total_seconds() < 1.6
    assert 0.9 <= (entered["Last"] - entered["Hold again"]).total_seconds() < 1.6


def test_without_a_listener_the_history_is_not_read(aws_emulator: EmbeddedEmulator) -> None:
    sfn, execution = _started(
        {"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True}}}
    )
    reads: list[str] = []
    sfn.meta.events.register(
        "before-call.sfn.GetExecutionHistory", lambda **_: reads.append("history")
    )

    assert wait_for(sfn, execution, poll=0.1).status == "SUCCEEDED"
    assert reads == []
