"""A Lambda image's interpreter with the image's libraries already imported.

Every cold start of a local Lambda environment used to start an interpreter that imported
pandas, boto3 and pydantic (a pipeline step, ~0.55 s of its ~0.75 s) or FastAPI, NumPy and
LightGBM (the serving function) before the function's own code. The executor now keeps one
interpreter per set of importable distributions (the runtime image) that has imported the
image's libraries and nothing of the function, and forks it for each new environment. The
forked child takes the environment's variables, standard streams and result pipe, and runs the
same runtime loop as before (`lambda_bootstrap.main`): the function's module and everything it
imports from the task root load fresh on its first invocation, as Lambda's Init does. A function
still cannot import what its image lacks: the image imports its libraries behind the same
`NotInTheImage` finder, so a library whose import needs a missing one is skipped or degrades
exactly as it does in AWS.

Run as a script, this file is that interpreter: it reads one request per message on a Unix
socket (its stdin) with the environment's three descriptors attached (stdin, log, result pipe),
answers each with the child's pid, and writes each child's exit status to the file the request
named. Its own imports are the standard library and `lambda_bootstrap` only.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, NoReturn

if TYPE_CHECKING:
    from local_emulation.forked_children import ForkedChildren

# What a function's image may hold and its handler imports; one the image lacks is skipped.
RUNTIME_LIBRARIES: Final = (
    "numpy",
    "pandas",
    "pydantic",
    "pydantic_settings",
    "boto3",
    "fastapi",
    "mangum",
    "lightgbm",
)
STATUS_POLL_SECONDS: Final = 0.02
_REQUEST_BYTES: Final = 1 << 20  # a function's variables are at most 4 KB in Lambda
# In the image: the environments it forked and has not reaped (loaded by path: see
# forked_children.py).
_CHILDREN: ForkedChildren = runpy.run_path(str(Path(__file__).with_name("forked_children.py")))[
    "ForkedChildren"
]()


class RuntimeProcess:
    """A forked environment, seen from the executor as the subset of `subprocess.Popen` it uses.

    Its parent is the image, which reaps it and writes its exit status; signals go through a
    pidfd, so a pid reused after the environment ended is never signalled."""

    def __init__(
        self, pid: int, stdin: IO[bytes], status: Path, parent: subprocess.Popen[bytes]
    ) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.returncode: int | None = None
        self._status = status
        self._parent = parent  # the image process that forked it (not a later one)
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # it ended already; its status says how
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None:
            if self._status.exists():
                self.returncode = int(self._status.read_text())
            elif self._parent.poll() is not None and self._ended():
                self.returncode = -signal.SIGKILL  # no parent left to say how it ended
            if self.returncode is not None and self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        return self.returncode

    def _ended(self) -> bool:
        """Whether the process has exited (a pidfd reads as ready then), reaped or not."""
        if self._pidfd is None:
            return True
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        return bool(readable)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"environment {self.pid}", timeout or 0)
            time.sleep(STATUS_POLL_SECONDS)
        return code

    def kill(self) -> None:
        if self.poll() is None and self._pidfd is not None:  # an orphan too, if the image died
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


class RuntimeImage:
    """The image interpreter for one set of blocked imports, started by `start` or on first use
    and stopped by `close` (its environments with it)."""

    def __init__(self, python: str, blocked_file: Path | None, work_dir: Path) -> None:
        self.python = python
        self.blocked_file = blocked_file
        self.work_dir = work_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._forks = 0

    def start(self) -> None:
        """Start importing the image's libraries now, so the first cold start does not wait."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> socket.socket:
        if self._process is None or self._process.poll() is not None or self._socket is None:
            self._stop()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            blocked = str(self.blocked_file) if self.blocked_file is not None else ""
            log = self.work_dir / f"runtime-image-{id(self):x}.log"
            with theirs, log.open("ab") as output:
                self._process = subprocess.Popen(
                    [self.python, "-I", "-u", str(Path(__file__).resolve()), blocked],
                    stdin=theirs.fileno(),
                    # A library's warning at import is the image's, not the terminal's.
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.work_dir,
                    # Lambda's runtime starts with little more than these; each environment
                    # brings its function's variables.
                    env={k: os.environ[k] for k in ("PATH", "LANG", "HOME") if k in os.environ},
                )
            self._socket = ours
        return self._socket

    def spawn(
        self, argv: list[str], environment: dict[str, str], log: int, results: int
    ) -> RuntimeProcess:
        """A new environment running `lambda_bootstrap.main` with `argv` (whose result fd is the
        child's copy of `results`), writing to `log`. Both descriptors stay the caller's."""
        with self._lock:
            self._forks += 1
            status = self.work_dir / f"environment-{id(self):x}-{self._forks}.status"
            status.unlink(missing_ok=True)
            request = json.dumps(
                {"argv": argv, "environment": environment, "status": str(status)}
            ).encode()
            for _ in range(2):  # an image that died is started again, once
                channel = self._ensure_started()
                stdin_read, stdin_write = os.pipe()
                try:
                    socket.send_fds(channel, [request], [stdin_read, log, results])
                    answer = channel.recv(4096)
                except OSError:
                    answer = b""
                finally:
                    os.close(stdin_read)
                if answer:
                    pid = int(json.loads(answer)["pid"])
                    assert self._process is not None
                    stdin = os.fdopen(stdin_write, "wb")
                    return RuntimeProcess(pid, stdin, status, self._process)
                os.close(stdin_write)
                self._stop()
            raise RuntimeError("the Lambda runtime image's interpreter did not start")

    def _stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def close(self) -> None:
        """Stop the interpreter; the environments it forked end with it."""
        with self._lock:
            self._stop()


# The image interpreter itself (run as a script).


def _run_environment(request: dict[str, Any], fds: list[int], bootstrap: Any) -> NoReturn:
    """In the forked child: become the environment's runtime and run its loop until stdin
    closes (the executor kills an environment it stops, as Lambda does)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _CHILDREN.running.clear()
    stdin, log, results = fds
    os.dup2(stdin, 0)  # replaces the image's request socket
    os.dup2(log, 1)
    os.dup2(log, 2)
    for fd in (stdin, log):
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["environment"])
    time.tzset()
    tempfile.tempdir = None  # a library's import may have settled it from the image's variables
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)  # type: ignore[union-attr]
    sys.argv[:] = [bootstrap.__file__, *request["argv"], str(results)]
    try:
        code = bootstrap.main()
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _serve(channel: socket.socket, libraries: list[str]) -> tuple[dict[str, Any], list[int]] | None:
    """Answer requests until the channel closes; in a forked child, return its request.

    The libraries are imported one at a time while no request waits: an environment asked for
    early is forked with those imported so far, and its handler imports the rest itself."""
    server, importing = os.getpid(), list(libraries)
    try:
        while True:
            if not _CHILDREN.wait_for_request(channel, importing, 0.05):
                continue
            data, fds, _, _ = socket.recv_fds(channel, _REQUEST_BYTES, 3)
            if not data:
                return None
            request = json.loads(data)
            # The child's collections then skip the image's own objects (its libraries', as in
            # the training image), and leave their pages shared with the image instead of
            # writing to each one's header.
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                channel.close()
                return request, fds
            for fd in fds:
                os.close(fd)
            _CHILDREN.add(pid, request["status"])
            channel.send(json.dumps({"pid": pid}).encode())
    finally:
        if os.getpid() == server:
            _CHILDREN.end(os.kill)


def main() -> None:
    # Ctrl-C in the terminal reaches the environments (this group) themselves; the image
    # ends when the executor closes its channel.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec = importlib.util.spec_from_file_location(
        "lambda_bootstrap", Path(__file__).with_name("lambda_bootstrap.py")
    )
    assert spec is not None and spec.loader is not None
    bootstrap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap)
    blocked = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else None
    if blocked is not None:
        sys.meta_path.insert(0, bootstrap.NotInTheImage(frozenset(blocked.read_text().split())))
    served = _serve(socket.socket(fileno=0), list(RUNTIME_LIBRARIES))
    if served is not None:
        _run_environment(*served, bootstrap)
    # The executor closed the channel and waits: tearing down pandas and the rest (~0.5 s)
    # would only delay it.
    os._exit(0)


if __name__ == "__main__":
    main()
