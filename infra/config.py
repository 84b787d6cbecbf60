"""Deployment choices, read once from the CDK context (cdk.json, or -c key=value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Environment


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "1", "yes"}


def _origins(value: Any) -> tuple[str, ...]:
    """Browser origins allowed to call the API: a JSON list in cdk.json, or comma-separated."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())


@dataclass(frozen=True)
class DeploymentConfig:
    account: str
    region: str
    stage: str
    serving_endpoint: bool
    reserved_concurrency: int
    provisioned_concurrency: int
    api_throttle_rate: float
    api_throttle_burst: int
    alarm_email: str
    cors_origins: tuple[str, ...]

    @classmethod
    def from_app(cls, app: App) -> DeploymentConfig:
        context = app.node.try_get_context
        return cls(
            account=str(context("account") or ""),
            region=str(context("region") or ""),
            stage=str(context("stage") or "prod"),
            serving_endpoint=_flag(context("servingEndpoint")),
            reserved_concurrency=int(context("reservedConcurrency") or 0),
            provisioned_concurrency=int(context("provisionedConcurrency") or 0),
            api_throttle_rate=float(context("apiThrottleRate") or 100),
            api_throttle_burst=int(context("apiThrottleBurst") or 200),
            alarm_email=str(context("alarmEmail") or ""),
            cors_origins=_origins(context("corsAllowedOrigins")),
        )

    @property
    def environment(self) -> Environment | None:
        """A fixed account/region, or None for an environment-agnostic synth."""
        if self.account and self.region:
            return Environment(account=self.account, region=self.region)
        return None
