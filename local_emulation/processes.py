"""Child servers the emulation starts in their own process group, and stops with everything
they spawned (LocalStack's runtime, MLflow's launcher and its uvicorn worker)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Final

PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, signal_number: int = signal.SIGTERM) -> bool:
    """Ask the kernel for a signal (SIGTERM: a graceful stop) when the parent dies, however it
    dies (a `kill -9` of the emulator too); False if it is already gone. Asked by the child after
    exec, not in a pre-exec hook of a threaded parent."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal_number)
    return os.getppid() == parent_pid


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the group, then SIGKILL: some servers' own shutdown hangs."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortInUseError(Exception):
    """A port a server of ours is about to listen on is taken."""


def require_free_port(port: int, what: str) -> None:
    """Refuse a taken port before a server is started on it: moto's threaded server waits
    forever for a server thread that died of "Address already in use"."""
    with socket.socket() as probe:
        # As the servers themselves bind: a port held only by connections in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise PortInUseError(
                f"port {port} on 127.0.0.1 ({what}) is in use ({error.strerror}): is another "
                "facet demo or facet serve running? Stop it (Ctrl-C), or choose another port."
            ) from None


def clean_environment() -> dict[str, str]:
    """This process's environment without AWS settings or moto's port: for a child process that
    must find its endpoints itself rather than inherit an emulator's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MOTO_PORT"}


def process_tree(root: int) -> list[int]:
    """A process and all its descendants, from each thread's `children` list: cheaper than
    reading every /proc/<pid>/status of the machine (a sampler must not slow what it measures).
    A process that exits meanwhile is left out."""
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                stack += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found
