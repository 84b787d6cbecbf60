"""One synthesis of the CDK app per test session, with cdk.json's context (as `cdk synth` uses)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Properties whose values are resources' physical names in the synthesized templates.
NAME_PROPERTIES = (
    "BucketName",
    "FunctionName",
    "StateMachineName",
    "ModelPackageGroupName",
    "Name",
    "RuleName",
    "LogGroupName",
    "DashboardName",
    "EndpointName",
    "QueueName",
    "TopicName",
    "UsagePlanName",
    "RoleName",
    "AlarmName",
    "DeploymentGroupName",
)


def literal_text(value: Any) -> str | None:
    """A string property, or an Fn::Join's literal parts joined (its Refs, e.g. the account and
    region in a bucket name, left out); None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(p for p in value["Fn::Join"][1] if isinstance(p, str))
    return None


def cdk_context(**overrides: Any) -> dict[str, Any]:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    return {**context, **overrides}


@dataclass
class Synthesized:
    """A synthesized cloud assembly, read from its directory (so workers can share one)."""

    outdir: Path
    stacks: dict[str, str]  # construct id -> CloudFormation stack name

    @classmethod
    def read(cls, outdir: Path) -> Synthesized:
        from aws_cdk.cx_api import CloudAssembly

        assembly = CloudAssembly(str(outdir))
        return cls(outdir, {stack.id: stack.stack_name for stack in assembly.stacks})

    def template(self, stack: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.raw(stack))

    def raw(self, stack: str) -> dict[str, Any]:
        return json.loads((self.outdir / f"{stack}.template.json").read_text())


def synthesize(outdir: Path, **overrides: Any) -> Synthesized:
    from aws_cdk import App

    from infra.app import build_app
    from infra.assets import ensure_built

    ensure_built()
    build_app(App(context=cdk_context(**overrides), outdir=str(outdir))).synth()
    return Synthesized.read(outdir)
