"""Production, defined by one rule that every path obeys: the package the production pointer names.

The pointer is an SSM parameter, and its only writer is the deploy function when the model
registry reports a package's state change (EventBridge: "SageMaker Model Package State Change").
An approval from anywhere — the pipeline's Deploy step, `facet approve` / `facet rollback`, a
person in the SageMaker console, `aws sagemaker update-model-package` — emits that event, so all
of them change production the same way:

- a package approved: it becomes production, and the time of its approval is stamped on it;
- the production package rejected (or set back to pending): the most recently approved of the
  others becomes production, or none.

Serving and the pipeline read the pointer (one GetParameter) instead of listing the registry.
It carries what serving needs to load the model without another call.
"""

from __future__ import annotations

from typing import Any

from contracts.names import PRODUCTION_VERSION_METRIC
from contracts.pointer import ProductionPointer
from training import registry
from training.registry import pointer_to, read_pointer, write_pointer

STATE_CHANGE = "SageMaker Model Package State Change"


def state_change_event(record: registry.PackageRecord, group: str) -> dict[str, Any]:
    """The event the registry emits (its `detail`, as EventBridge delivers it to a target)."""
    return {
        "source": "aws.sagemaker",
        "detail-type": STATE_CHANGE,
        "resources": [record.arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": record.version,
            "ModelPackageArn": record.arn,
            "ModelApprovalStatus": record.status,
        },
    }


def on_state_change(
    event: dict[str, Any],
    *,
    sagemaker: Any,
    ssm: Any,
    cloudwatch: Any,
    group: str,
    parameter: str,
    namespace: str,
) -> tuple[ProductionPointer, str]:
    """Re-point production after a package's state changed; (the pointer, what happened)."""
    detail = event.get("detail") or {}
    arn = str(detail.get("ModelPackageArn", ""))
    changed = registry.describe(sagemaker, arn)
    pointer = read_pointer(ssm, parameter)
    if changed.status == registry.ApprovalStatus.APPROVED:
        if pointer.arn == changed.arn and changed.approved_at:
            return pointer, f"v{changed.version} is production already"
        new = make_production(
            changed,
            sagemaker=sagemaker,
            ssm=ssm,
            cloudwatch=cloudwatch,
            parameter=parameter,
            namespace=namespace,
        )
        return new, f"v{changed.version} is production (approved)"
    elif pointer.arn == changed.arn:
        others = [r for r in registry.list_packages(sagemaker, group) if r.arn != changed.arn]
        fallback = registry.production(others)
        new = pointer_to(fallback) if fallback else ProductionPointer()
        outcome = f"v{changed.version} is {changed.status}: production falls back to " + (
            f"v{fallback.version}, the most recently approved" if fallback else "none"
        )
    else:
        return pointer, f"v{changed.version} is {changed.status}; production unchanged"
    _write(ssm, cloudwatch, parameter, namespace, new)
    return new, outcome


def make_production(
    record: registry.PackageRecord,
    *,
    sagemaker: Any,
    ssm: Any,
    cloudwatch: Any,
    parameter: str,
    namespace: str,
) -> ProductionPointer:
    """`record` is production from now on: stamped with the time, named by the pointer."""
    new = pointer_to(registry.stamp_approval(sagemaker, record))
    _write(ssm, cloudwatch, parameter, namespace, new)
    return new


def _write(
    ssm: Any, cloudwatch: Any, parameter: str, namespace: str, new: ProductionPointer
) -> None:
    write_pointer(ssm, parameter, new)
    if new.version is not None:
        cloudwatch.put_metric_data(
            Namespace=namespace,
            MetricData=[
                {
                    "MetricName": PRODUCTION_VERSION_METRIC,
                    "Value": float(new.version),
                    "Unit": "None",
                }
            ],
        )


def current(sagemaker: Any, ssm: Any, parameter: str) -> registry.PackageRecord | None:
    """The production package, as the pointer names it (None: no production yet)."""
    pointer = read_pointer(ssm, parameter)
    return registry.describe(sagemaker, pointer.arn) if pointer.arn else None
