"""The local tracking server's process: MLflow's app under uvicorn, stopping with the emulator.

The process asks the kernel for a SIGTERM when its parent (the emulator's process) dies, however
it dies: a Ctrl-C stops the server in order, but a `kill -9` of `facet demo` would otherwise leave
it running. Asked here, after exec, rather than in a pre-exec hook of a threaded parent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Final

import uvicorn

PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h
PARENT_ENV: Final = "FACET_TRACKING_PARENT"


def main() -> int:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(os.environ[PARENT_ENV]):
        return 0  # the emulator died before the request above: nothing to serve
    uvicorn.run("mlflow.server.fastapi_app:app", host="127.0.0.1", port=int(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
