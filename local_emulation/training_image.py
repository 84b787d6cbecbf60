"""A training container's interpreter with the image's libraries already imported.

A SageMaker framework container starts a fresh interpreter for every job, and the first second
and a half of each local job went to importing pandas, scikit-learn and LightGBM (and its
tracking writer's first three seconds to MLflow and matplotlib). The emulator keeps one
interpreter per runner (the image) that has imported those libraries and nothing of the
project, and forks it for each job. The forked child takes the job's environment, working
directory, argv, sys.path and log files, becomes its own process group, and runs the submitted
program as `__main__`; the program and everything it imports from /opt/ml/code load fresh, as
in the container. It then shuts down as an interpreter does where a program can see it (threads
joined, atexit callbacks run, output flushed), without tearing down the image's modules, and
its exit status is the job's.

Run as a script, this file is that interpreter: it reads one JSON request per line on stdin,
answers each with the child's pid, and writes each child's exit status to the file the request
named. Its own imports are the standard library only.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import gc
import importlib
import importlib.machinery
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

if TYPE_CHECKING:
    from local_emulation.forked_children import ForkedChildren

# What the framework image installs and every job imports; a missing one is skipped.
IMAGE_LIBRARIES: Final = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pydantic",
    "sklearn.linear_model",
    "sklearn.tree",
    "lightgbm",
    # The tracking writer's, which it inherits from the job when forked.
    "mlflow",
    "matplotlib.pyplot",
    "boto3",
)
STATUS_POLL_SECONDS: Final = 0.05
# In the image: the jobs it forked and has not reaped, each the leader of its process group
# (loaded by path: see forked_children.py).
_CHILDREN: ForkedChildren = runpy.run_path(str(Path(__file__).with_name("forked_children.py")))[
    "ForkedChildren"
]()


@dataclass(frozen=True)
class ProgramResult:
    returncode: int | None  # None: stopped at the job's maximum runtime
    stdout: str
    stderr: str


class TrainingImage:
    """The image interpreter, started on first use (or by `start`) and stopped by `close`."""

    def __init__(self, python: str, work_dir: Path) -> None:
        self.python = python
        self.work_dir = work_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start importing the image's libraries now, so the first job does not wait for them."""
        with self._lock:
            self._ensure_started()

    @property
    def pid(self) -> int | None:
        """The image interpreter's process id, while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [self.python, str(Path(__file__).resolve()), *IMAGE_LIBRARIES],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=self.work_dir,
                # A container starts with little more than PATH; the job brings the rest.
                env={"PATH": "/usr/bin:/bin"},
            )
        return self._process

    def _fork(self, request: dict[str, Any]) -> tuple[int, subprocess.Popen[bytes]]:
        with self._lock:
            for _ in range(2):  # an image that died is started again, once
                process = self._ensure_started()
                assert process.stdin is not None and process.stdout is not None
                try:
                    process.stdin.write(json.dumps(request).encode() + b"\n")
                    process.stdin.flush()
                    answer = process.stdout.readline()
                except BrokenPipeError:
                    answer = b""
                if answer:
                    return int(json.loads(answer)["pid"]), process
                process.wait()
            raise RuntimeError("the training image's interpreter did not start a job")

    def run(
        self, program: str, cwd: Path, environment: dict[str, str], logs: Path, timeout: float
    ) -> ProgramResult:
        """Run `python program` in `cwd` with exactly `environment`, in a forked child."""
        stdout, stderr, status = (logs / name for name in ("stdout", "stderr", "status"))
        logs.mkdir(parents=True, exist_ok=True)
        status.unlink(missing_ok=True)  # a status left from an earlier job in the same place
        pid, process = self._fork(
            {
                "program": program,
                "cwd": str(cwd),
                "environment": environment,
                "stdout": str(stdout),
                "stderr": str(stderr),
                "status": str(status),
            }
        )
        returncode = _wait_for_status(status, process, time.monotonic() + timeout)
        if returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _wait_for_status(status, process, time.monotonic() + 10)

        def text(path: Path) -> str:
            return path.read_text(errors="replace") if path.exists() else ""

        return ProgramResult(returncode, text(stdout), text(stderr))

    def close(self) -> None:
        """Stop the interpreter; a job still running is killed with it."""
        with self._lock:
            if self._process is not None:
                assert self._process.stdin is not None and self._process.stdout is not None
                self._process.stdin.close()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
                self._process.stdout.close()
                self._process = None


def _wait_for_status(status: Path, process: subprocess.Popen[bytes], deadline: float) -> int | None:
    """The exit status the image wrote for the job; -9 if the image died; None at the deadline."""
    while time.monotonic() < deadline:
        if status.exists():
            return int(status.read_text())
        if process.poll() is not None:
            return int(status.read_text()) if status.exists() else -signal.SIGKILL
        time.sleep(STATUS_POLL_SECONDS)
    return None


# The image interpreter itself (run as a script).


def _run_job(request: dict[str, Any], image_path: list[str]) -> None:
    """In the forked child: become the job's interpreter and run its program as __main__."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request["cwd"])
    program = Path(request["program"]).absolute()
    os.environ.clear()
    os.environ.update(request["environment"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.close(null)
    # The streams already wrap fds 0-2, which now point at the job's files; `python -u` writes
    # through, as PYTHONUNBUFFERED asks of a fresh interpreter.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
    python_path = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = [str(program.parent), *python_path, *image_path]
    sys.argv[:] = [request["program"]]
    # As the interpreter runs a script: a new __main__ whose __file__ is the absolute path.
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=str(program), __builtins__=builtins, __cached__=None)
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", str(program))
    sys.modules["__main__"] = main
    try:
        exec(compile(program.read_bytes(), str(program), "exec"), main.__dict__)
        code = 0
    except SystemExit as exit_request:
        code = _exit_code(exit_request.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        code = -signal.SIGINT  # the interpreter ends itself with the signal, as a shell expects
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _shut_down(code)


def _exit_code(code: object) -> int:
    """What the interpreter exits with for `sys.exit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _shut_down(code: int) -> NoReturn:
    """The interpreter's shutdown as a program can observe it: its threads joined, its atexit
    callbacks run (multiprocessing's, logging's), its output flushed. Tearing down the image's
    ~3,000 modules, which the program never sees, would add ~1 s to every job."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _serve(libraries: list[str]) -> dict[str, Any] | None:
    """Answer requests until stdin closes; in a forked child, return its request instead.

    The libraries are imported one at a time while no request waits: a job asked for early is
    forked when the library being imported is in, with those imported so far, and imports the
    rest itself, as it would anyway."""
    server = os.getpid()
    pending, importing = b"", list(libraries)
    try:
        while True:
            if not _CHILDREN.wait_for_request(0, importing, STATUS_POLL_SECONDS):
                continue
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return None
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                # The child's collections then skip the image's own objects (~270,000 after its
                # imports: 0.11 s of a training job's 0.12 s of collecting), and leave their pages
                # shared with the image instead of writing to each one's header.
                gc.freeze()
                pid = os.fork()
                if pid == 0:
                    return request
                _CHILDREN.add(pid, request["status"])
                os.write(1, json.dumps({"pid": pid}).encode() + b"\n")
    finally:
        if os.getpid() == server:
            _CHILDREN.end(os.killpg)


def _interrupt_jobs(*_: object) -> None:
    """Ctrl-C in the terminal reaches the image (its parent's process group): pass it on to the
    jobs, each in a group of its own, as the terminal would have, and keep serving."""
    _CHILDREN.signal_all(os.killpg, signal.SIGINT)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, _interrupt_jobs)
    image_path = sys.path[1:]  # the interpreter's own path, without this script's directory
    request = _serve(sys.argv[1:])
    if request is not None:
        _run_job(request, image_path)
    # The runner closed stdin and waits: tearing down pandas, LightGBM, MLflow and the rest
    # would only delay it (as the Lambda runtime image does).
    os._exit(0)


if __name__ == "__main__":
    main()
