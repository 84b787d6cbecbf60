"""Time compression of the session's shared emulator, for one test module at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from local_emulation.emulator import EmbeddedEmulator


@contextlib.contextmanager
def rollouts_at(emulator: EmbeddedEmulator, speedup: float) -> Iterator[EmbeddedEmulator]:
    """The emulator with its CodeDeploy stand-in compressing time by `speedup`, then settled and
    put back: the worker's later files share this emulator and expect its default."""
    assert emulator.seams is not None
    codedeploy = emulator.seams.codedeploy
    usual, codedeploy.speedup = codedeploy.speedup, speedup
    try:
        yield emulator
    finally:
        emulator.settle()
        codedeploy.speedup = usual
