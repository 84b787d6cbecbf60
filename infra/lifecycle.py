"""What happens to each stateful resource when a stack is deleted, decided once, with the reason.

Every stateful resource applies its policy from here; docs/architecture.md ("Deletion and
redeploy") lists the same table; tests/infra/test_stacks.py checks the templates against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import RemovalPolicy


@dataclass(frozen=True)
class Lifecycle:
    policy: RemovalPolicy
    why: str


DATA: Final = Lifecycle(
    RemovalPolicy.RETAIN,
    "appraisals, datasets, reports and model artifacts outlive any deployment; the registry's "
    "packages point at the artifacts",
)
KEYS: Final = Lifecycle(
    RemovalPolicy.RETAIN, "a deleted key makes every object it encrypted unreadable"
)
MODEL_REGISTRY: Final = Lifecycle(
    RemovalPolicy.RETAIN,
    "every model's lineage and decision; CloudFormation cannot delete a group that still holds "
    "packages, so a delete would fail half-way",
)
PRODUCTION_POINTER: Final = Lifecycle(
    RemovalPolicy.DESTROY,
    "derived from the registry: re-created empty on redeploy, and the next approval event "
    "(re-approve production once) points it again",
)
OPERATIONAL: Final = Lifecycle(
    RemovalPolicy.DESTROY,
    "logs with their own retention, dead-letter queues, the state machine: nothing to keep",
)
