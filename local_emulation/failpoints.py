"""Named points where a test can kill the process, to prove that a crash there leaves no
half-done change (the failpoint pattern of etcd's gofail and TiKV's fail-rs).

`FACET_FAILPOINTS=rollback:checked,trigger:started` kills the process with SIGKILL (no cleanup,
no finally blocks: what a power cut or an OOM kill does) when it reaches one of those points.
Unset, a failpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Final

VARIABLE: Final = "FACET_FAILPOINTS"
# Every failpoint in the code, so that a test cannot name one that does not exist.
POINTS: Final = frozenset(
    {
        "rollback:checked",  # every precondition of a rollback holds, nothing written yet
        "rollback:written",  # the registry says Approved, the pointer not yet followed
        "trigger:started",  # an execution started, its trigger message not yet deleted
    }
)


def reach(point: str) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown failpoint {point!r}; known: {sorted(POINTS)}")
    armed = os.environ.get(VARIABLE, "")
    if point in {name.strip() for name in armed.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
