"""Bulk scoring: catalogues landed under scoring/incoming/ are priced by a SageMaker batch
transform job with the production model package's serving image (pipeline/scoring_flow.asl.json).

Its step Lambdas read and write the scoring prefixes of the lake only; the transform job's role
reads its input parts and the model artifact, writes its output under scoring/work/, pulls the
serving image, and nothing else.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from contracts.names import (
    SCORING_HANDLER_MODULE,
    SCORING_INCOMING_PREFIX,
    SCORING_RESULTS_PREFIX,
    SCORING_STEP_FUNCTIONS,
    SCORING_WORK_PREFIX,
    BucketRole,
    Env,
    ScoringSubstitution,
    catalogue_event_pattern,
)
from infra.assets import SCORING_ASL_PATH
from infra.nag import Nag, bucket, bucket_objects
from infra.runbooks import with_runbook
from infra.training_pipeline import Grants, TrainingPipeline, acknowledge_common, grant_job_logs

TRANSFORM_INSTANCE_TYPE = "ml.m5.xlarge"
SCORING_GRANTS = {
    "prepare_catalogue": Grants(
        read=(SCORING_INCOMING_PREFIX,),
        write=(SCORING_WORK_PREFIX, SCORING_RESULTS_PREFIX),
        production_read=True,
    ),
    "join_scores": Grants(read=(SCORING_WORK_PREFIX,), write=(SCORING_RESULTS_PREFIX,)),
    "record_scoring_failure": Grants(write=(SCORING_RESULTS_PREFIX,)),
}
REASONS = {
    "work": "A transform job reads its input parts and writes its output under "
    "scoring/work/<catalogue>/ (a name per run); the grant covers that prefix only.",
    "jobs": "Transform jobs and their models are named per run (facet-<stage>-score-<stamp>-"
    "<hash>); the grant covers the stage's scoring prefix only.",
    "logs": "SageMaker names a log stream per transform instance inside this one log group.",
}


class ScoringFlow(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, pipeline: TrainingPipeline, instances: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.pipeline = pipeline
        names = pipeline.names
        environment = pipeline.environment | {Env.TRANSFORM_INSTANCE_COUNT.value: str(instances)}
        self.functions: dict[str, lambda_.Function] = {
            handler: pipeline.step_function(
                handler,
                environment,
                module=SCORING_HANDLER_MODULE,
                grants=SCORING_GRANTS[handler],
            )
            for handler in SCORING_STEP_FUNCTIONS.values()
        }
        self.model_role = self._model_role()
        substitutions = {
            placeholder.value: self.functions[handler].function_arn
            for placeholder, handler in SCORING_STEP_FUNCTIONS.items()
        }
        substitutions |= {
            ScoringSubstitution.MODEL_ROLE_ARN.value: self.model_role.role_arn,
            ScoringSubstitution.INSTANCE_TYPE.value: TRANSFORM_INSTANCE_TYPE,
            ScoringSubstitution.OUTPUT_KEY_ARN.value: pipeline.lake.key.key_arn,
        }
        self.state_machine = pipeline.asl_state_machine(
            self,
            name=names.scoring_state_machine,
            asl_file=SCORING_ASL_PATH,
            substitutions=substitutions,
            timeout=Duration.hours(6),
        )
        self._grant_state_machine()
        pipeline.object_created_rule(
            self,
            "CatalogueArrived",
            rule_name=names.catalogue_rule,
            description="A catalogue under scoring/incoming/ starts a scoring run.",
            pattern=catalogue_event_pattern(pipeline.lake.bucket.bucket_name),
            machine=self.state_machine,
        )
        self.failure_alarm = pipeline.alarm_on_failures(
            self,
            "ScoringFailed",
            self.state_machine,
            with_runbook(
                "A scoring run failed; its reason is in scoring/results/<catalogue>/summary.json.",
                "scoring-failed",
            ),
        )

    def _model_role(self) -> iam.Role:
        """The role the transform job's containers run with (the model's execution role)."""
        pipeline = self.pipeline
        role = iam.Role(
            self,
            "TransformRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker batch transform jobs of the Facet scoring flow",
        )
        nag = Nag(role)
        work = bucket_objects(pipeline.names, BucketRole.DATA_LAKE, SCORING_WORK_PREFIX)
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"], resources=[work.value])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket(pipeline.names, BucketRole.DATA_LAKE).value],
                conditions={"StringLike": {"s3:prefix": [f"{SCORING_WORK_PREFIX}*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[pipeline.arns.model_artifacts.value]
            )
        )
        pipeline.serving_image.grant_pull(role)
        pipeline.lake.key.grant_encrypt_decrypt(role)
        transform_logs = grant_job_logs(role, "TransformJobs")
        nag.wildcard(work, REASONS["work"])
        nag.wildcard(
            pipeline.arns.model_artifacts,
            "The production package's model.tar.gz "
            "is under training-jobs/<job>/output/; the grant covers that prefix only.",
        )
        nag.wildcard(transform_logs, REASONS["logs"])
        nag.acknowledge(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource ARN; "
            "the metric grant is limited to SageMaker's namespaces by a condition.",
        )
        acknowledge_common(nag, metrics=True, basic=False)
        return role

    def _grant_state_machine(self) -> None:
        pipeline, machine = self.pipeline, self.state_machine
        arns = pipeline.arns
        nag = pipeline.grant_steps(machine, list(self.functions.values()))
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModel", "sagemaker:AddTags", "sagemaker:DeleteModel"],
                resources=[arns.scoring_models.value],
            )
        )
        # A failed run's model is deleted by the step that records the failure.
        recorder = self.functions["record_scoring_failure"]
        recorder.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteModel"], resources=[arns.scoring_models.value]
            )
        )
        Nag(recorder).wildcard(arns.scoring_models, REASONS["jobs"])
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"], resources=[arns.packages.value]
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTransformJob",
                    "sagemaker:DescribeTransformJob",
                    "sagemaker:AddTags",
                ],
                resources=[arns.transform_jobs.value],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.model_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # The transform job writes its output with the lake's key, as the caller.
        pipeline.lake.key.grant(machine, "kms:GenerateDataKey*", "kms:Decrypt")
        nag.wildcard(arns.transform_jobs, REASONS["jobs"])
        nag.wildcard(arns.scoring_models, REASONS["jobs"])
        nag.wildcard(
            arns.packages,
            "A model is created from whichever package is in production (its version is only "
            "known at run time); the grant covers the Facet group only.",
        )
        acknowledge_common(nag, basic=False)
