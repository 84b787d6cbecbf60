"""Runs one Lambda invocation in a fresh interpreter, as the Lambda Python runtime does.

    python -I lambda_bootstrap.py <task_root> <module.function> <result_file>   (event on stdin)

Standalone on purpose (stdlib only, no project imports): the function's own code, extracted from
its deployment zip into <task_root>, is first on sys.path, exactly as in /var/task.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from pathlib import Path


class LambdaContext:
    """The attributes and method of the Lambda Python runtime's context object."""

    def __init__(self) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("FACET_LOCAL_FUNCTION_ARN", "")
        self.aws_request_id = os.environ.get("FACET_LOCAL_REQUEST_ID", str(uuid.uuid4()))
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = time.monotonic() + float(
            os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3")
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    task_root, handler_path, result_file = sys.argv[1:4]
    sys.path.insert(0, task_root)
    os.chdir(task_root)
    event = json.loads(sys.stdin.read() or "{}")
    try:
        module_name, function_name = handler_path.rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), function_name)
        result = handler(event, LambdaContext())
        outcome = {"ok": True, "payload": result}
    except Exception as error:  # the runtime reports every exception as the function's error
        outcome = {
            "ok": False,
            "payload": {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "requestId": os.environ.get("FACET_LOCAL_REQUEST_ID", ""),
                "stackTrace": traceback.format_tb(error.__traceback__),
            },
        }
        traceback.print_exc()
    Path(result_file).write_text(json.dumps(outcome, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
