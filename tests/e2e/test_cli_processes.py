"""The CLI as a user runs it: separate processes, real ports on 127.0.0.1, stopped by the test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.schema import example_diamond
from local_emulation.processes import clean_environment, free_port
from local_emulation.simulate import make_batches
from tests.e2e.kept_demo import kept_demo

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


@contextlib.contextmanager
def _provisioned_emulator(directory: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`facet emulator` in its own process, up and provisioned; stopped on the way out."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    scratch = directory / "tmp"  # a killed emulator cannot remove its work directory itself
    scratch.mkdir()
    emulator = subprocess.Popen(
        [*FACET, "emulator", "--port", str(port)],
        cwd=directory,
        env=_environment(TMPDIR=str(scratch)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_up(endpoint, emulator)
        while not (directory / ".facet" / "endpoint.json").exists():
            time.sleep(0.3)  # provisioned
        yield endpoint, emulator
    finally:
        _stop(emulator)


def test_emulator_gone_mid_run_gives_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    # GIVEN an emulator in its own process, and a batch being ingested through it
    with _provisioned_emulator(tmp_path) as (endpoint, emulator):
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
        # AND the MLflow tracking server it started does not outlive it
        assert _servers_started_in(tmp_path, within=10) == []


@pytest.mark.parametrize(
    ("taken", "named"),
    [("--port", "the embedded AWS emulator"), ("--api-port", "the price API, --api-port")],
)
def test_demo_on_a_taken_port_says_so_at_once_instead_of_hanging(
    tmp_path: Path, taken: str, named: str
) -> None:
    # GIVEN a port someone else listens on (a kept demo, say), the other one free
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"--port": str(free_port()), "--api-port": str(free_port())} | {taken: str(busy)}
        # WHEN a demo is asked to use it
        started = time.monotonic()
        demo = subprocess.run(
            [*FACET, "demo", "--exit", *(x for pair in ports.items() for x in pair)],
            cwd=tmp_path,
            env=_environment(TMPDIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    # THEN it stops before provisioning anything, naming the port and what needed it
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert f"port {busy} on 127.0.0.1 ({named}) is in use" in demo.stderr
    assert "Traceback" not in demo.stdout + demo.stderr
    assert "resources provisioned" not in demo.stdout
    # AND leaves no emulator work directory behind
    assert list(tmp_path.glob("facet-emulator-*")) == []
    assert time.monotonic() - started < 30


def _servers_started_in(directory: Path, within: float) -> list[int]:
    """Local MLflow tracking servers started from `directory`, still running after `within` s."""
    deadline = time.monotonic() + within
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                command = (entry / "cmdline").read_bytes()
                working = str((entry / "cwd").readlink())
            except (OSError, ValueError):
                continue
            serves = b"local_emulation.tracking_app" in command or b"mlflow.server" in command
            if serves and working == str(directory):
                found.append(int(entry.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_serve_stops_on_ctrl_c_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A process may inherit SIGINT ignored (some runners start children so): Python then never
    raises KeyboardInterrupt, and `facet serve` used to run on until killed."""
    api_port = free_port()
    with _provisioned_emulator(tmp_path):
        serving = subprocess.Popen(
            [*FACET, "serve", "--port", str(api_port), "--workers", "1"],
            cwd=tmp_path,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_ignore_sigint,  # noqa: PLW1509 (only sets a signal disposition)
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{api_port}/prod/health", timeout=2
                    ):
                        break
                except OSError:
                    assert serving.poll() is None, serving.communicate()[0]
                    time.sleep(0.3)
            serving.send_signal(signal.SIGINT)
            output, _ = serving.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serving.pid, signal.SIGKILL)
            raise AssertionError(
                f"facet serve ignored Ctrl-C:\n{serving.communicate()[0]}"
            ) from None
        assert serving.returncode == 0, output
        assert "Traceback" not in output
    # AND the emulator, stopped as a service manager stops it (SIGTERM), left no work directory
    assert list((tmp_path / "tmp").iterdir()) == []


def test_demo_runs_end_to_end_from_a_cold_start(tmp_path: Path) -> None:
    """With --api-key the demo's API asks for the key, as partners see the cloud API."""
    port, api_port = free_port(), free_port()
    arguments = ["--batches", "1", "--rows", "2000", "--port", str(port)]
    arguments += ["--api-port", str(api_port), "--api-key", "partner-key-1"]
    with kept_demo(arguments, tmp_path, _environment()) as demo:
        output = demo.output
        assert "Approved (production)" in output
        # production is when the deploy function wrote the pointer: after provisioning, before
        # the first run (which writes its report afterwards) ended
        first = re.search(
            r"first production model ([\d.]+) s after a cold start \(the production pointer "
            r"named v1\); the first batch's run, report and all, ended at ([\d.]+) s",
            output,
        )
        provisioned = re.search(r"resources provisioned \(([\d.]+) s\)", output)
        assert first and provisioned, output
        assert float(provisioned[1]) < float(first[1]) <= float(first[2]), output
        assert "the example stone: $" in output  # the demo called its API with the key
        assert "-H 'x-api-key: partner-key-1'" in output
        # the last act, at the emulator's default time compression: the mislabelled candidate's
        # canary is rolled back by its price-disagreement alarm while traffic flows
        rolled_back = [line for line in output.splitlines() if " rolled back: " in line]
        assert any("facet-dev-rollout-price-disagreement" in line for line in rolled_back), output
        assert "0 failed; production is unchanged" in output
        body = json.dumps(example_diamond()).encode()
        url = f"http://127.0.0.1:{api_port}/prod/v1/prices"
        headers = {"Content-Type": "application/json"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30)
        assert refused.value.code == 403
        keyed = urllib.request.Request(url, body, headers | {"x-api-key": "partner-key-1"})
        with urllib.request.urlopen(keyed, timeout=30) as response:
            assert json.loads(response.read())["price_usd"] > 0
    process = demo.process
    assert process.returncode == 0
    assert not (tmp_path / ".facet" / "endpoint.json").exists()
    reports = list((tmp_path / "build" / "reports").glob("*/report.md"))
    assert len(reports) == 2
