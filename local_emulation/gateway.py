"""A local API Gateway (REST API, Lambda proxy integration) in front of the serving Lambda handler.

An ASGI app on uvicorn (a real HTTP/1.1 server: chunked bodies, bad Content-Length and unknown
methods are its job) does what API Gateway does before and after the Lambda: it decodes and
normalizes the path once, refuses ambiguous paths, matches the same declared routes the CDK app
creates (contracts.api; anything else does not exist), requires the API key where the route
does, answers CORS preflights, bounds the body at API Gateway's 10 MB, and turns the request into
a REST proxy event (format 1.0: stage, resource, path parameters, requestContext, single- and
multi-value headers and query strings, base64 bodies for binary media) for
`serving.handler.handler`. Its own answers use the API's error shape, as the CDK app's gateway
responses do.

Workers are separate processes sharing the port (SO_REUSEPORT); each runs the handler on one
thread, one request at a time, as a Lambda execution environment does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from contracts.api import (
    API_GATEWAY_MAX_PAYLOAD_BYTES,
    API_KEY_HEADER,
    GATEWAY_ANSWERS,
    PRICE_API_ROUTES,
    Access,
    GatewayResponse,
    PathError,
    Route,
    find_route,
    normalized_segments,
)
from contracts.names import API_STAGE, Env, StageNames
from contracts.settings import Settings
from local_emulation.alias_routing import AliasRouter, ApiMetrics, measured
from local_emulation.processes import clean_environment

log = logging.getLogger("facet.emulation.gateway")
TEXT_MEDIA: Final = (
    "text/",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
)
ACCOUNT: Final = "123456789012"
# How long stopping waits for every worker to flush and exit before killing what is left.
STOP_GRACE_SECONDS: Final = 15.0
# Not in the serving Lambda's package (infra/packaging.py installs serving's requirements only),
# but in this virtualenv: LightGBM imports each one it finds (its scikit-learn, pandas, plotting
# and Dask integrations), ~1.1 s of every worker's start here that the Lambda never pays. Hidden
# from the worker, it imports what the Lambda imports.
ABSENT_FROM_THE_SERVING_PACKAGE: Final = (
    "sklearn",
    "pandas",
    "matplotlib",
    "graphviz",
    "dask",
    "pyarrow",
    "datatable",
    "cffi",
)
API_ID: Final = "local0api1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


SERVING_FUNCTION: Final = StageNames(Settings().stage).serving_function


@dataclass
class LambdaContext:
    function_name: str = SERVING_FUNCTION
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{SERVING_FUNCTION}"
    log_group_name: str = f"/aws/lambda/{SERVING_FUNCTION}"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + 29)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _is_text(content_type: str) -> bool:
    return any(content_type.lower().startswith(prefix) for prefix in TEXT_MEDIA)


def to_event(
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    stage: str,
    host: str,
    resource: str,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The REST API proxy event for a request to `path` (decoded, without the stage), matched to
    the API Gateway resource `resource` (e.g. /v1/prices or /static/{proxy+})."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    pairs = parse_qsl(query, keep_blank_values=True)
    query_multi: dict[str, list[str]] = {}
    for key, value in pairs:
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
    proxy = None
    if resource.endswith("/{proxy+}"):
        fixed = resource[: -len("/{proxy+}")]
        proxy = {"proxy": path[len(fixed) :].lstrip("/")}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v for k, v in pairs} or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": proxy,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local1",
            "deploymentId": "local2",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".", maxsplit=1)[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent"),
                "apiKey": lowered.get(API_KEY_HEADER),
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


def gateway_answer(kind: GatewayResponse, message: str | None = None) -> tuple[int, bytes]:
    """API Gateway's own answer in the API's error shape, as the CDK app's gateway responses."""
    answer = GATEWAY_ANSWERS[kind]
    text = message if message is not None else answer.message
    body = {"error": answer.error, "message": text, "details": [], "request_id": str(uuid.uuid4())}
    return answer.status, json.dumps(body).encode()


@dataclass(frozen=True)
class GatewayConfig:
    stage: str = API_STAGE
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    routes: tuple[Route, ...] = PRICE_API_ROUTES


class GatewayApp:
    """ASGI app standing in for API Gateway; `load_handler` imports the Lambda handler."""

    def __init__(self, config: GatewayConfig, load_handler: Callable[[], LambdaHandler]) -> None:
        self.config = config
        self.load_handler = load_handler
        self.handler: LambdaHandler | None = None
        # One thread per worker: one request at a time, like a Lambda execution environment.
        self.environment = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.router: AliasRouter | None = None
        self.metrics: ApiMetrics | None = None

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            status, headers, body = await self._handle(scope, receive)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        *(
                            (name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in headers
                            if name.lower() not in {"content-length", "connection"}
                        ),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

    async def _lifespan(
        self, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.handler = await asyncio.get_running_loop().run_in_executor(
                    self.environment, self._start_environment
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(
                    self.environment, self._stop_environment
                )
                self.environment.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_environment(self) -> LambdaHandler:
        # Mangum drives the app with asyncio.get_event_loop(): give the Lambda thread its own.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        function = os.environ.get(Env.LOCAL_GATEWAY_FUNCTION.value)
        if function:
            # As API Gateway: invoke the function's alias, whose weights pick the version.
            self.router = AliasRouter(function).start()
            self.metrics = ApiMetrics(Settings().names, self.config.stage).start()
            router = self.router
            return lambda event, context: router.pick().handler(event, context)
        handler = self.load_handler()
        from serving.app import default_app

        # Unlike Lambda, nothing freezes this process between requests, so inference rows are
        # flushed by age in the background as well as by size.
        default_app().state.inference_log.start()
        return handler

    def _stop_environment(self) -> None:
        if self.router is not None:
            self.router.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.router is None:
            _stop_default_environment()

    async def _handle(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lowered = {name.lower(): value for name, value in headers}
        matched = self._match(scope, lowered)
        if not isinstance(matched, tuple):
            return _unpack(matched)
        route, path = matched
        if route is None:  # a CORS preflight: answered here, as API Gateway's mock method does
            return self._preflight(path, lowered.get("origin", ""))
        body = await _read_body(receive, lowered.get("content-length", ""))
        if body is None:
            return _unpack(gateway_answer(GatewayResponse.REQUEST_TOO_LARGE))
        client = scope.get("client") or ("127.0.0.1", 0)
        event = to_event(
            route.method,
            "/" + "/".join(path),
            bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers,
            body,
            stage=self.config.stage,
            host=lowered.get("host", "127.0.0.1"),
            resource=route.path,
            source_ip=str(client[0]),
        )
        started = time.perf_counter()
        answer = await asyncio.get_running_loop().run_in_executor(
            self.environment, self._invoke, event
        )
        if self.metrics is not None:
            self.metrics.record(answer[0], measured(started))
        return answer

    def _match(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[Route | None, tuple[str, ...]] | GatewayResponse | PathAnswer:
        """The route and decoded path (route None for a CORS preflight), or why there is none.

        Authorization is decided here on the same decoded segments the event (and so the app's
        routing) gets: no spelling of a path can reach a route without that route's key check.
        """
        raw_path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        try:
            segments = normalized_segments(raw_path)
        except PathError as error:
            return PathAnswer(str(error))
        if not segments or segments[0] != self.config.stage:
            return GatewayResponse.MISSING_AUTHENTICATION_TOKEN
        path = segments[1:]
        method = str(scope["method"]).upper()
        if method == "OPTIONS" and "access-control-request-method" in headers:
            return None, path
        route = find_route(self.config.routes, method, path)
        if route is None:
            return GatewayResponse.MISSING_AUTHENTICATION_TOKEN
        if (
            route.access is Access.API_KEY
            and self.config.api_key
            and headers.get(API_KEY_HEADER) != self.config.api_key
        ):
            return GatewayResponse.INVALID_API_KEY
        return route, path

    def _invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Call the handler as the Lambda runtime does; a crash becomes API Gateway's 502."""
        assert self.handler is not None, "the lifespan starts the environment first"
        try:
            return from_response(self.handler(event, LambdaContext()))
        except Exception:
            log.exception("the Lambda handler failed")
            status, body = gateway_answer(GatewayResponse.DEFAULT_5XX, "Internal server error")
            return status, [("Content-Type", "application/json")], body

    def _preflight(
        self, segments: tuple[str, ...], origin: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """CORS preflight, answered by the gateway (API Gateway's mock OPTIONS method)."""
        methods = sorted({r.method for r in self.config.routes if r.matches_path(segments)})
        if not methods:
            return _unpack(gateway_answer(GatewayResponse.MISSING_AUTHENTICATION_TOKEN))
        headers = [("Vary", "Origin")]
        if origin.rstrip("/") in self.config.cors_origins:
            headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Methods", ",".join([*methods, "OPTIONS"])),
                ("Access-Control-Allow-Headers", f"content-type,{API_KEY_HEADER}"),
                ("Access-Control-Max-Age", "600"),
            ]
        return 204, headers, b""


@dataclass(frozen=True)
class PathAnswer:
    """A path that cannot be read one way: API Gateway's default 4XX answer, with the reason."""

    reason: str


def _unpack(
    answer: tuple[int, bytes] | GatewayResponse | PathAnswer,
) -> tuple[int, list[tuple[str, str]], bytes]:
    if isinstance(answer, PathAnswer):
        answer = gateway_answer(
            GatewayResponse.DEFAULT_4XX,
            f"The request path cannot be read one way: {answer.reason}.",
        )
    elif isinstance(answer, GatewayResponse):
        answer = gateway_answer(answer)
    status, body = answer
    return status, [("Content-Type", "application/json")], body


async def _read_body(receive: Callable[[], Awaitable[Message]], declared: str) -> bytes | None:
    """The body, or None once it is over API Gateway's payload limit (reading stops there)."""
    if declared.isdigit() and int(declared) > API_GATEWAY_MAX_PAYLOAD_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > API_GATEWAY_MAX_PAYLOAD_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _load_serving_handler() -> LambdaHandler:
    from serving.handler import handler

    return handler  # type: ignore[no-any-return]


def _stop_default_environment() -> None:
    from serving.app import default_app

    default_app().state.inference_log.close()


def serve_worker(port: int, config: GatewayConfig) -> None:
    """One gateway worker (its own process); stops on SIGTERM/SIGINT, flushing inference logs."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = uvicorn.Server(
        uvicorn.Config(
            GatewayApp(config, _load_serving_handler),
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,
            h11_max_incomplete_event_size=64 * 1024,
        )
    )
    server.run(sockets=[sock])


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
        self._answered = False
        self.url = f"http://127.0.0.1:{port}/{stage}"

    @classmethod
    def for_local_model(
        cls,
        model_dir: str | os.PathLike[str],
        port: int,
        *,
        workers: int = 1,
        api_key: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> Gateway:
        """Serve one local artifact directory (no registry; no lake unless `environment` names
        one): tests and benchmarks."""
        base = clean_environment()
        base |= {
            "FACET_MODEL_DIR": str(model_dir),
            "FACET_DATA_BUCKET": "",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        return cls(port, workers=workers, api_key=api_key, environment=base | (environment or {}))

    @property
    def started(self) -> bool:
        return bool(self.processes)

    def launch(self) -> Gateway:
        """Start the worker processes and return at once: they import the app and load the
        serving function while the caller goes on; `start` then waits for the first answer."""
        if self.started:
            return self
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
        try:
            for _ in range(self.workers):
                self.processes.append(subprocess.Popen(command, env=self.environment))
        except BaseException:
            self.stop()
            raise
        return self

    def start(self, timeout: float = 60) -> Gateway:
        """Launch the workers (unless `launch` did) and wait until one answers /health."""
        if self._answered:
            return self
        self.launch()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if any(p.poll() is not None for p in self.processes):
                    raise RuntimeError("a gateway worker exited while starting")
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                        self._answered = True
                        return self
                except OSError:
                    time.sleep(0.2)
            raise RuntimeError(f"the gateway did not answer on {self.url} within {timeout:.0f} s")
        except BaseException:
            # Ctrl-C while starting (a client may already be answered by the first worker) must
            # not leave the workers running: `with` never reaches __exit__ when __enter__ fails.
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM every worker (each flushes its inference logs), then one shared grace period:
        waiting 15 s per worker in turn let two stuck workers hold `facet serve` for over 30 s."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("gateway worker %s did not stop in time; killed", process.pid)
                process.kill()
                process.wait(timeout=5)
        self.processes = []
        self._answered = False

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
    for name in ABSENT_FROM_THE_SERVING_PACKAGE:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "cannot import"
    settings = Settings()
    serve_worker(
        args.port,
        GatewayConfig(
            stage=args.stage, api_key=args.api_key, cors_origins=tuple(settings.cors_origins)
        ),
    )


if __name__ == "__main__":
    main()
