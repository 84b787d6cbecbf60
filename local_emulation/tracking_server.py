"""The MLflow tracking server the emulator runs where AWS runs a SageMaker MLflow tracking server.

MLflow's tracking server app on 127.0.0.1 (uvicorn, as `mlflow server` runs it), its runs in a
SQLite file of the emulator's work directory and its artifact store the stage's artifacts bucket
in the emulated S3 under the same prefix as in AWS (names.MLFLOW_ARTIFACTS_PREFIX). As with
SageMaker's servers, clients write artifacts to S3 themselves (the server does not proxy them)
and the server reads them back for its UI.

It starts in the background, before provisioning (~3 s, then ~1 s to create its tables); the
training runner waits for it before a job starts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from local_emulation.processes import clean_environment, free_port, stop_group
from local_emulation.tracking_app import PARENT_ENV

log = logging.getLogger("facet.emulation.tracking")
START_TIMEOUT_SECONDS: Final = 90.0
# The server's optional job runner (GenAI evaluation jobs) starts seven worker processes of
# ~190 MB each; Facet uses none of it.
QUIET: Final = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS": "false",
}


class TrackingServerError(Exception):
    """The tracking server exited or did not answer in time."""


@dataclass
class TrackingServer:
    work_dir: Path
    artifact_root: str
    s3_endpoint: str
    credentials: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "mlflow-server.log"

    def start(self) -> TrackingServer:
        """Start the server and return at once (wait_ready waits for it)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        environment = {
            **clean_environment(),
            **self.credentials,
            **QUIET,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
        }
        # What `mlflow server` runs, without the launcher: it imports all of MLflow (~3.5 s of
        # CPU, during the demo's cold start) to start this same app with these variables
        # (mlflow/server/__init__.py::_run_server, mlflow 3.17.2, pinned). Not serving
        # artifacts is the variable's absence (--no-serve-artifacts).
        environment |= {
            "_MLFLOW_SERVER_FILE_STORE": f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}",
            "_MLFLOW_SERVER_ARTIFACT_ROOT": self.artifact_root,
            "_MLFLOW_SGI_NAME": "uvicorn",
        }
        environment[PARENT_ENV] = str(os.getpid())
        command = [sys.executable, "-m", "local_emulation.tracking_app", str(self.port)]
        output = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        log.info("MLflow tracking server starting at %s (log: %s)", self.url, self.log_path)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        assert self.process is not None, "the tracking server was not started"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                self._open_store()
                return
            if self.process.poll() is not None:
                raise TrackingServerError(
                    f"the MLflow tracking server exited with {self.process.returncode} "
                    f"(log: {self.log_path})"
                )
            time.sleep(0.2)
        raise TrackingServerError(
            f"the MLflow tracking server did not answer at {self.url} within {timeout:.0f} s "
            f"(log: {self.log_path})"
        )

    def _open_store(self) -> None:
        """The first request creates the database's tables (~1 s): make it now, not the job's."""
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/experiments/search",
            data=b'{"max_results": 1}',
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None
