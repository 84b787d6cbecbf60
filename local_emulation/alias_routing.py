"""The local gateway's Lambda side: the serving function's `live` alias, version by version.

API Gateway invokes the alias; Lambda picks the version by the alias's routing weights (a canary
is 10 % on the new version) and runs it with that version's own environment, which pins its model
(contracts.rollout). Here each gateway worker keeps one in-process serving app per version the
alias names, built from the version's environment as the emulator's Lambda holds it, and picks
one per request by the same weights. A background thread follows the alias (every
`follow_seconds`); a version is built and its models loaded before the first request goes to it,
as a provisioned environment would be. Also here: the gateway's own CloudWatch metrics
(Count, 5XXError, Latency by ApiName and Stage), which the rollout's alarms read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from contracts.names import StageNames
from contracts.rollout import (
    API_5XX_METRIC,
    API_COUNT_METRIC,
    API_GATEWAY_NAMESPACE,
    API_LATENCY_METRIC,
    SERVING_ALIAS,
    api_dimensions,
)
from contracts.settings import Settings

log = logging.getLogger("facet.emulation.alias")
LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class VersionEnvironment:
    """One version's serving app, as a Lambda execution environment of that version holds it."""

    version: str
    handler: LambdaHandler
    app: Any

    @classmethod
    def build(cls, version: str, variables: dict[str, str]) -> VersionEnvironment:
        from mangum import Mangum

        from serving.app import create_app
        from serving.errors import NoModelError
        from serving.handler import StageRootPath

        settings = Settings(**variables)  # type: ignore[arg-type]  # by their variable names
        app = create_app(settings)
        app.state.inference_log.start()
        # Load the pinned model (and the compared one) before any request is routed here. A
        # version that cannot load its model still takes its share and answers 503, as a Lambda
        # version would: that is what the rollout's 5xx alarm is for.
        try:
            app.state.store.get()
            if app.state.comparison is not None:
                app.state.comparison.store.get()
        except NoModelError as error:
            log.warning("version %s serves no model: %s", version, error.message)
        return cls(version, Mangum(StageRootPath(app), lifespan="off"), app)

    def close(self) -> None:
        self.app.state.inference_log.close()


@dataclass
class AliasRouter:
    """Which version answers the next request, following the alias in the emulator."""

    function: str
    follow_seconds: float = 0.2
    environments: dict[str, VersionEnvironment] = field(default_factory=dict)
    routes: tuple[str, dict[str, float]] = ("", {})
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _random: random.Random = field(default_factory=random.Random)
    _lambda: Any = None

    def start(self) -> AliasRouter:
        self.follow()  # the first routes synchronously: the gateway answers only once it has them
        self._thread = threading.Thread(target=self._loop, name="alias-router", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.follow_seconds):
            try:
                self.follow()
            except Exception as error:  # keep routing as before; say why in the log
                if str(error) != self.error:
                    log.warning("following alias %s failed: %s", SERVING_ALIAS, error)
                self.error = str(error)

    def follow(self) -> None:
        if self._lambda is None:  # one client: building one costs ~50 ms, and this runs 5x a second
            self._lambda = boto3.client("lambda")
        lam = self._lambda
        alias = lam.get_alias(FunctionName=self.function, Name=SERVING_ALIAS)
        primary = str(alias["FunctionVersion"])
        weights = {
            str(v): float(w)
            for v, w in (
                (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            ).items()
        }
        for version in (primary, *weights):
            if version not in self.environments:
                configuration = lam.get_function_configuration(
                    FunctionName=self.function, Qualifier=version
                )
                variables = (configuration.get("Environment") or {}).get("Variables", {})
                self.environments[version] = _in_own_loop(
                    functools.partial(VersionEnvironment.build, version, variables)
                )
                log.info("version %s of %s ready", version, self.function)
        self.routes = (primary, weights)
        self.error = None
        for version in [v for v in self.environments if v != primary and v not in weights]:
            self.environments.pop(version).close()

    def pick(self) -> VersionEnvironment:
        primary, weights = self.routes
        draw = self._random.random()
        for version, weight in weights.items():
            if draw < weight:
                return self.environments[version]
            draw -= weight
        return self.environments[primary]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for environment in self.environments.values():
            environment.close()
        self.environments.clear()


def _in_own_loop(build: Callable[[], VersionEnvironment]) -> VersionEnvironment:
    """Build on a thread with an event loop of its own (Mangum calls get_event_loop())."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    return build()


@dataclass
class ApiMetrics:
    """API Gateway's per-stage metrics for the requests this worker answered, published to
    CloudWatch every `flush_seconds` (Count and 5XXError as statistic sets, Latency as values)."""

    names: StageNames
    api_stage: str
    flush_seconds: float = 0.25
    _latencies: list[float] = field(default_factory=list)
    _errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def record(self, status: int, latency_ms: float) -> None:
        with self._lock:
            self._latencies.append(latency_ms)
            self._errors += int(status >= 500)

    def start(self) -> ApiMetrics:
        self._thread = threading.Thread(target=self._loop, name="api-metrics", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        cloudwatch = boto3.client("cloudwatch")
        while not self._stop.wait(self.flush_seconds):
            self.flush(cloudwatch)

    def flush(self, cloudwatch: Any) -> None:
        with self._lock:
            latencies, errors = self._latencies, self._errors
            self._latencies, self._errors = [], 0
        if not latencies:
            return
        dimensions = [
            {"Name": n, "Value": v} for n, v in api_dimensions(self.names, self.api_stage)
        ]
        count = float(len(latencies))
        counted: dict[float, int] = {}
        for latency in latencies:
            rounded = round(latency, 1)
            counted[rounded] = counted.get(rounded, 0) + 1
        try:
            cloudwatch.put_metric_data(
                Namespace=API_GATEWAY_NAMESPACE,
                MetricData=[
                    {
                        "MetricName": API_COUNT_METRIC,
                        "Dimensions": dimensions,
                        "StatisticValues": {
                            "SampleCount": count,
                            "Sum": count,
                            "Minimum": 1.0,
                            "Maximum": 1.0,
                        },
                        "Unit": "Count",
                    },
                    {
                        "MetricName": API_5XX_METRIC,
                        "Dimensions": dimensions,
                        "StatisticValues": {
                            "SampleCount": count,
                            "Sum": float(errors),
                            "Minimum": 0.0 if errors < count else 1.0,
                            "Maximum": 1.0 if errors else 0.0,
                        },
                        "Unit": "Count",
                    },
                    {
                        "MetricName": API_LATENCY_METRIC,
                        "Dimensions": dimensions,
                        "Values": list(counted),
                        "Counts": [float(c) for c in counted.values()],
                        "Unit": "Milliseconds",
                    },
                ],
            )
        except Exception as error:  # metrics are best effort, as API Gateway's are to a caller
            log.warning("publishing API metrics failed: %s", error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush(boto3.client("cloudwatch"))


def measured(started: float) -> float:
    return (time.perf_counter() - started) * 1000
