"""The local tracking server's process: MLflow's app under uvicorn, stopping with the emulator.

The process asks the kernel for a SIGTERM when its parent (the emulator's process) dies, however
it dies: a Ctrl-C stops the server in order, but a `kill -9` of `facet demo` would otherwise leave
it running. Asked here, after exec, rather than in a pre-exec hook of a threaded parent.
"""

from __future__ import annotations

import os
import sys
from typing import Final

import uvicorn

from local_emulation.processes import die_with_parent

PARENT_ENV: Final = "FACET_TRACKING_PARENT"


def main() -> int:
    if not die_with_parent(int(os.environ[PARENT_ENV])):
        return 0  # the emulator died before the request above: nothing to serve
    uvicorn.run("mlflow.server.fastapi_app:app", host="127.0.0.1", port=int(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
