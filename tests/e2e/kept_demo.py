"""`facet demo --keep-running` in its own process, for tests that use what it keeps up."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY = "Everything stays up"


@dataclass
class KeptDemo:
    process: subprocess.Popen[str]
    output: str  # everything the demo printed until it was ready


@contextlib.contextmanager
def kept_demo(
    arguments: list[str], cwd: Path, environment: dict[str, str], timeout: float = 600
) -> Iterator[KeptDemo]:
    """The demo, once it says everything stays up; stopped with SIGTERM (Ctrl-C's twin) after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local_emulation", "demo", *arguments, "--keep-running"],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (line := process.stdout.readline()):
            lines.append(line)
            if READY in line:
                break
        output = "".join(lines)
        if READY not in output:
            raise AssertionError(f"the demo did not come up:\n{output}")
        # Keep reading what the demo prints while the test runs: a full pipe would block the
        # demo (and the emulator it hosts) on its next print.
        stream = process.stdout
        drain = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
        drain.start()
        yield KeptDemo(process, output)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
