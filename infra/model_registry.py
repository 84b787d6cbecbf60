"""The SageMaker Model Registry: one model package group, and approvals that deploy."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from contracts.names import StageNames, deployment_finished_pattern, model_package_state_pattern
from infra import lifecycle
from infra.dead_letters import DeadLetters


class ModelRegistry(Construct):
    """The group, and a rule: any package of it changing state (an approval in the console, a
    rollback) invokes the deploy function, which points production at the latest approved one."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        deploy_function: lambda_.IFunction,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=names.model_package_group,
            model_package_group_description="Facet diamond price models",
        )
        self.group.apply_removal_policy(lifecycle.MODEL_REGISTRY.policy)
        # In this stack: EventBridge may write to it only through a policy CDK adds here.
        self.dead_letters = DeadLetters(
            self,
            "DeadLetters",
            purpose="a model registry event (an approval or rejection) could not reach the "
            "deploy function, so production may not follow it",
        )
        self.dead_letters.alarm_to(alarm_topic)
        self.deploy_function = deploy_function
        self.approval_rule = self._to_deploy_function(
            "PackageStateChanged",
            names.model_approval_rule,
            "A Facet model package was approved or rejected: re-point production.",
            model_package_state_pattern(names.model_package_group),
        )
        self.rollout_rule = self._to_deploy_function(
            "RolloutFinished",
            names.rollout_rule,
            "CodeDeploy finished shifting the serving alias to a model: production follows it, "
            "or the package is rejected with the alarm that rolled it back.",
            deployment_finished_pattern(names.rollout_application),
        )

    def _to_deploy_function(
        self, construct_id: str, rule_name: str, description: str, pattern: dict[str, Any]
    ) -> events.Rule:
        """A rule whose events reach the deploy function, retried for a day, then dead-lettered."""
        rule = events.Rule(
            self,
            construct_id,
            rule_name=rule_name,
            description=description,
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                detail=pattern["detail"],
            ),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.deploy_function,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
                dead_letter_queue=self.dead_letters.queue,
            )
        )
        return rule


class ModelRegistryStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        deploy_function: lambda_.IFunction,
        alarm_topic: sns.ITopic,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.registry = ModelRegistry(
            self,
            "ModelRegistry",
            names=names,
            deploy_function=deploy_function,
            alarm_topic=alarm_topic,
        )
