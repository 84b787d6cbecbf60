"""LocalStack in host mode, without Docker: install it, start it on 127.0.0.1, stop it.

    python -m local_emulation.localstack install | start | stop | status

localstack-core 2026.3.0's runtime needs Python >= 3.12 (3.13 here, from pyenv) and a few pins
(DESIGN.md §3), so it lives in its own virtualenv, `.venv-localstack`. With Docker and an auth
token (required since 2026-03) the image works too:

    docker run --rm -p 127.0.0.1:4566:4566 -e LOCALSTACK_AUTH_TOKEN=... \\
        localstack/localstack:2026.3.0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from local_emulation.processes import clean_environment, stop_group

REPO: Final = Path(__file__).resolve().parents[1]
VENV: Final = REPO / ".venv-localstack"
STATE: Final = REPO / ".facet" / "localstack.json"
LOG_DIR: Final = Path("build/localstack")  # beside the run's other outputs (build/reports, ...)
VERSION: Final = "2026.3.0"
# One account on both emulators: LocalStack takes a 12-digit access key as the account id
# (the default `test` key gives 000000000000) and moto's default account is this one.
ACCOUNT: Final = "123456789012"
CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": ACCOUNT,
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Creating a Lambda function makes LocalStack prepare its Docker runtime: download the runtime
# init binary from GitHub (into its package directory, unless the package is there) and pull the
# runtime image. Functions cannot run without Docker anyway, so Facet says the package is present
# (an empty marker where LocalStack's package manager looks) and gives LocalStack a `docker`
# command that answers `pull` only: functions become Active and CloudFormation can create them.
LAMBDA_RUNTIME_PACKAGE: Final = "lambda-runtime/v0.1.41-pre/x86_64/var/rapid/init"
ABSENT_DOCKER: Final = REPO / "local_emulation" / "absent_docker.py"
REQUIREMENTS: Final = (
    f"localstack-core[runtime]=={VERSION}",
    "cbor2<6",
    "pyopenssl==25.3.0",
    "cryptography>=45.0.7,<47",
    "service-identity",
)
DEFAULT_PORT: Final = 4566


class LocalStackError(Exception):
    """LocalStack could not be installed, started or reached."""


def _runs(candidate: str) -> bool:
    # pyenv puts shims for every installed version on PATH; a shim for an inactive one fails.
    probe = subprocess.run([candidate, "--version"], capture_output=True, check=False)
    return probe.returncode == 0


def find_python() -> str:
    """A Python >= 3.12 for LocalStack's runtime: pyenv's installed 3.13/3.12, or one on PATH."""
    versions = Path.home() / ".pyenv" / "versions"
    candidates = [
        str(path)
        for pattern in ("3.13*/bin/python3.13", "3.12*/bin/python3.12")
        for path in sorted(versions.glob(pattern), reverse=True)
    ]
    candidates += [found for name in ("python3.13", "python3.12") if (found := shutil.which(name))]
    for candidate in candidates:
        if _runs(candidate):
            return candidate
    raise LocalStackError(
        "LocalStack's host-mode runtime needs Python 3.12 or 3.13; none was found (pyenv, PATH)"
    )


def python() -> Path:
    return VENV / "bin" / "python"


def installed() -> bool:
    if not python().exists():
        return False
    probe = subprocess.run(
        [str(python()), "-c", "import localstack.runtime.main"], capture_output=True, check=False
    )
    return probe.returncode == 0


def install() -> None:
    if installed():
        return
    base = find_python()
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *REQUIREMENTS,
        ],
        check=True,
    )
    if not installed():
        raise LocalStackError(f"localstack-core {VERSION} did not install into {VENV}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_localstack/health", timeout=2) as response:
            services = json.loads(response.read()).get("services", {})
    except (OSError, ValueError):
        return False
    return services.get("s3") in {"available", "running"}


@dataclass
class LocalStack:
    """A LocalStack process this code started (and must stop)."""

    port: int
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds. Its state goes with its data directory, so
        a clean shutdown saves nothing; after `facet rehearse` had deployed into it, LocalStack's
        own took 7 s (busy in its "Stopping all services"), and it sometimes hangs."""
        stop_group(self.process, grace)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def normalized_url(url: str) -> str:
    """`http://host:port` from what a user typed (a trailing slash is fine; a path is not)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s)://host:port URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r} has a path; give the endpoint only, e.g. http://127.0.0.1:4566")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")


def port_of(url: str) -> int:
    parts = urllib.parse.urlsplit(normalized_url(url))
    return parts.port or (443 if parts.scheme == "https" else 80)


def log_path(port: int) -> Path:
    return (LOG_DIR / f"localstack-{port}.log").resolve()


def start(port: int = DEFAULT_PORT, timeout: float = 60.0, log: Path | None = None) -> LocalStack:
    """Start LocalStack on 127.0.0.1:port; its log is kept (default build/localstack/)."""
    install()
    data_dir = Path(tempfile.mkdtemp(prefix="facet-localstack-"))
    package_marker = data_dir / "var/lib/localstack/lib" / LAMBDA_RUNTIME_PACKAGE
    package_marker.parent.mkdir(parents=True)
    package_marker.touch()
    environment = {
        **clean_environment(),
        "DOCKER_CMD": f"{python()} {ABSENT_DOCKER}",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_SERVER": "hypercorn",
        "DNS_ADDRESS": "0",
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(data_dir),
        "LOCALSTACK_VOLUME_DIR": str(data_dir / "volume"),
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
    }
    log = log or log_path(port)
    log.parent.mkdir(parents=True, exist_ok=True)
    output = log.open("wb")
    process = subprocess.Popen(
        [str(python()), "-m", "localstack.runtime.main"],
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running = LocalStack(port, process, data_dir, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            running.stop()
            raise LocalStackError(
                f"LocalStack exited with {process.returncode} while starting (log: {log})"
            )
        if healthy(running.url):
            return running
        time.sleep(0.3)
    running.stop()
    raise LocalStackError(
        f"LocalStack did not become healthy on {running.url} within {timeout:.0f} s (log: {log})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="LocalStack in host mode (no Docker).")
    parser.add_argument("action", choices=["install", "start", "stop", "status"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    if args.action == "install":
        install()
        print(f"LocalStack {VERSION} installed in {VENV}")
    elif args.action == "start":
        running = start(args.port)
        STATE.parent.mkdir(exist_ok=True)
        STATE.write_text(
            json.dumps(
                {
                    "pid": running.process.pid,
                    "port": running.port,
                    "data_dir": str(running.data_dir),
                    "log": str(running.log),
                }
            )
        )
        print(f"LocalStack {VERSION} at {running.url} (pid {running.process.pid})")
        print(f"its log: {running.log}")
        print("stop it with: python -m local_emulation.localstack stop")
    elif args.action == "stop":
        if not STATE.exists():
            print("no LocalStack started by Facet is recorded")
            return
        state = json.loads(STATE.read_text())
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(state["pid"], sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and Path(f"/proc/{state['pid']}").exists():
                time.sleep(0.2)
        shutil.rmtree(state["data_dir"], ignore_errors=True)
        STATE.unlink()
        print("LocalStack stopped")
    else:
        url = f"http://127.0.0.1:{args.port}"
        print(f"LocalStack at {url}: {'healthy' if healthy(url) else 'not answering'}")
        sys.exit(0 if healthy(url) else 1)


if __name__ == "__main__":
    main()
