"""One instance of a local batch transform job: the serving image's hosting entry point
(serving.sagemaker_serve), in a process that stops when the emulator's process dies."""

from __future__ import annotations

import os
import signal
import sys
from typing import Final

from local_emulation.processes import die_with_parent
from serving import sagemaker_serve

PARENT_ENV: Final = "FACET_TRANSFORM_PARENT"


def main() -> int:
    # SIGKILL, not SIGTERM: uvicorn's graceful stop would finish a mini-batch nobody waits for,
    # and a transform container keeps nothing worth a graceful stop.
    if not die_with_parent(int(os.environ[PARENT_ENV]), signal.SIGKILL):
        return 0
    sagemaker_serve.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
