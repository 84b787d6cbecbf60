"""The training image: jobs fork from one interpreter that imported the image's libraries, and
each behaves as `python program` in a fresh container would."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_emulation.training_image import IMAGE_LIBRARIES, TrainingImage


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingImage]:
    """An image that has imported every library (it imports them while no job waits)."""
    started = TrainingImage(sys.executable, tmp_path_factory.mktemp("image"))
    code = write_program(
        tmp_path_factory.mktemp("probe"),
        f"import sys; print(all(name in sys.modules for name in {list(IMAGE_LIBRARIES)!r}))",
    )
    deadline = time.monotonic() + 120
    logs = tmp_path_factory.mktemp("probe-logs")
    while started.run("entry.py", code, {}, logs, timeout=60).stdout != "True\n":
        assert time.monotonic() < deadline, "the image never finished importing its libraries"
        time.sleep(0.5)
    yield started
    started.close()


def write_program(directory: Path, source: str, name: str = "entry.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(source))
    return directory


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0 until its parent reaps it.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_a_job_sees_only_its_own_environment_directory_argv_and_path(
    image: TrainingImage, tmp_path: Path
) -> None:
    code = write_program(
        tmp_path / "code",
        """
        import json, os, sys
        print(json.dumps({
            "environment": dict(os.environ),
            "cwd": os.getcwd(),
            "argv": sys.argv,
            "path": sys.path[:2],
            "main": __name__,
            "project_loaded": sorted(
                name for name in ("training", "contracts", "local_emulation") if name in sys.modules
            ),
            "image_loaded": sorted(name for name in sys.modules if name in ("pandas", "lightgbm")),
        }))
        print("to stderr", file=sys.stderr)
        """,
    )
    environment = {"PATH": "/usr/bin:/bin", "SM_MODEL_DIR": "/x", "PYTHONPATH": str(code)}

    result = image.run("entry.py", code, environment, tmp_path / "logs", timeout=60)

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["environment"] == environment
    assert seen["cwd"] == str(code)
    assert seen["argv"] == ["entry.py"]
    assert seen["path"] == [str(code), str(code)]  # the script's directory, then PYTHONPATH
    assert seen["main"] == "__main__"
    # The project's code loads from the job's own directory, never from the image...
    assert seen["project_loaded"] == []
    # ...while the image's libraries are already imported.
    assert seen["image_loaded"] == ["lightgbm", "pandas"]
    assert {"pandas", "lightgbm"} <= set(IMAGE_LIBRARIES)
    assert result.stderr == "to stderr\n"


def test_exit_codes_are_the_programs_own(image: TrainingImage, tmp_path: Path) -> None:
    cases = {
        "import sys; sys.exit(3)": 3,
        "raise ValueError('bad hyperparameter')": 1,
        "import os, signal; os.kill(os.getpid(), signal.SIGTERM)": -signal.SIGTERM,
        "print('fine')": 0,
    }
    for number, (source, expected) in enumerate(cases.items()):
        code = write_program(tmp_path / f"code{number}", source)
        result = image.run("entry.py", code, {}, tmp_path / f"logs{number}", timeout=60)
        assert result.returncode == expected, source
    raised = image.run("entry.py", tmp_path / "code1", {}, tmp_path / "again", timeout=60)
    assert "ValueError: bad hyperparameter" in raised.stderr


def test_a_job_ends_as_an_interpreter_does(image: TrainingImage, tmp_path: Path) -> None:
    # Its threads are joined, then its atexit callbacks run, then its output is flushed.
    code = write_program(
        tmp_path / "code",
        """
        import atexit, sys, threading, time

        atexit.register(lambda: print("atexit ran"))

        def late():
            time.sleep(0.3)
            print("thread finished")

        threading.Thread(target=late).start()
        sys.stdout.write("no newline yet; ")
        """,
    )

    result = image.run("entry.py", code, {}, tmp_path / "logs", timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "no newline yet; thread finished\natexit ran\n"


def test_ctrl_c_reaches_the_running_job_and_the_image_keeps_serving(
    image: TrainingImage, tmp_path: Path
) -> None:
    # The terminal's SIGINT reaches the image (the emulator's process group), not the job (a
    # group of its own): the image passes it on, and prints nothing itself.
    code = write_program(
        tmp_path / "code", "import time\nprint('started', flush=True)\ntime.sleep(600)"
    )
    assert image.pid is not None
    interrupt = threading.Timer(1.5, os.kill, (image.pid, signal.SIGINT))
    interrupt.start()

    result = image.run("entry.py", code, {}, tmp_path / "logs", timeout=60)

    interrupt.join()
    assert result.returncode == -signal.SIGINT
    assert result.stdout == "started\n"
    assert "KeyboardInterrupt" in result.stderr
    after = write_program(tmp_path / "after", "print('still serving')")
    assert image.run("entry.py", after, {}, tmp_path / "after-logs", timeout=60).stdout == (
        "still serving\n"
    )


def test_a_job_past_its_runtime_is_stopped_with_the_processes_it_started(
    image: TrainingImage, tmp_path: Path
) -> None:
    pids = tmp_path / "pids.json"
    code = write_program(
        tmp_path / "code",
        f"""
        import json, os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pids)!r}, "w").write(json.dumps([os.getpid(), child.pid]))
        print("started", flush=True)
        time.sleep(600)
        """,
    )

    started = time.monotonic()
    result = image.run("entry.py", code, {}, tmp_path / "logs", timeout=3)

    assert result.returncode is None
    assert time.monotonic() - started < 15
    assert result.stdout == "started\n"
    job, grandchild = json.loads(pids.read_text())
    deadline = time.monotonic() + 10
    while is_running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(job)
    assert not is_running(grandchild)


def test_a_job_can_spawn_processes_from_its_own_main_module(
    image: TrainingImage, tmp_path: Path
) -> None:
    # The tracking writer is such a process: `spawn` re-imports the job's __main__.
    code = write_program(
        tmp_path / "code",
        """
        import multiprocessing

        def square(queue, value):
            queue.put(value * value)

        if __name__ == "__main__":
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            worker = context.Process(target=square, args=(queue, 7))
            worker.start()
            print("answer", queue.get(timeout=60))
            worker.join()
        """,
    )

    result = image.run("entry.py", code, {"PATH": "/usr/bin:/bin"}, tmp_path / "logs", timeout=90)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "answer 49\n"


def test_an_image_that_died_is_started_again_and_close_ends_it(tmp_path: Path) -> None:
    image = TrainingImage(sys.executable, tmp_path)
    code = write_program(tmp_path / "code", "print('ok')")
    image.start()
    first = image.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)

    result = image.run("entry.py", code, {}, tmp_path / "logs", timeout=60)

    assert result.returncode == 0 and result.stdout == "ok\n"
    second = image.pid
    assert second is not None and second != first
    image.close()
    assert image.pid is None
    assert not is_running(second)
