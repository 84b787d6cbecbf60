"""The Lambda compute the emulator lacks: run a function's Python handler from its own code.

Each invocation runs in a fresh interpreter (as a cold Lambda would): the deployment zip is
extracted once per code hash, the function's environment is applied, its timeout is enforced,
and the result or error comes back in the Lambda API's shapes. Third-party packages come from
this virtualenv, standing in for the function's layer.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger("facet.emulation.lambda")
BOOTSTRAP: Final = Path(__file__).with_name("lambda_bootstrap.py")
# Variables a Lambda runtime provides that the handlers (through boto3) rely on.
_PASSED_THROUGH: Final = ("PATH", "LANG", "HOME", "TMPDIR")
_LOG_TAIL_BYTES: Final = 4096


@dataclass(frozen=True)
class Invocation:
    function_name: str
    function_arn: str
    handler: str
    code: bytes
    environment: dict[str, str]
    timeout_seconds: float
    memory_mb: int


@dataclass(frozen=True)
class InvocationResult:
    payload: str
    is_error: bool
    logs: str


class LambdaExecutor:
    """Runs invocations; `aws_environment` gives the region, credentials and endpoints to use."""

    def __init__(self, work_dir: Path, aws_environment: dict[str, str]) -> None:
        self.work_dir = work_dir
        self.aws_environment = aws_environment
        self._lock = threading.Lock()

    def _task_root(self, code: bytes) -> Path:
        digest = hashlib.sha256(code).hexdigest()[:16]
        root = self.work_dir / "lambda-code" / digest
        with self._lock:
            if not (root / ".extracted").exists():
                root.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(root)
                (root / ".extracted").touch()
        return root

    def invoke(self, invocation: Invocation, event: object) -> InvocationResult:
        task_root = self._task_root(invocation.code)
        request_id = str(uuid.uuid4())
        environment = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
        environment |= self.aws_environment
        environment |= invocation.environment
        environment |= {
            "AWS_LAMBDA_FUNCTION_NAME": invocation.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(invocation.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(invocation.timeout_seconds),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": invocation.handler,
            "FACET_LOCAL_FUNCTION_ARN": invocation.function_arn,
            "FACET_LOCAL_REQUEST_ID": request_id,
        }
        with tempfile.NamedTemporaryFile(suffix=".json", dir=self.work_dir, delete=False) as handle:
            result_file = Path(handle.name)
        body = event if isinstance(event, str) else json.dumps(event)
        try:
            completed = subprocess.run(
                [
                    sys.executable,
                    "-I",
                    str(BOOTSTRAP),
                    str(task_root),
                    invocation.handler,
                    str(result_file),
                ],
                input=body,
                env=environment,
                capture_output=True,
                text=True,
                timeout=invocation.timeout_seconds,
                check=False,
            )
            logs = completed.stdout + completed.stderr
            text = result_file.read_text() if result_file.stat().st_size else ""
            if not text:
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                    f"status {completed.returncode}",
                }
                return InvocationResult(json.dumps(error), True, logs[-_LOG_TAIL_BYTES:])
            outcome = json.loads(text)
            return InvocationResult(
                json.dumps(outcome["payload"], default=str),
                not outcome["ok"],
                logs[-_LOG_TAIL_BYTES:],
            )
        except subprocess.TimeoutExpired as expired:
            message = f"Task timed out after {invocation.timeout_seconds:.2f} seconds"
            log.warning("%s: %s", invocation.function_name, message)
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: {message}",
            }
            parts = (expired.stdout, expired.stderr)
            output = "".join(p.decode() if isinstance(p, bytes) else (p or "") for p in parts)
            return InvocationResult(json.dumps(error), True, output[-_LOG_TAIL_BYTES:])
        finally:
            result_file.unlink(missing_ok=True)
