"""The Lambda compute the emulator lacks: run a function's Python handler from its own code, in
execution environments that are reused as Lambda reuses them.

An environment is one interpreter running `lambda_bootstrap.py` for one function, code and
configuration, forked from the runtime image for the function's importable distributions
(lambda_runtime_image.py: the image's libraries imported once, the function's code at Init). The
first invocation starts it (a cold start, counted and logged); later invocations reuse it while it
is idle, so module-level state persists between them exactly as in Lambda. Concurrent invocations
open more environments, up to the function's reserved concurrency (beyond it:
TooManyRequestsException, as Lambda throttles). A new code hash or configuration retires the old
environments; a crash or a timeout discards the environment; an environment idle past
`idle_seconds` is stopped. The deployment zip is extracted once per code hash; third-party packages
come from this virtualenv, standing in for the function's image or package. A zip that names the
distributions the function has in AWS (infra.packaging.LOCAL_DISTRIBUTIONS_FILE) may import only
those, their dependencies and its own code: a handler importing something its image lacks fails
here as in AWS, and an optional import (lightgbm's of scikit-learn) is skipped as there.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import select
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import IO, Final

from infra.packaging import LOCAL_DISTRIBUTIONS_FILE, canonical, installed_closure
from local_emulation.lambda_bootstrap import BLOCKED_IMPORTS_FILE
from local_emulation.lambda_runtime_image import RuntimeImage, RuntimeProcess

log = logging.getLogger("facet.emulation.lambda")
# Variables a Lambda runtime provides that the handlers (through boto3) rely on.
_PASSED_THROUGH: Final = ("PATH", "LANG", "HOME", "TMPDIR")
_LOG_TAIL_BYTES: Final = 4096
# Lambda keeps an idle environment for minutes (undocumented, typically 5-15); shorter here, as
# every environment holds an interpreter with the function's imports in this machine's memory.
DEFAULT_IDLE_SECONDS: Final = 120.0
# Lambda's environments live on other machines; here each one is an interpreter with pandas and
# the function's imports (~130-250 MB) on this one. Beyond this many, the least recently used idle
# environment is stopped first (a cold start for that function next time). Enough for the
# pipeline's eight functions and the API: fewer, and a run cycling through them thrashes.
DEFAULT_MAX_ENVIRONMENTS: Final = 10


@cache
def blocked_imports(distributions: tuple[str, ...]) -> frozenset[str]:
    """Top-level modules installed here that none of `distributions` (with dependencies)
    provides. Computed once per list: reading every installed distribution takes ~0.4 s."""
    allowed = installed_closure(distributions)
    return frozenset(
        module
        for module, providers in metadata.packages_distributions().items()
        if not any(canonical(provider) in allowed for provider in providers)
    )


@dataclass(frozen=True)
class Invocation:
    function_name: str
    function_arn: str
    handler: str
    code: bytes
    environment: dict[str, str]
    timeout_seconds: float
    memory_mb: int
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class InvocationResult:
    payload: str
    is_error: bool
    logs: str
    cold_start: bool = False


class ConcurrencyLimitError(Exception):
    """Every environment the function's reserved concurrency allows is busy."""


@dataclass
class Environment:
    function_name: str
    configuration: str  # digest of code, handler and environment: a change retires it
    process: RuntimeProcess
    results: int  # read end of the pipe the runtime writes outcomes to
    log_path: Path
    busy: bool = True
    retired: bool = False
    last_used: float = field(default_factory=time.monotonic)
    invocations: int = 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin,):
            if stream is not None:
                stream.close()
        os.close(self.results)


class LambdaExecutor:
    """Runs invocations; `aws_environment` gives the region, credentials and endpoints to use."""

    def __init__(
        self,
        work_dir: Path,
        aws_environment: dict[str, str],
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
    ) -> None:
        self.work_dir = work_dir
        self.aws_environment = aws_environment
        self.idle_seconds = idle_seconds
        self.max_environments = max_environments
        self.cold_starts: Counter[str] = Counter()
        self._environments: list[Environment] = []
        self._lock = threading.Lock()
        self._runtimes: dict[str, RuntimeImage] = {}
        self._runtimes_lock = threading.Lock()

    def _task_root(self, code: bytes) -> Path:
        digest = hashlib.sha256(code).hexdigest()[:16]
        root = self.work_dir / "lambda-code" / digest
        with self._lock:
            if not (root / ".extracted").exists():
                root.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(root)
                listing = root / LOCAL_DISTRIBUTIONS_FILE
                if listing.is_file():
                    own = {path.name.removesuffix(".py") for path in root.iterdir()}
                    blocked = blocked_imports(tuple(listing.read_text().split())) - own
                    (root / BLOCKED_IMPORTS_FILE).write_text("\n".join(sorted(blocked)))
                (root / ".extracted").touch()
        return root

    def _variables(self, invocation: Invocation, task_root: Path) -> dict[str, str]:
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
        }
        return environment

    def _runtime(self, task_root: Path) -> RuntimeImage:
        """The runtime image for what this code may import (one per set of blocked imports)."""
        blocked = task_root / BLOCKED_IMPORTS_FILE
        key = blocked.read_text() if blocked.is_file() else ""
        with self._runtimes_lock:
            image = self._runtimes.get(key)
            if image is None:
                directory = self.work_dir / "lambda-runtimes"
                directory.mkdir(parents=True, exist_ok=True)
                image = RuntimeImage(
                    sys.executable, blocked if blocked.is_file() else None, directory
                )
                self._runtimes[key] = image
        return image

    def prepare(self, code: bytes) -> None:
        """Extract a function's code and start its runtime image importing its libraries, so
        that its first cold start does not wait for them (called as functions are created).
        Code that is not a zip (an image function's) is left to its first invocation to report."""
        if not zipfile.is_zipfile(io.BytesIO(code)):
            return
        try:
            self._runtime(self._task_root(code)).start()
        except OSError as error:  # only an optimization: the function is created regardless
            log.warning("the Lambda runtime image did not start ahead of time: %s", error)

    def _start(self, invocation: Invocation, configuration: str, task_root: Path) -> Environment:
        read_end, write_end = os.pipe()
        log_dir = self.work_dir / "lambda-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{invocation.function_name}-{uuid.uuid4().hex[:8]}.log"
        log_file = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            process = self._runtime(task_root).spawn(
                [str(task_root), invocation.handler],
                self._variables(invocation, task_root),
                log=log_file,
                results=write_end,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(log_file)
            os.close(write_end)
        return Environment(invocation.function_name, configuration, process, read_end, log_path)

    def _configuration(self, invocation: Invocation) -> str:
        digest = hashlib.sha256(invocation.code)
        for part in (
            invocation.handler,
            json.dumps(invocation.environment, sort_keys=True),
            json.dumps(self.aws_environment, sort_keys=True),
            f"{invocation.timeout_seconds}/{invocation.memory_mb}",
        ):
            digest.update(part.encode())
        return digest.hexdigest()

    def _acquire(self, invocation: Invocation) -> tuple[Environment, bool]:
        """An idle environment for this function and configuration, or a new one."""
        configuration = self._configuration(invocation)
        task_root = self._task_root(invocation.code)
        with self._lock:
            now, stopping = time.monotonic(), []
            for environment in list(self._environments):
                changed = (
                    environment.function_name == invocation.function_name
                    and environment.configuration != configuration
                )
                idle_too_long = now - environment.last_used > self.idle_seconds
                if changed:
                    environment.retired = True
                if not environment.busy and (environment.retired or idle_too_long):
                    self._environments.remove(environment)
                    stopping.append(environment)
            reusable = next(
                (
                    e
                    for e in self._environments
                    if e.function_name == invocation.function_name
                    and e.configuration == configuration
                    and not e.busy
                    and not e.retired
                ),
                None,
            )
            if reusable is not None:
                reusable.busy = True
            else:
                active = sum(
                    1
                    for e in self._environments
                    if e.function_name == invocation.function_name and not e.retired
                )
                limit = invocation.reserved_concurrency
                if limit is not None and active >= limit:
                    raise ConcurrencyLimitError(
                        f"Rate Exceeded: {invocation.function_name} has a reserved concurrency "
                        f"of {limit} and every environment is busy"
                    )
                idle = sorted(
                    (e for e in self._environments if not e.busy), key=lambda e: e.last_used
                )
                while idle and len(self._environments) >= self.max_environments:
                    evicted = idle.pop(0)
                    self._environments.remove(evicted)
                    stopping.append(evicted)
                reusable = self._start(invocation, configuration, task_root)
                self._environments.append(reusable)
                self.cold_starts[invocation.function_name] += 1
        for environment in stopping:
            environment.stop()
        cold = reusable.invocations == 0
        if cold:
            log.info("cold start: %s (pid %s)", invocation.function_name, reusable.process.pid)
        return reusable, cold

    def _release(self, environment: Environment, *, discard: bool) -> None:
        with self._lock:
            environment.busy = False
            environment.last_used = time.monotonic()
            if discard or environment.retired:
                if environment in self._environments:
                    self._environments.remove(environment)
            else:
                return
        environment.stop()

    def invoke(self, invocation: Invocation, event: object) -> InvocationResult:
        environment, cold = self._acquire(invocation)
        request_id = str(uuid.uuid4())
        body = event if isinstance(event, str) else json.dumps(event)
        log_start = environment.log_path.stat().st_size
        request = {"request_id": request_id, "timeout": invocation.timeout_seconds, "event": body}
        environment.invocations += 1
        discard = True
        try:
            stdin: IO[bytes] | None = environment.process.stdin
            assert stdin is not None
            try:
                stdin.write((json.dumps(request) + "\n").encode())
                stdin.flush()
            except BrokenPipeError:
                pass  # the environment died: reading its outcome below reports how
            line = _read_line(environment.results, time.monotonic() + invocation.timeout_seconds)
            if line is None:
                message = f"Task timed out after {invocation.timeout_seconds:.2f} seconds"
                log.warning("%s: %s", invocation.function_name, message)
                environment.process.kill()
                error = {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: {message}",
                }
                return self._result(environment, log_start, json.dumps(error), True, cold)
            if not line:
                code = environment.process.wait()
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                    f"status {code}",
                }
                return self._result(environment, log_start, json.dumps(error), True, cold)
            outcome = json.loads(line)
            discard = False
            payload = json.dumps(outcome["payload"], default=str)
            return self._result(environment, log_start, payload, not outcome["ok"], cold)
        finally:
            self._release(environment, discard=discard)

    @staticmethod
    def _result(
        environment: Environment, log_start: int, payload: str, is_error: bool, cold: bool
    ) -> InvocationResult:
        with environment.log_path.open("rb") as handle:
            handle.seek(log_start)
            logs = handle.read().decode("utf-8", "replace")
        return InvocationResult(payload, is_error, logs[-_LOG_TAIL_BYTES:], cold)

    def environments(self, function_name: str | None = None) -> int:
        """How many environments are alive (for one function, or all)."""
        with self._lock:
            return sum(
                1
                for e in self._environments
                if function_name is None or e.function_name == function_name
            )

    def close(self) -> None:
        """Stop every environment (the emulator stops). One still answering an invocation is
        killed, not closed: that invocation reads its end and releases it, closing it once."""
        with self._lock:
            busy = [e for e in self._environments if e.busy]
            idle = [e for e in self._environments if not e.busy]
            self._environments = []
            for environment in busy:
                environment.retired = True
        # Every one is signalled first, then each awaited: their ends overlap instead of being
        # waited for one after another (ten environments took 0.4 s of the demo's exit).
        for environment in busy + idle:
            environment.process.kill()
        for environment in idle:
            environment.stop()
        with self._runtimes_lock:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            runtime.close()


def _read_line(descriptor: int, deadline: float) -> bytes | None:
    """One line from the runtime: the line, b"" if the runtime exited, None past the deadline."""
    buffer = b""
    while not buffer.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([descriptor], [], [], remaining)
        if not readable:
            return None
        chunk = os.read(descriptor, 65536)
        if not chunk:
            return b""
        buffer += chunk
    return buffer
