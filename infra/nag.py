"""cdk-nag acknowledgments, and ARNs built so each finding has a stable, exact ID.

cdk-nag 3 acknowledges one finding at a time, by an ID that embeds the resource as rendered in the
template. ARNs built here from pseudo-parameters (AWS::AccountId, AWS::Region) render the same in a
fixed-account and an environment-agnostic synth, so every acknowledgment names exactly the
prefix-scoped wildcard it accepts, and nothing broader.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Aws, Validations
from constructs import IConstruct

from contracts.names import TRAINING_OUTPUT_PREFIX, BucketRole, StageNames


class Nag:
    """`Nag(construct).acknowledge(id=..., reason=...)` for one rule or one finding of a rule."""

    def __init__(self, scope: IConstruct) -> None:
        self._validations = Validations.of(scope)

    def acknowledge(self, *, id: str, reason: str) -> None:
        self._validations.acknowledge(Acknowledgment(id=id, reason=reason))

    def wildcard(self, resource: ScopedArn, reason: str) -> None:
        self.acknowledge(id=f"AwsSolutions-IAM5[Resource::{resource.rendered}]", reason=reason)


@dataclass(frozen=True)
class ScopedArn:
    value: str  # for the policy (with CloudFormation pseudo-parameters)
    rendered: str  # as cdk-nag prints it


def _pair(template: str) -> ScopedArn:
    value = template.format(partition=Aws.PARTITION, region=Aws.REGION, account=Aws.ACCOUNT_ID)
    rendered = template.format(
        partition="<AWS::Partition>", region="<AWS::Region>", account="<AWS::AccountId>"
    )
    return ScopedArn(value, rendered)


def bucket_objects(names: StageNames, role: BucketRole, prefix: str) -> ScopedArn:
    """Objects under a prefix of one of the stage's buckets (names from contracts.names)."""
    name = names.bucket(role, "{account}", "{region}")
    return _pair(f"arn:{{partition}}:s3:::{name}/{prefix}*")


def bucket(names: StageNames, role: BucketRole) -> ScopedArn:
    return _pair(f"arn:{{partition}}:s3:::{names.bucket(role, '{account}', '{region}')}")


def service_arn(service: str, resource: str) -> ScopedArn:
    return _pair(f"arn:{{partition}}:{service}:{{region}}:{{account}}:{resource}")


@dataclass(frozen=True)
class StageArns:
    """The scoped ARNs the stage's policies grant, each with its cdk-nag rendering."""

    names: StageNames

    @property
    def group(self) -> ScopedArn:
        return service_arn("sagemaker", f"model-package-group/{self.names.model_package_group}")

    @property
    def packages(self) -> ScopedArn:
        return service_arn("sagemaker", f"model-package/{self.names.model_package_group}/*")

    @property
    def training_jobs(self) -> ScopedArn:
        return service_arn("sagemaker", f"training-job/{self.names.training_job_prefix}-*")

    @property
    def serving_function(self) -> ScopedArn:
        return service_arn("lambda", f"function:{self.names.serving_function}")

    @property
    def serving_versions(self) -> ScopedArn:
        """The serving function's versions and aliases (function:name:qualifier)."""
        return service_arn("lambda", f"function:{self.names.serving_function}:*")

    @property
    def rollout_group(self) -> ScopedArn:
        return service_arn(
            "codedeploy",
            f"deploymentgroup:{self.names.rollout_application}/{self.names.rollout_group}",
        )

    @property
    def rollout_application(self) -> ScopedArn:
        return service_arn("codedeploy", f"application:{self.names.rollout_application}")

    @property
    def deployment_configs(self) -> ScopedArn:
        return service_arn("codedeploy", "deploymentconfig:*")

    @property
    def shadow_schedules(self) -> ScopedArn:
        return service_arn("scheduler", f"schedule/default/{self.names.prefix}-shadow-ends-*")

    @property
    def transform_jobs(self) -> ScopedArn:
        return service_arn("sagemaker", f"transform-job/{self.names.transform_job_prefix}-*")

    @property
    def scoring_models(self) -> ScopedArn:
        """The SageMaker models the scoring flow creates, one per run, named as its job."""
        return service_arn("sagemaker", f"model/{self.names.transform_job_prefix}-*")

    @property
    def model_artifacts(self) -> ScopedArn:
        return bucket_objects(self.names, BucketRole.ARTIFACTS, TRAINING_OUTPUT_PREFIX)
