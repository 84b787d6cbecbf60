"""The MLflow tracking server the emulator runs where AWS runs a SageMaker MLflow tracking server.

`mlflow server` on 127.0.0.1, its runs in a SQLite file of the emulator's work directory and its
artifact store the stage's artifacts bucket in the emulated S3 under the same prefix as in AWS
(names.MLFLOW_ARTIFACTS_PREFIX). As with SageMaker's servers, clients write artifacts to S3
themselves (the server does not proxy them) and the server reads them back for its UI.

It starts in the background: its first start (with the database migrations) takes ~7 s, which the
first training job, tens of seconds later, does not notice; the training runner waits for it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from local_emulation.emulator import clean_environment, free_port
from local_emulation.processes import stop_group

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
        command = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}",
            "--default-artifact-root",
            self.artifact_root,
            "--no-serve-artifacts",
        ]
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

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
            self.process = None
