"""A local API Gateway (REST API, Lambda proxy integration) in front of the serving Lambda handler.

Each HTTP request on 127.0.0.1 becomes an API Gateway REST proxy event (format 1.0: stage prefix,
resource and proxy path parameter, requestContext, single- and multi-value headers and query
strings, base64 bodies for binary media) and is passed to `serving.handler.handler` with a
Lambda-like context; the handler's proxy response becomes the HTTP response.

Workers are separate processes sharing the port (SO_REUSEPORT), each handling one request at a
time, as Lambda execution environments do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from contracts.names import API_STAGE
from local_emulation.emulator import clean_environment

log = logging.getLogger("facet.emulation.gateway")
TEXT_MEDIA: Final = (
    "text/",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
)
ACCOUNT: Final = "123456789012"
API_ID: Final = "local0api1"


@dataclass
class LambdaContext:
    function_name: str = "facet-serving-api"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:facet-serving-api"
    log_group_name: str = "/aws/lambda/facet-serving-api"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + 29)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _is_text(content_type: str) -> bool:
    return any(content_type.lower().startswith(prefix) for prefix in TEXT_MEDIA)


def to_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    stage: str,
    host: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any] | None:
    """The REST API proxy event for a request, or None if the path is outside the stage."""
    parts = urlsplit(target)
    prefix = f"/{stage}"
    if parts.path != prefix and not parts.path.startswith(prefix + "/"):
        return None
    path = parts.path[len(prefix) :] or "/"
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query_single = {k: v for k, v in query} or None
    query_multi: dict[str, list[str]] = {}
    for key, value in query:
        query_multi.setdefault(key, []).append(value)
    lowered = {name.lower(): value for name, value in headers}
    content_type = lowered.get("content-type", "")
    encoded = bool(body) and not (_is_text(content_type) or not content_type)
    try:
        text = body.decode("utf-8") if body and not encoded else None
    except UnicodeDecodeError:
        encoded, text = True, None
    now = dt.datetime.now(dt.UTC)
    request_id = str(uuid.uuid4())
    resource = "/" if path == "/" else "/{proxy+}"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": None if path == "/" else {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local1",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"{prefix}{path}",
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".", maxsplit=1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent"),
                "apiKey": lowered.get("x-api-key"),
            },
            "domainName": host,
            "apiId": API_ID,
        },
        "body": base64.b64encode(body).decode() if encoded else text,
        "isBase64Encoded": encoded,
    }


def from_response(response: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    headers: list[tuple[str, str]] = []
    for name, value in (response.get("headers") or {}).items():
        headers.append((name, str(value)))
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers += [(name, str(v)) for v in values]
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
    return int(response["statusCode"]), headers, raw


def _forbidden(message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return 403, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()


_loops = threading.local()


def _invoke(
    lambda_handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any]
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Call the handler as the Lambda runtime does; a crash becomes API Gateway's 502."""
    if getattr(_loops, "loop", None) is None:
        # Mangum drives the app with asyncio.get_event_loop(), which only the main thread has.
        _loops.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loops.loop)
    try:
        return from_response(lambda_handler(event, LambdaContext()))
    except Exception:
        log.exception("the Lambda handler failed")
        return 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'


def make_request_handler(
    lambda_handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    *,
    stage: str,
    api_key: str | None,
) -> type[BaseHTTPRequestHandler]:
    invoke_lock = threading.Lock()  # one request at a time per worker, like a Lambda environment

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = self.headers.get("Host", "127.0.0.1")
            event = to_event(
                self.command,
                self.path,
                list(self.headers.items()),
                body,
                stage=stage,
                host=host,
                source_ip=self.client_address[0],
            )
            if event is None:
                status, headers, raw = _forbidden("Missing Authentication Token")
            elif (
                api_key
                and event["path"].startswith("/v1/")
                and event["requestContext"]["identity"]["apiKey"] != api_key
            ):
                status, headers, raw = _forbidden("Forbidden")
            else:
                with invoke_lock:
                    status, headers, raw = _invoke(lambda_handler, event)
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in {"content-length", "connection"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle  # noqa: N815

    return Handler


class ReusePortServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client hung up (load generators do at the end): not an error of ours
        super().handle_error(request, client_address)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve_worker(port: int, stage: str, api_key: str | None) -> None:
    """One gateway worker (run in its own process): stops on SIGTERM, flushing inference logs."""
    from serving.app import default_app
    from serving.handler import handler as lambda_handler

    server = ReusePortServer(
        ("127.0.0.1", port), make_request_handler(lambda_handler, stage=stage, api_key=api_key)
    )

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        default_app().state.inference_log.close()


class Gateway:
    """Worker processes on 127.0.0.1:port; the environment says where the registry and lake are."""

    def __init__(
        self,
        port: int,
        *,
        workers: int = 2,
        stage: str = API_STAGE,
        api_key: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.port, self.workers, self.stage, self.api_key = port, workers, stage, api_key
        self.environment = environment or dict(os.environ)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.url = f"http://127.0.0.1:{port}/{stage}"

    @classmethod
    def for_local_model(
        cls,
        model_dir: str | os.PathLike[str],
        port: int,
        *,
        workers: int = 1,
        api_key: str | None = None,
    ) -> Gateway:
        """Serve one local artifact directory (no registry, no AWS): tests and benchmarks."""
        environment = clean_environment()
        environment |= {
            "FACET_MODEL_DIR": str(model_dir),
            "FACET_DATA_BUCKET": "",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        return cls(port, workers=workers, api_key=api_key, environment=environment)

    def start(self, timeout: float = 60) -> Gateway:
        command = [
            sys.executable,
            "-m",
            "local_emulation.gateway",
            "--port",
            str(self.port),
            "--stage",
            self.stage,
        ]
        if self.api_key:
            command += ["--api-key", self.api_key]
        for _ in range(self.workers):
            self.processes.append(subprocess.Popen(command, env=self.environment))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                self.stop()
                raise RuntimeError("a gateway worker exited while starting")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the gateway did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes = []

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="One worker of the local API Gateway.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stage", default=API_STAGE)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    serve_worker(args.port, args.stage, args.api_key)


if __name__ == "__main__":
    main()
