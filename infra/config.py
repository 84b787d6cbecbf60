"""Deployment choices, read once from the CDK context (cdk.json, or -c key=value)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aws_cdk import App, Environment

from contracts.names import DEFAULT_STAGE, StageNames
from infra.stages import PROFILES, StageProfile


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "1", "yes"}


def _origins(value: Any) -> tuple[str, ...]:
    """Browser origins allowed to call the API: a JSON list in cdk.json, or comma-separated."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())


@dataclass(frozen=True)
class PushedImages:
    """Images the delivery pipeline built once and pushed (by digest); None: build at synth."""

    pipeline: str | None = None
    serving: str | None = None


@dataclass(frozen=True)
class DeploymentConfig:
    account: str
    region: str
    stage: str
    serving_endpoint: bool
    alarm_email: str
    profile: StageProfile
    images: PushedImages

    @property
    def names(self) -> StageNames:
        return StageNames(self.stage)

    @classmethod
    def from_app(cls, app: App) -> DeploymentConfig:
        context = app.node.try_get_context
        stage = str(context("stage") or DEFAULT_STAGE)
        if stage not in PROFILES:
            raise ValueError(f"-c stage={stage}: one of {', '.join(PROFILES)}")
        profile = PROFILES[stage]
        origins = _origins(context("corsAllowedOrigins"))
        return cls(
            account=str(context("account") or ""),
            region=str(context("region") or ""),
            stage=stage,
            serving_endpoint=_flag(context("servingEndpoint")),
            alarm_email=str(context("alarmEmail") or ""),
            profile=replace(profile, cors_origins=origins) if origins else profile,
            images=PushedImages(
                pipeline=str(context("pipelineImage") or "") or None,
                serving=str(context("servingImage") or "") or None,
            ),
        )

    @property
    def environment(self) -> Environment | None:
        """A fixed account/region, or None for an environment-agnostic synth."""
        if self.account and self.region:
            return Environment(account=self.account, region=self.region)
        return None
