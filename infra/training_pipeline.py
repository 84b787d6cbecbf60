"""The retraining pipeline: step Lambdas, the SageMaker training role, the state machine from the
shared ASL file, its triggers (new raw/ objects, a daily drift check) and its failure alarm."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts.names import (
    BATCHES_PREFIX,
    DATASETS_PREFIX,
    DRIFT_SCHEDULE_EXPRESSION,
    HOLDOUT_KEY,
    LEDGER_PREFIX,
    PIPELINE_HANDLER_MODULE,
    RAW_BATCH_EVENT_PATHS,
    RAW_BATCH_EVENT_TEMPLATE,
    RECENT_HOLDOUTS_PREFIX,
    REFERENCE_DATASET_KEY,
    SCHEDULE_EVENT_INPUT,
    STEP_FUNCTIONS,
    TRAINING_OUTPUT_PREFIX,
    AslSubstitution,
    BucketRole,
    Env,
    StageNames,
    Zone,
    raw_object_event_pattern,
)
from contracts.pointer import ProductionPointer
from contracts.rollout import rollout_policy
from infra import lifecycle
from infra.assets import (
    ASL_PATH,
    IMAGE_CONTEXT_EXCLUDES,
    PIPELINE_IMAGE_DOCKERFILE,
    REPO,
    SERVING_IMAGE_DOCKERFILE,
    TRAINING_SOURCE,
)
from infra.config import PushedImages
from infra.data_lake import DataLake
from infra.dead_letters import DeadLetters
from infra.experiments import RUN_LINKER_ACTIONS, RUN_WRITER_ACTIONS, ExperimentTracking
from infra.images import ContainerImage
from infra.nag import Nag, ScopedArn, StageArns, bucket, bucket_objects, service_arn
from infra.runbooks import with_runbook
from infra.stages import StageProfile
from infra.training_image import TRAINING_INSTANCE_TYPE, training_image_uri

PIPELINE_LAMBDA_MEMORY = 3008
PIPELINE_LAMBDA_TIMEOUT = Duration.minutes(10)
TRAINING_POLL_SECONDS = 30
TRAINING_MAX_SECONDS = 3600
REASONS = {
    "prefix": "Objects have generated names (batch stamps, dataset hashes, execution "
    "names) under one zone "
    "prefix of the data lake; the grant covers that prefix only.",
    "packages": "Model package ARNs end in a version assigned at registration; the "
    "grant covers the Facet group only.",
    "artifacts": "SageMaker writes each job's model.tar.gz under "
    "training-jobs/<job>/output/; the grant covers that prefix only.",
    "jobs": "Training job names are generated per run "
    "(facet-<stage>-<time>-<dataset>-<run>); the grant covers the stage's prefix only.",
    "kms": "CDK's encrypt/decrypt grant on the lake's customer key includes the data-key actions.",
    "metrics": "cloudwatch:PutMetricData has no resource ARN; a condition limits it "
    "to one namespace.",
    "xray": "X-Ray and CloudWatch Logs delivery actions have no resource ARN (AWS documents '*').",
    "basic": "AWS's managed basic execution policy only lets the function write its own logs.",
}


def registry_read(arns: StageArns) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=[
            "sagemaker:ListModelPackages",
            "sagemaker:DescribeModelPackage",
            "sagemaker:DescribeModelPackageGroup",
        ],
        resources=[arns.group.value, arns.packages.value],
    )


def grant_job_logs(role: iam.Role, jobs: str) -> ScopedArn:
    """A SageMaker job role's logs (the service's one log group for `jobs`, e.g. TrainingJobs)
    and metrics (SageMaker's namespaces only); the log group's ARN, for cdk-nag."""
    log_group = service_arn("logs", f"log-group:/aws/sagemaker/{jobs}:*")
    role.add_to_policy(
        iam.PolicyStatement(
            actions=[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            resources=[log_group.value],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        )
    )
    return log_group


def acknowledge_common(
    nag: Nag, *, kms: bool = True, metrics: bool = False, tracing: bool = True, basic: bool = True
) -> None:
    if kms:
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            nag.acknowledge(id=f"AwsSolutions-IAM5[Action::{action}]", reason=REASONS["kms"])
    if metrics or tracing:
        nag.acknowledge(
            id="AwsSolutions-IAM5[Resource::*]", reason=REASONS["metrics" if metrics else "xray"]
        )
    if basic:
        nag.acknowledge(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            reason=REASONS["basic"],
        )


@dataclass(frozen=True)
class Grants:
    """What one step function may touch, by data-lake prefix and capability."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    artifacts_read: bool = False
    registry_read: bool = False
    registry_write: bool = False
    describe_training: bool = False
    production_parameter: bool = False  # write (the deploy function only)
    production_read: bool = False
    put_metrics: bool = False
    link_runs: bool = False  # tag MLflow runs with their model package


HOLDOUT = HOLDOUT_KEY.rsplit("/", 1)[0] + "/"
BATCHES = BATCHES_PREFIX
REFERENCE_PREFIX = REFERENCE_DATASET_KEY.rsplit("/", 1)[0] + "/"
STEP_GRANTS = {
    "validate_batch": Grants(
        read=(Zone.RAW.prefix(), REFERENCE_PREFIX, LEDGER_PREFIX, HOLDOUT),
        write=(Zone.VALIDATED.prefix(), Zone.QUARANTINE.prefix(), LEDGER_PREFIX, BATCHES),
        artifacts_read=True,
        registry_read=True,
        put_metrics=True,
        production_read=True,
    ),
    "check_drift": Grants(
        read=(
            Zone.INFERENCE.prefix(),
            REFERENCE_PREFIX,
            HOLDOUT,
            BATCHES,
            DATASETS_PREFIX,
            Zone.VALIDATED.prefix(),
        ),
        artifacts_read=True,
        registry_read=True,
        production_read=True,
    ),
    "build_dataset": Grants(
        read=(Zone.CURATED.prefix(), Zone.VALIDATED.prefix()),
        write=(DATASETS_PREFIX, RECENT_HOLDOUTS_PREFIX),
        registry_read=True,  # the next package version, which names the model
    ),
    "evaluate_model": Grants(
        read=(HOLDOUT, RECENT_HOLDOUTS_PREFIX),
        write=(Zone.REPORTS.prefix(),),
        artifacts_read=True,
        registry_read=True,
        describe_training=True,
        production_read=True,
    ),
    "register_model": Grants(registry_read=True, registry_write=True, link_runs=True),
    "deploy_model": Grants(
        read=(Zone.INFERENCE.prefix(),),  # the shadow period's comparisons, for its report
        write=(Zone.REPORTS.prefix(),),
        registry_read=True,
        registry_write=True,
        production_parameter=True,
        put_metrics=True,
    ),
    "write_report": Grants(read=(HOLDOUT,), write=(Zone.REPORTS.prefix(),), artifacts_read=True),
    "record_failure": Grants(
        write=(Zone.REPORTS.prefix(),),
        delete=(LEDGER_PREFIX,),
        registry_read=True,
        registry_write=True,
    ),
}


class TrainingPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        lake: DataLake,
        profile: StageProfile,
        images: PushedImages,
        alarm_email: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self.lake, self.names, self.profile = lake, names, profile
        self.log_retention = profile.log_retention
        self.arns = StageArns(names)
        self.source = s3_assets.Asset(self, "TrainingSource", path=str(TRAINING_SOURCE))
        self.production_parameter = ssm.StringParameter(
            self,
            "ProductionModel",
            parameter_name=names.production_parameter,
            string_value=ProductionPointer().to_json(),
            description="The model package in production; written only by the deploy function, "
            "on the registry's state-change events (pipeline/promotion.py).",
        )
        self.production_parameter.apply_removal_policy(lifecycle.PRODUCTION_POINTER.policy)
        self.experiments = ExperimentTracking(self, "Experiments", names=names, lake=lake)
        self.training_role = self._training_role()
        # The image every registered package names: deployable as-is to a SageMaker endpoint or
        # a batch transform job (the same serving code, answering /ping and /invocations).
        self.serving_image = ContainerImage(
            self, "ServingImage", dockerfile=SERVING_IMAGE_DOCKERFILE, pushed=images.serving
        )
        self.pipeline_image = (
            ContainerImage(
                self, "PipelineImage", dockerfile=PIPELINE_IMAGE_DOCKERFILE, pushed=images.pipeline
            )
            if images.pipeline
            else None
        )
        rollout = rollout_policy(names.stage)
        environment = {
            Env.DATA_BUCKET.value: lake.bucket.bucket_name,
            Env.ARTIFACTS_BUCKET.value: lake.artifacts.bucket_name,
            Env.STAGE.value: names.stage,
            Env.MODEL_PACKAGE_GROUP.value: names.model_package_group,
            Env.PRODUCTION_MODEL_PARAM.value: names.production_parameter,
            Env.TRAINING_POLL_SECONDS.value: str(TRAINING_POLL_SECONDS),
            Env.TRAINING_MAX_SECONDS.value: str(TRAINING_MAX_SECONDS),
            Env.TRAINING_SOURCE_S3_URI.value: self.source.s3_object_url,
            Env.LOG_LEVEL.value: "INFO",
            Env.SERVING_IMAGE.value: self.serving_image.uri,
            Env.ROLLOUT_GROUP.value: names.rollout_group,
            Env.APPROVAL_MODE.value: rollout.approval,
            Env.SHADOW_SAMPLE.value: f"{rollout.shadow_sample:g}",
            Env.SHADOW_MINUTES.value: str(rollout.shadow_minutes),
            Env.MLFLOW_TRACKING_URI.value: self.experiments.tracking_uri,
        }
        self.shadow_scheduler = iam.Role(
            self,
            "ShadowScheduler",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="EventBridge Scheduler ends a shadow period by invoking the deploy "
            "function (pipeline/rollout.py)",
        )
        deploy_arn = service_arn("lambda", f"function:{names.step_function('deploy_model')}")
        self.shadow_scheduler.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[deploy_arn.value])
        )
        environment[Env.SHADOW_SCHEDULER_ROLE.value] = self.shadow_scheduler.role_arn
        self.dead_letters = DeadLetters(
            self,
            "DeadLetters",
            purpose="a batch notification or the daily schedule could not start the pipeline, "
            "or a registry event could not reach the deploy function",
        )
        self.functions = {
            handler: self.step_function(handler, environment) for handler in STEP_FUNCTIONS.values()
        }
        self.deploy_function = self.functions["deploy_model"]
        substitutions = {
            placeholder.value: self.functions[handler].function_arn
            for placeholder, handler in STEP_FUNCTIONS.items()
        }
        substitutions |= {
            AslSubstitution.TRAINING_IMAGE.value: training_image_uri(self),
            AslSubstitution.TRAINING_ROLE_ARN.value: self.training_role.role_arn,
            AslSubstitution.TRAINING_INSTANCE_TYPE.value: TRAINING_INSTANCE_TYPE,
            AslSubstitution.TRAINING_OUTPUT_S3_URI.value: lake.artifacts.s3_url_for_object(
                TRAINING_OUTPUT_PREFIX.rstrip("/")
            ),
        }
        self.state_machine = self.asl_state_machine(
            self,
            name=self.names.state_machine,
            asl_file=ASL_PATH,
            substitutions=substitutions,
            timeout=Duration.hours(3),
        )
        self._grant_state_machine()
        self._triggers()
        self.alarm_topic = self._alarm_topic()
        self.dead_letters.alarm_to(self.alarm_topic)
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.failure_alarm = self.alarm_on_failures(
            self,
            "PipelineFailed",
            self.state_machine,
            with_runbook(
                "A training pipeline run failed; production is unchanged. See the run's report "
                "in reports/.",
                "pipeline-failed",
            ),
        )
        self.environment = environment

    def asl_state_machine(
        self,
        scope: Construct,
        *,
        name: str,
        asl_file: Path,
        substitutions: dict[str, str],
        timeout: Duration,
    ) -> sfn.StateMachine:
        """A state machine deployed from one of the shared ASL files (`StateMachine` in `scope`),
        logging every execution with its data to a log group of the stage's retention, traced."""
        log_group = logs.LogGroup(
            scope,
            "StateMachineLogs",
            retention=self.log_retention,
            removal_policy=lifecycle.OPERATIONAL.policy,
        )
        return sfn.StateMachine(
            scope,
            "StateMachine",
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_file(str(asl_file)),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            timeout=timeout,
        )

    def alarm_on_failures(
        self, scope: Construct, construct_id: str, machine: sfn.StateMachine, description: str
    ) -> cloudwatch.Alarm:
        """An alarm on any failed execution of `machine`, to the stage's alarm topic."""
        alarm = cloudwatch.Alarm(
            scope,
            construct_id,
            alarm_description=description,
            metric=machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.alarm_topic))
        return alarm

    def object_created_rule(
        self,
        scope: Construct,
        construct_id: str,
        *,
        rule_name: str,
        description: str,
        pattern: dict[str, object],
        machine: sfn.StateMachine,
    ) -> events.Rule:
        """A rule for the lake's S3 "Object Created" events matching `pattern` that starts
        `machine` through exactly the transformer the local emulation applies
        (contracts.names.RAW_BATCH_EVENT_*), retried, with the dead-letter queue."""
        rule = events.Rule(
            scope,
            construct_id,
            rule_name=rule_name,
            description=description,
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail=pattern["detail"],  # type: ignore[arg-type]
            ),
        )
        rule.add_target(
            targets.SfnStateMachine(
                machine,
                dead_letter_queue=self.dead_letters.queue,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
            )
        )
        rule.node.default_child.add_property_override(  # type: ignore[union-attr]
            "Targets.0.InputTransformer",
            {"InputPathsMap": RAW_BATCH_EVENT_PATHS, "InputTemplate": RAW_BATCH_EVENT_TEMPLATE},
        )
        return rule

    @staticmethod
    def grant_steps(machine: sfn.StateMachine, functions: list[lambda_.Function]) -> Nag:
        """`machine` may invoke its step functions; the Nag of its role, with the invoke grant's
        `<arn>:*` acknowledged."""
        nag = Nag(machine)
        stack = Stack.of(machine)
        for function in functions:
            function.grant_invoke(machine)
            logical_id = stack.get_logical_id(function.node.default_child)  # type: ignore[arg-type]
            nag.acknowledge(
                id=f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                reason="Lambda's invoke grant covers the function's versions and aliases "
                "(<arn>:*).",
            )
        return nag

    def _alarm_topic(self) -> sns.Topic:
        """A topic CloudWatch alarms can publish to: its own customer key, whose policy lets
        CloudWatch use it (the lake's key does not, and alarms cannot use the AWS-managed SNS
        key), and a topic policy that allows CloudWatch's alarms of this account beside the
        TLS-only deny that `enforce_ssl` adds."""
        stack = Stack.of(self)
        alarms_of_this_account = {
            "ArnLike": {
                "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:"
                f"{stack.account}:alarm:*"
            },
            "StringEquals": {"aws:SourceAccount": stack.account},
        }
        key = kms.Key(
            self,
            "AlarmsKey",
            description="Facet: encrypts the alarm topic; CloudWatch may use it to publish.",
            enable_key_rotation=True,
            removal_policy=self.profile.keys.policy,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        topic = sns.Topic(
            self, "Alarms", display_name="Facet alarms", master_key=key, enforce_ssl=True
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=alarms_of_this_account,
            )
        )
        return topic

    def step_function(
        self,
        handler: str,
        environment: dict[str, str],
        *,
        module: str = PIPELINE_HANDLER_MODULE,
        grants: Grants | None = None,
    ) -> lambda_.Function:
        """A pipeline image Lambda running `module.handler`, granted `grants` (default: the
        training pipeline step's, STEP_GRANTS) and nothing else."""
        grants = grants or STEP_GRANTS[handler]
        name = self.names.step_function(handler)
        function = lambda_.DockerImageFunction(
            self,
            handler.title().replace("_", ""),
            function_name=name,
            code=(
                self.pipeline_image.lambda_code(f"{module}.{handler}")
                if self.pipeline_image is not None
                else lambda_.DockerImageCode.from_image_asset(
                    directory=str(REPO),
                    file=PIPELINE_IMAGE_DOCKERFILE,
                    cmd=[f"{module}.{handler}"],
                    exclude=IMAGE_CONTEXT_EXCLUDES,
                    platform=ecr_assets.Platform.LINUX_AMD64,
                )
            ),
            memory_size=PIPELINE_LAMBDA_MEMORY,
            timeout=PIPELINE_LAMBDA_TIMEOUT,
            # The deploy function is also invoked asynchronously, by the registry's events.
            dead_letter_queue=self.dead_letters.queue if handler == "deploy_model" else None,
            environment=environment,
            architecture=lambda_.Architecture.X86_64,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=logs.LogGroup(
                self,
                f"{handler}Logs",
                log_group_name=f"/aws/lambda/{name}",
                retention=self.log_retention,
                removal_policy=lifecycle.OPERATIONAL.policy,
            ),
        )
        nag = Nag(function)
        lake_bucket = bucket(self.names, BucketRole.DATA_LAKE)

        def objects(actions_: list[str], prefixes: tuple[str, ...]) -> None:
            arns = [bucket_objects(self.names, BucketRole.DATA_LAKE, p) for p in prefixes]
            function.add_to_role_policy(
                iam.PolicyStatement(actions=actions_, resources=[a.value for a in arns])
            )
            for arn in arns:
                nag.wildcard(arn, REASONS["prefix"])

        if grants.read:
            objects(["s3:GetObject"], grants.read)
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[lake_bucket.value],
                    conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in grants.read]}},
                )
            )
        if grants.write:
            objects(["s3:PutObject"], grants.write)
        if grants.delete:
            objects(["s3:DeleteObject"], grants.delete)
        if grants.artifacts_read:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"], resources=[self.arns.model_artifacts.value]
                )
            )
            nag.wildcard(self.arns.model_artifacts, REASONS["artifacts"])
        if grants.registry_read or grants.registry_write:
            function.add_to_role_policy(registry_read(self.arns))
            nag.wildcard(self.arns.packages, REASONS["packages"])
        if grants.registry_write:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:CreateModelPackage",
                        "sagemaker:UpdateModelPackage",
                        "sagemaker:AddTags",
                    ],
                    resources=[self.arns.group.value, self.arns.packages.value],
                )
            )
        if grants.describe_training:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeTrainingJob"],
                    resources=[self.arns.training_jobs.value],
                )
            )
            nag.wildcard(self.arns.training_jobs, REASONS["jobs"])
        if grants.production_parameter:
            self.production_parameter.grant_write(function)
        if grants.production_parameter or grants.production_read:
            self.production_parameter.grant_read(function)
        if grants.put_metrics:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {"cloudwatch:namespace": self.names.metric_namespace}
                    },
                )
            )
        if grants.link_runs:
            self.experiments.grant_runs(function, RUN_LINKER_ACTIONS)
        self.lake.key.grant_encrypt_decrypt(function)
        acknowledge_common(nag, metrics=grants.put_metrics)
        if handler == "deploy_model":
            self._grant_rollout(function, nag)
            function.configure_async_invoke(
                retry_attempts=2,
                on_failure=destinations.SqsDestination(self.dead_letters.queue),
            )
        else:
            nag.acknowledge(
                id="Serverless-LambdaDLQ",
                reason="Invoked only synchronously, by the state machine (request-response): "
                "a failure goes to the step's Retry and Catch (Record failure), never to a "
                "dead-letter queue, which only asynchronous invocations use.",
            )
        return function

    def _grant_rollout(self, function: lambda_.Function, nag: Nag) -> None:
        """The deploy function publishes pinned serving versions, starts CodeDeploy deployments
        of the `live` alias and schedules the end of a shadow period (pipeline/rollout.py)."""
        arns = self.arns
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "lambda:GetFunctionConfiguration",
                    "lambda:UpdateFunctionConfiguration",
                    "lambda:PublishVersion",
                    "lambda:GetAlias",
                    "lambda:UpdateAlias",
                ],
                resources=[arns.serving_function.value, arns.serving_versions.value],
            )
        )
        nag.wildcard(
            arns.serving_versions,
            "Each rollout publishes a new version of the serving function (function:name:N) "
            "and moves its alias; the grant covers that one function's qualifiers.",
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "codedeploy:CreateDeployment",
                    "codedeploy:GetDeployment",
                    "codedeploy:ListDeployments",
                    "codedeploy:GetDeploymentGroup",
                    "codedeploy:RegisterApplicationRevision",
                    "codedeploy:GetApplicationRevision",
                    "codedeploy:GetDeploymentConfig",
                ],
                resources=[
                    arns.rollout_group.value,
                    arns.rollout_application.value,
                    arns.deployment_configs.value,
                ],
            )
        )
        nag.wildcard(
            arns.deployment_configs,
            "CreateDeployment names a deployment configuration (the predefined "
            "CodeDeployDefault.Lambda* ones); configurations have no narrower ARN.",
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["scheduler:CreateSchedule"], resources=[arns.shadow_schedules.value]
            )
        )
        nag.wildcard(
            arns.shadow_schedules,
            "One one-time schedule per candidate (…-shadow-ends-v<version>), deleted after "
            "it runs; the grant covers the stage's shadow schedules only.",
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.shadow_scheduler.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            )
        )

    def _training_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "TrainingRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training jobs of the Facet pipeline",
        )
        nag = Nag(role)
        inputs = [
            bucket_objects(self.names, BucketRole.DATA_LAKE, DATASETS_PREFIX),
            bucket_objects(self.names, BucketRole.DATA_LAKE, HOLDOUT),
        ]
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[a.value for a in inputs])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket(self.names, BucketRole.DATA_LAKE).value],
                conditions={"StringLike": {"s3:prefix": [f"{DATASETS_PREFIX}*", f"{HOLDOUT}*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[self.arns.model_artifacts.value]
            )
        )
        # The training code: one object, the source tarball asset.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.source.bucket.arn_for_objects(self.source.s3_object_key)],
            )
        )
        self.lake.key.grant_encrypt_decrypt(role)
        # Experiment tracking: the job's runs on the stage's server, their artifacts in S3.
        self.experiments.grant_runs(role, RUN_WRITER_ACTIONS)
        self.experiments.grant_artifacts(role, write=True)
        training_logs = grant_job_logs(role, "TrainingJobs")
        for arn in inputs:
            nag.wildcard(
                arn,
                "Training reads every object of one dataset version (content-hashed "
                "folder) and of the frozen holdout.",
            )
        nag.wildcard(self.arns.model_artifacts, REASONS["artifacts"])
        nag.wildcard(
            training_logs,
            "SageMaker names a log stream per training job inside this one log group.",
        )
        acknowledge_common(nag, metrics=True, basic=False)
        return role

    def _grant_state_machine(self) -> None:
        nag = self.grant_steps(self.state_machine, list(self.functions.values()))
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[self.arns.training_jobs.value],
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        nag.wildcard(self.arns.training_jobs, REASONS["jobs"])
        acknowledge_common(nag, kms=False, basic=False)

    def _triggers(self) -> None:
        self.object_created_rule(
            self,
            "RawBatchArrived",
            rule_name=self.names.raw_object_rule,
            description="A new batch of appraisals under raw/ starts a pipeline run.",
            pattern=raw_object_event_pattern(self.lake.bucket.bucket_name),
            machine=self.state_machine,
        )
        schedule = events.Rule(
            self,
            "ScheduledDriftCheck",
            rule_name=self.names.drift_schedule_rule,
            description="Daily: check recent inputs for drift; retrain if they moved.",
            schedule=events.Schedule.expression(DRIFT_SCHEDULE_EXPRESSION),
        )
        schedule.add_target(
            targets.SfnStateMachine(
                self.state_machine,
                input=events.RuleTargetInput.from_text(SCHEDULE_EVENT_INPUT),
                dead_letter_queue=self.dead_letters.queue,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
            )
        )
        schedule.node.default_child.add_property_override("Targets.0.Input", SCHEDULE_EVENT_INPUT)  # type: ignore[union-attr]


class TrainingPipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        lake: DataLake,
        profile: StageProfile,
        images: PushedImages,
        alarm_email: str = "",
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.pipeline = TrainingPipeline(
            self,
            "TrainingPipeline",
            names=names,
            lake=lake,
            profile=profile,
            images=images,
            alarm_email=alarm_email,
        )


__all__ = [
    "REASONS",
    "Grants",
    "ScopedArn",
    "TrainingPipeline",
    "TrainingPipelineStack",
    "acknowledge_common",
    "grant_job_logs",
    "registry_read",
]
