"""What differs between deployment stages, in one typed table. Constructs take these values as
arguments; nothing inside a construct asks which stage it is in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs

from contracts.api import API_THROTTLES, Throttle
from infra.lifecycle import Lifecycle


@dataclass(frozen=True)
class StageProfile:
    data: Lifecycle  # buckets: retained, or destroyed with their objects
    keys: Lifecycle
    reserved_concurrency: int  # the serving Lambda's; 0: unreserved
    provisioned_concurrency: int
    throttle: Throttle  # the API stage's (contracts.api.API_THROTTLES; partners get half)
    log_retention: logs.RetentionDays
    api_latency_alarm_ms: int  # p99 over 5 minutes
    api_5xx_alarm: int  # server errors in 5 minutes
    cors_origins: tuple[str, ...]  # partners' browser apps allowed to call the API
    transform_instances: int  # a scoring run's batch transform job (ml.m5.xlarge each)


_DEV_DATA: Final = Lifecycle(
    RemovalPolicy.DESTROY,
    "dev holds test data only: `make destroy STAGE=dev` removes the buckets with their objects, so "
    "the stage can be deployed again at once",
)
_DEV_KEYS: Final = Lifecycle(
    RemovalPolicy.DESTROY, "dev's key encrypts only dev's destroyed data (7-day pending window)"
)
_KEPT_DATA: Final = Lifecycle(
    RemovalPolicy.RETAIN,
    "appraisals, datasets, reports and model artifacts outlive any deployment; the registry's "
    "packages point at the artifacts",
)
_KEPT_KEYS: Final = Lifecycle(
    RemovalPolicy.RETAIN, "a deleted key makes every object it encrypted unreadable"
)

PROFILES: Final = {
    "dev": StageProfile(
        data=_DEV_DATA,
        keys=_DEV_KEYS,
        reserved_concurrency=0,
        provisioned_concurrency=0,
        throttle=API_THROTTLES["dev"],
        log_retention=logs.RetentionDays.TWO_WEEKS,
        api_latency_alarm_ms=2000,
        api_5xx_alarm=20,
        cors_origins=("http://localhost:5173",),
        transform_instances=1,
    ),
    "staging": StageProfile(
        data=_KEPT_DATA,
        keys=_KEPT_KEYS,
        reserved_concurrency=10,
        provisioned_concurrency=0,
        throttle=API_THROTTLES["staging"],
        log_retention=logs.RetentionDays.ONE_MONTH,
        api_latency_alarm_ms=1000,
        api_5xx_alarm=5,
        cors_origins=("https://staging.partner-app.example.com",),
        transform_instances=2,
    ),
    "prod": StageProfile(
        data=_KEPT_DATA,
        keys=_KEPT_KEYS,
        reserved_concurrency=50,
        provisioned_concurrency=0,
        throttle=API_THROTTLES["prod"],
        log_retention=logs.RetentionDays.THREE_MONTHS,
        api_latency_alarm_ms=1000,
        api_5xx_alarm=5,
        cors_origins=("https://partner-app.example.com",),
        transform_instances=4,
    ),
}
