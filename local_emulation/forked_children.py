"""What the emulator's two images (`training_image.py`, `lambda_runtime_image.py`) do as the parent
of the processes they fork: note each child with the file its exit status goes to, write that
status when the child is reaped, and end the children left when the image ends.

Each image runs as a script that imports the standard library only and nothing of the project's
packages (a job or an environment forked from it must find none of them preloaded), so it loads
this file by path rather than as `local_emulation.forked_children`; it imports only the standard
library itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path


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
