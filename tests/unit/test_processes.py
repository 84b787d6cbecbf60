"""The process-tree walk the pipeline benchmark samples memory with (and the test workers widen
their CPUs with)."""

from __future__ import annotations

import subprocess
import time

from local_emulation.processes import process_tree


def test_the_tree_holds_a_process_its_children_and_their_children() -> None:
    # a shell with two children, one of which has a child of its own
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & sh -c 'sleep 30 & wait' & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(tree := process_tree(shell.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tree[0] == shell.pid
        assert len(tree) == len(set(tree)) == 4, tree  # sh, sleep, sh, its sleep (none twice)
    finally:
        for pid in reversed(process_tree(shell.pid)):
            subprocess.run(["kill", str(pid)], check=False)
        shell.wait(10)
    assert process_tree(shell.pid) == [shell.pid]  # an exited process: itself, no children
