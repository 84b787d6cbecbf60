"""What happens to each stateful resource when a stack is deleted, decided once, with the reason.

The same for every stage here; the data and its keys depend on the stage (infra/stages.py).
docs/architecture.md ("Deletion and redeploy") lists the table; tests/infra/test_stacks.py checks
the templates against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import RemovalPolicy


@dataclass(frozen=True)
class Lifecycle:
    policy: RemovalPolicy
    why: str


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
