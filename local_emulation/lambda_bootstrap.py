"""A Lambda execution environment's runtime loop, as the Lambda Python runtime runs it.

    python -I -u lambda_bootstrap.py <task_root> <module.function> <result_fd>

Reads one invocation per line on stdin ({"request_id", "timeout", "event"}), calls the handler,
and writes one outcome per line to the file descriptor <result_fd>; print() output and tracebacks
go to stdout/stderr, the environment's log. The handler's module is imported on the first
invocation and kept, so module-level state (clients, loaded models) persists between invocations
exactly as in a warm Lambda environment; an import that fails is retried on the next invocation,
as Lambda re-initializes after an init error.

Standalone on purpose (stdlib only, no project imports): the function's own code, extracted from
its deployment zip into <task_root>, is first on sys.path, exactly as in /var/task. If the
emulator wrote <task_root>/.blocked-imports (the top-level modules installed here that the
function's image or package does not have), importing one fails as it would in AWS.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BLOCKED_IMPORTS_FILE = ".blocked-imports"


class NotInTheImage(importlib.abc.MetaPathFinder):
    """Refuses the top-level modules the function would not find in AWS."""

    def __init__(self, blocked: frozenset[str]) -> None:
        self.blocked = blocked

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None and fullname in self.blocked:
            raise ModuleNotFoundError(
                f"No module named '{fullname}' (installed on this machine, but not in the "
                "function's image or package)",
                name=fullname,
            )
        return None


class LambdaContext:
    """The attributes and method of the Lambda Python runtime's context object."""

    def __init__(self, request_id: str, timeout: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("FACET_LOCAL_FUNCTION_ARN", "")
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    task_root, handler_path, result_fd = sys.argv[1:4]
    sys.path.insert(0, task_root)
    os.chdir(task_root)
    blocked = Path(task_root) / BLOCKED_IMPORTS_FILE
    if blocked.is_file():
        sys.meta_path.insert(0, NotInTheImage(frozenset(blocked.read_text().split())))
    results = os.fdopen(int(result_fd), "w", encoding="utf-8")
    handler: Callable[[Any, LambdaContext], Any] | None = None
    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["request_id"]
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        try:
            if handler is None:
                module_name, function_name = handler_path.rsplit(".", 1)
                handler = getattr(importlib.import_module(module_name), function_name)
            event = json.loads(request["event"] or "{}")
            result = handler(event, LambdaContext(request_id, float(request["timeout"])))
            outcome = {"ok": True, "payload": result}
        except Exception as error:  # the runtime reports every exception as the function's error
            outcome = {
                "ok": False,
                "payload": {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "requestId": request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                },
            }
            traceback.print_exc()
        sys.stderr.flush()
        print(f"END RequestId: {request_id}", flush=True)
        results.write(json.dumps(outcome, default=str) + "\n")
        results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
