"""Work the emulator does on its own time (event deliveries, deployments), kept track of so that
it can be waited for: as the AWS services it stands in for, it answers first and acts after."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class BackgroundThreads:
    """Daemon threads started here; `wait` joins them within one shared deadline."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def start(self, target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def busy(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)
