"""What the emulator's two images (`training_image.py`, `lambda_runtime_image.py`) do as the parent
of the processes they fork: note each child with the file its exit status goes to, write that
status when the child is reaped, end the children left when the image ends, and, between
requests, import the image's libraries one at a time.

Each image runs as a script that imports the standard library only and nothing of the project's
packages (a job or an environment forked from it must find none of them preloaded), so it loads
this file by path rather than as `local_emulation.forked_children`; it imports only the standard
library itself.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import select
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ForkedChildren:
    """The children an image forked and has not reaped yet: pid -> its status file."""

    def __init__(self) -> None:
        self.running: dict[int, str] = {}

    def add(self, pid: int, status: str) -> None:
        self.running[pid] = status

    def reap(self) -> None:
        """Write the exit status of every child that has ended, atomically (a reader of the
        file sees the whole status or no file)."""
        while self.running:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            status = self.running.pop(pid, None)
            if status is not None:
                partial = Path(f"{status}.partial")
                partial.write_text(str(os.waitstatus_to_exitcode(wait_status)))
                partial.replace(status)

    def wait_for_request(self, source: Any, importing: list[str], poll_seconds: float) -> bool:
        """Whether a request is ready on `source` (a descriptor or socket). Meanwhile ended
        children are reaped and, while no request waits, the next of `importing` is imported (a
        missing one skipped): a child asked for early is forked with those imported so far."""
        readable, _, _ = select.select([source], [], [], 0 if importing else poll_seconds)
        self.reap()
        if not readable and importing:
            with contextlib.suppress(ImportError):
                importlib.import_module(importing.pop(0))
        return bool(readable)

    def signal_all(self, kill: Callable[[int, int], None], signal_number: int) -> None:
        """`kill(pid, signal_number)` for every running child (`os.kill`, or `os.killpg` for
        children that lead a process group of their own)."""
        for pid in list(self.running):
            with contextlib.suppress(ProcessLookupError):
                kill(pid, signal_number)

    def end(self, kill: Callable[[int, int], None]) -> None:
        """Kill every running child and wait for it: the image is ending."""
        self.signal_all(kill, signal.SIGKILL)
        for pid in list(self.running):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.running.clear()
