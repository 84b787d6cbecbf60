"""The CLI as a user runs it: separate processes, real ports on 127.0.0.1, stopped by the test."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from local_emulation.emulator import clean_environment, free_port
from local_emulation.simulate import make_batches

pytestmark = pytest.mark.slow
FACET = [sys.executable, "-m", "local_emulation"]


def _environment(**extra: str) -> dict[str, str]:
    environment = clean_environment()
    return environment | extra


def _wait_until_up(endpoint: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"emulator at {endpoint} did not come up")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_emulator_gone_mid_run_gives_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    # GIVEN an emulator in its own process, and a batch being ingested through it
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen(
        [*FACET, "emulator", "--port", str(port)],
        cwd=tmp_path,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_up(endpoint, emulator)
        while not (tmp_path / ".facet" / "endpoint.json").exists():
            time.sleep(0.3)  # provisioned
        batch = make_batches(1, rows=1000)[0].write(tmp_path)
        ingest = subprocess.Popen(
            [*FACET, "ingest", str(batch)],
            cwd=tmp_path,
            env=_environment(AWS_ENDPOINT_URL=endpoint),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # WHEN the emulator dies while the pipeline runs
        time.sleep(6)
        emulator.kill()
        started = time.monotonic()
        output, _ = ingest.communicate(timeout=90)
        # THEN the command stops promptly with a message saying what happened
        assert time.monotonic() - started < 60
        assert ingest.returncode == 3, output
        assert f"the AWS endpoint {endpoint} stopped answering" in output
        assert "Traceback" not in output
    finally:
        _stop(emulator)


def test_demo_runs_end_to_end_from_a_cold_start(tmp_path: Path) -> None:
    port = free_port()
    completed = subprocess.run(
        [*FACET, "demo", "--batches", "1", "--rows", "2000", "--exit", "--port", str(port)],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Approved (production)" in output
    assert "first production model" in output
    assert not (tmp_path / ".facet" / "endpoint.json").exists()
    reports = list((tmp_path / "build" / "reports").glob("*/report.md"))
    assert len(reports) == 2
