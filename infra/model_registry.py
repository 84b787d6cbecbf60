"""The SageMaker Model Registry: one model package group, and approvals that deploy."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from contracts.names import MODEL_APPROVAL_RULE, MODEL_PACKAGE_GROUP


class ModelRegistry(Construct):
    """The group, and a rule: any package of it changing state (an approval in the console, a
    rollback) invokes the deploy function, which points production at the latest approved one."""

    def __init__(
        self, scope: Construct, construct_id: str, *, deploy_function: lambda_.IFunction
    ) -> None:
        super().__init__(scope, construct_id)
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=MODEL_PACKAGE_GROUP,
            model_package_group_description="Facet diamond price models",
        )
        self.approval_rule = events.Rule(
            self,
            "PackageStateChanged",
            rule_name=MODEL_APPROVAL_RULE,
            description="A Facet model package was approved or rejected: re-point production.",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": [MODEL_PACKAGE_GROUP],
                    "ModelApprovalStatus": ["Approved", "Rejected"],
                },
            ),
        )
        self.approval_rule.add_target(targets.LambdaFunction(deploy_function, retry_attempts=4))


class ModelRegistryStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deploy_function: lambda_.IFunction,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.registry = ModelRegistry(self, "ModelRegistry", deploy_function=deploy_function)
