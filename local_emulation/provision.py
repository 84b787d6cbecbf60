"""Create in the emulator the resources the CDK app declares, from the same names and files.

Idempotent: running it against an emulator that already has them changes nothing but code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

import boto3

from contracts.names import (
    API_STAGE,
    LEDGER_PREFIX,
    LOCAL_SERVING_IMAGE,
    PIPELINE_CODE_PACKAGES,
    PIPELINE_HANDLER_MODULE,
    RAW_BATCH_EVENT_PATHS,
    RAW_BATCH_EVENT_TEMPLATE,
    SCORING_HANDLER_MODULE,
    SCORING_STEP_FUNCTIONS,
    SERVING_CODE_PACKAGES,
    SERVING_HANDLER,
    STEP_FUNCTIONS,
    TRAINING_CODE_KEY,
    TRAINING_OUTPUT_PREFIX,
    AslSubstitution,
    BucketRole,
    Env,
    ScoringSubstitution,
    StageNames,
    catalogue_event_pattern,
    deployment_finished_pattern,
    model_package_state_pattern,
    raw_object_event_pattern,
)
from contracts.pointer import ProductionPointer
from contracts.rollout import SERVING_ALIAS, rollback_alarms, rollout_policy
from contracts.settings import Settings
from infra.packaging import (
    image_distributions,
    lambda_zip,
    serving_distributions,
    training_source_tarball,
)
from local_emulation import rest_api
from local_emulation.emulator import CLIENT_CONFIG
from pipeline.definition import scoring_definition, substitute
from pipeline.seeding import seed_lake
from training.registry import describe, ensure_group, read_pointer, write_pointer

log = logging.getLogger("facet.emulation.provision")
LAMBDA_RUNTIME: Final = "python3.12"
PIPELINE_LAMBDA_TIMEOUT: Final = 300
PIPELINE_LAMBDA_MEMORY: Final = 2048
LOCAL_TRAINING_IMAGE: Final = "local/facet-training:framework"
LOCAL_INSTANCE_TYPE: Final = "ml.m5.large"
# Instances of a local transform job: one worker process each, capped by the CPUs available.
LOCAL_TRANSFORM_INSTANCES: Final = 2
# A trigger received but not deleted (its reader crashed) comes back after this long; starting
# an execution takes well under a second, so no live reader loses its message to another.
TRIGGER_REDELIVERY_SECONDS: Final = 10
_ASSUME: Final = {
    "lambda": "lambda.amazonaws.com",
    "sagemaker": "sagemaker.amazonaws.com",
    "states": "states.amazonaws.com",
    "codedeploy": "codedeploy.amazonaws.com",
    "scheduler": "scheduler.amazonaws.com",
}
# Locally the serving versions write inference rows (and so the canary's disagreement metric)
# at least this often: the stand-in for CodeDeploy evaluates alarms on compressed periods.
LOCAL_SERVING_FLUSH_SECONDS: Final = 0.25


@dataclass(frozen=True)
class Deployment:
    """Where everything is, for the CLI and the tests."""

    account: str
    region: str
    stage: str
    data_bucket: str
    artifacts_bucket: str
    state_machine_arn: str
    trigger_queue_url: str
    model_package_group: str
    scoring_state_machine_arn: str = ""
    scoring_queue_url: str = ""

    @property
    def names(self) -> StageNames:
        return StageNames(self.stage)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def deployment_names(account: str, region: str, stage: str) -> Deployment:
    names = StageNames(stage)
    return Deployment(
        account=account,
        region=region,
        stage=stage,
        data_bucket=names.bucket(BucketRole.DATA_LAKE, account, region),
        artifacts_bucket=names.bucket(BucketRole.ARTIFACTS, account, region),
        state_machine_arn=f"arn:aws:states:{region}:{account}:stateMachine:{names.state_machine}",
        trigger_queue_url="",
        model_package_group=names.model_package_group,
        scoring_state_machine_arn=(
            f"arn:aws:states:{region}:{account}:stateMachine:{names.scoring_state_machine}"
        ),
    )


def client(service: str) -> Any:
    return boto3.client(service, config=CLIENT_CONFIG)


def client_beside(service: str, anchor: str) -> Any:
    """A client of `service` on the endpoint that serves `anchor` (with LocalStack as the
    backend, some services stay on moto: what belongs to them must be created there too)."""
    endpoint = os.environ.get(f"AWS_ENDPOINT_URL_{anchor.upper()}") or os.environ.get(
        "AWS_ENDPOINT_URL"
    )
    return boto3.client(service, config=CLIENT_CONFIG, endpoint_url=endpoint)


def _role(iam: Any, name: str, service: str) -> str:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": _ASSUME[service]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"][
                "Arn"
            ]
        )


def _bucket(s3: Any, name: str, region: str) -> None:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if name not in existing:
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _empty_stale_lake(s3: Any, sagemaker: Any, group: str, buckets: tuple[str, ...]) -> None:
    """A lake that remembers processed batches beside a registry that holds no model is the
    lake of an earlier run whose registry is gone (an embedded moto ends with its process, a
    LocalStack keeps running): its batches would all be skipped as processed. Empty it, so that
    the lake and the registry describe one deployment again."""
    if sagemaker.list_model_packages(ModelPackageGroupName=group, MaxResults=1)[
        "ModelPackageSummaryList"
    ]:
        return
    if not s3.list_objects_v2(Bucket=buckets[0], Prefix=LEDGER_PREFIX, MaxKeys=1).get("KeyCount"):
        return
    for bucket in buckets:
        log.warning(
            "emptying s3://%s: it holds an earlier run's lake, but the registry is new", bucket
        )
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            objects = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if objects:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def pipeline_environment(
    deployment: Deployment, *, poll_seconds: int, models: str, hyperparameters: dict[str, str]
) -> dict[str, str]:
    return {
        Env.DATA_BUCKET.value: deployment.data_bucket,
        Env.ARTIFACTS_BUCKET.value: deployment.artifacts_bucket,
        Env.STAGE.value: deployment.stage,
        Env.MODEL_PACKAGE_GROUP.value: deployment.model_package_group,
        Env.PRODUCTION_MODEL_PARAM.value: deployment.names.production_parameter,
        Env.TRAINING_POLL_SECONDS.value: str(poll_seconds),
        Env.TRAINING_MAX_SECONDS.value: "900",
        Env.TRAINING_MODELS.value: models,
        Env.TRAINING_HYPERPARAMETERS.value: json.dumps(hyperparameters),
        Env.TRAINING_SOURCE_S3_URI.value: f"s3://{deployment.artifacts_bucket}/{TRAINING_CODE_KEY}",
        Env.STATE_MACHINE_ARN.value: deployment.state_machine_arn,
        Env.SERVING_IMAGE.value: LOCAL_SERVING_IMAGE,
    }


def serving_environment(deployment: Deployment, *, refresh_seconds: float = 5.0) -> dict[str, str]:
    return {
        Env.DATA_BUCKET.value: deployment.data_bucket,
        Env.STAGE.value: deployment.stage,
        Env.MODEL_PACKAGE_GROUP.value: deployment.model_package_group,
        Env.PRODUCTION_MODEL_PARAM.value: deployment.names.production_parameter,
        Env.MODEL_REFRESH_SECONDS.value: str(refresh_seconds),
        Env.API_STAGE.value: API_STAGE,
        Env.INFERENCE_LOG_FLUSH_SECONDS.value: str(LOCAL_SERVING_FLUSH_SECONDS),
    }


def _publish_base_version(lam: Any, function: str) -> None:
    """The alias API Gateway invokes, on a version that follows the production pointer (no pin):
    what a code deployment publishes; the rollout publishes pinned versions beside it."""
    version = lam.publish_version(FunctionName=function, Description="code (follows production)")[
        "Version"
    ]
    try:
        lam.get_alias(FunctionName=function, Name=SERVING_ALIAS)
    except lam.exceptions.ResourceNotFoundException:
        lam.create_alias(FunctionName=function, Name=SERVING_ALIAS, FunctionVersion=version)


def _rollout_resources(
    names: StageNames, *, codedeploy_role: str, deploy_arn: str, events: Any
) -> None:
    """The CodeDeploy application and deployment group, their alarms, and the rule that brings
    CodeDeploy's verdicts to the deploy function: what infra/serving.py declares."""
    policy = rollout_policy(names.stage)
    cloudwatch, codedeploy = client("cloudwatch"), client("codedeploy")
    alarms = rollback_alarms(names, policy, API_STAGE)
    for alarm in alarms:
        statistic = (
            {"ExtendedStatistic": alarm.statistic}
            if alarm.statistic.startswith("p")
            else {"Statistic": alarm.statistic}
        )
        cloudwatch.put_metric_alarm(
            AlarmName=alarm.name,
            AlarmDescription=alarm.description,
            Namespace=alarm.namespace,
            MetricName=alarm.metric,
            Dimensions=alarm.dimension_list(),
            Period=alarm.period_seconds,
            EvaluationPeriods=1,
            Threshold=alarm.threshold,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            **statistic,
        )
    if names.rollout_application not in codedeploy.list_applications()["applications"]:
        codedeploy.create_application(
            applicationName=names.rollout_application, computePlatform="Lambda"
        )
    groups = codedeploy.list_deployment_groups(applicationName=names.rollout_application)
    if names.rollout_group not in groups["deploymentGroups"]:
        codedeploy.create_deployment_group(
            applicationName=names.rollout_application,
            deploymentGroupName=names.rollout_group,
            serviceRoleArn=codedeploy_role,
            deploymentConfigName=policy.deployment_config,
            deploymentStyle={
                "deploymentType": "BLUE_GREEN",
                "deploymentOption": "WITH_TRAFFIC_CONTROL",
            },
            alarmConfiguration={"enabled": True, "alarms": [{"name": a.name} for a in alarms]},
            autoRollbackConfiguration={
                "enabled": True,
                "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"],
            },
        )
    events.put_rule(
        Name=names.rollout_rule,
        EventPattern=json.dumps(deployment_finished_pattern(names.rollout_application)),
        State="ENABLED",
    )
    events.put_targets(
        Rule=names.rollout_rule, Targets=[{"Id": "deploy-function", "Arn": deploy_arn}]
    )


def _function(
    lam: Any,
    *,
    name: str,
    handler: str,
    role: str,
    code: bytes,
    environment: dict[str, str],
    timeout: int,
    memory: int,
) -> str:
    try:
        lam.get_function(FunctionName=name)
        lam.update_function_code(FunctionName=name, ZipFile=code)
        arn = lam.update_function_configuration(
            FunctionName=name,
            Environment={"Variables": environment},
            Timeout=timeout,
            MemorySize=memory,
        )["FunctionArn"]
    except lam.exceptions.ResourceNotFoundException:
        arn = lam.create_function(
            FunctionName=name,
            Runtime=LAMBDA_RUNTIME,
            Role=role,
            Handler=handler,
            Code={"ZipFile": code},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": environment},
            Architectures=["x86_64"],
        )["FunctionArn"]
    return str(arn)


def _step_functions(
    lam: Any,
    names: StageNames,
    steps: Iterable[tuple[StrEnum, str]],
    module: str,
    *,
    role: str,
    code: bytes,
    environment: dict[str, str],
) -> dict[str, str]:
    """One function per step (`module.handler`); the ASL substitutions naming them."""
    return {
        placeholder.value: _function(
            lam,
            name=names.step_function(handler),
            handler=f"{module}.{handler}",
            role=role,
            code=code,
            environment=environment,
            timeout=PIPELINE_LAMBDA_TIMEOUT,
            memory=PIPELINE_LAMBDA_MEMORY,
        )
        for placeholder, handler in steps
    }


def _state_machine(name: str, definition: str, role: str) -> str:
    sfn = client("stepfunctions")
    existing = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    if name in existing:
        sfn.update_state_machine(
            stateMachineArn=existing[name], definition=definition, roleArn=role
        )
        return str(existing[name])
    return str(
        sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"]
    )


def _s3_trigger(rule: str, pattern: dict[str, object], queue: str) -> str:
    """A rule for S3 "Object Created" events that feeds a local queue with the cloud rule's
    input transformer; the queue's URL."""
    sqs, events = client("sqs"), client("events")
    queue_url = sqs.create_queue(
        QueueName=queue, Attributes={"VisibilityTimeout": str(TRIGGER_REDELIVERY_SECONDS)}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
    transformer = {
        "InputPathsMap": RAW_BATCH_EVENT_PATHS,
        "InputTemplate": RAW_BATCH_EVENT_TEMPLATE,
    }
    events.put_targets(
        Rule=rule,
        Targets=[{"Id": "local-trigger-queue", "Arn": queue_arn, "InputTransformer": transformer}],
    )
    return str(queue_url)


def _lake_key(names: StageNames) -> str:
    """The lake's customer key (the transform job encrypts its output with it), by alias."""
    kms = client("kms")
    alias = f"alias/{names.prefix}-lake"
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except kms.exceptions.NotFoundException:
        arn = kms.create_key(Description=f"{names.prefix}: the data lake")["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
        return str(arn)


def _scoring_flow(
    stage_names: StageNames,
    names: Deployment,
    *,
    code: bytes,
    environment: dict[str, str],
    roles: dict[str, str],
) -> tuple[str, str]:
    """The bulk scoring flow: its step functions, state machine and catalogue trigger."""
    lam = client("lambda")
    scoring_environment = environment | {
        Env.TRANSFORM_INSTANCE_COUNT.value: str(LOCAL_TRANSFORM_INSTANCES)
    }
    substitutions = _step_functions(
        lam,
        stage_names,
        SCORING_STEP_FUNCTIONS.items(),
        SCORING_HANDLER_MODULE,
        role=roles["lambda"],
        code=code,
        environment=scoring_environment,
    )
    substitutions |= {
        ScoringSubstitution.MODEL_ROLE_ARN.value: roles["sagemaker"],
        ScoringSubstitution.INSTANCE_TYPE.value: LOCAL_INSTANCE_TYPE,
        ScoringSubstitution.OUTPUT_KEY_ARN.value: _lake_key(stage_names),
    }
    arn = _state_machine(
        stage_names.scoring_state_machine, scoring_definition(substitutions), roles["states"]
    )
    queue_url = _s3_trigger(
        stage_names.catalogue_rule,
        catalogue_event_pattern(names.data_bucket),
        stage_names.local_scoring_queue,
    )
    return arn, queue_url


def _reset_stale_pointer(ssm: Any, sagemaker: Any, parameter: str) -> None:
    """The pointer is derived from the registry: empty it if it names a package the registry
    does not hold (with LocalStack as the backend, SSM keeps its state across runs while the
    embedded registry starts empty)."""
    pointer = read_pointer(ssm, parameter)
    if pointer.arn is not None:
        try:
            describe(sagemaker, pointer.arn)
            return
        except sagemaker.exceptions.ClientError:
            log.info("production pointer named %s, unknown to this registry: reset", pointer.arn)
    write_pointer(ssm, parameter, ProductionPointer())


def provision(
    *,
    stage: str | None = None,
    archive_only: bool = True,
    poll_seconds: int | None = None,
    models: str = "linear,tree,lightgbm",
    hyperparameters: dict[str, str] | None = None,
    api_stand_in: str | None = None,
    approval: str | None = None,
    shadow: tuple[float, int] | None = None,
    tracking_uri: str | None = None,
) -> Deployment:
    """Everything the pipeline needs, in the emulator the environment points at; the stage's
    names (default: FACET_STAGE, else dev) keep stages apart in one emulator, as in one account."""
    sts = client("sts")
    account = sts.get_caller_identity()["Account"]
    region = boto3.session.Session().region_name or "us-east-1"
    stage = stage or Settings().stage
    names = deployment_names(account, region, stage)
    stage_names = names.names
    iam, s3, lam = client("iam"), client("s3"), client("lambda")
    roles = {service: _role(iam, stage_names.role(service), service) for service in _ASSUME}
    for bucket in (names.data_bucket, names.artifacts_bucket):
        _bucket(s3, bucket, region)
    s3.put_bucket_notification_configuration(
        Bucket=names.data_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    sagemaker = client("sagemaker")
    ensure_group(sagemaker, names.model_package_group)
    _empty_stale_lake(
        s3, sagemaker, names.model_package_group, (names.data_bucket, names.artifacts_bucket)
    )
    seeded = seed_lake(s3, names.data_bucket, archive_only=archive_only)
    if seeded:
        log.info("seeded the lake: %s", seeded)
    s3.put_object(
        Bucket=names.artifacts_bucket, Key=TRAINING_CODE_KEY, Body=training_source_tarball()
    )
    _reset_stale_pointer(client("ssm"), sagemaker, stage_names.production_parameter)

    environment = pipeline_environment(
        names,
        poll_seconds=poll_seconds or Settings().local_training_poll_seconds,
        models=models,
        hyperparameters=hyperparameters or {},
    )
    # With LocalStack as the backend, CloudWatch is LocalStack's while the stand-in for CodeDeploy
    # reads moto's: there, production still moves at once (docs/local-emulation.md).
    rollout = api_stand_in is None
    if rollout:
        environment |= {
            Env.ROLLOUT_GROUP.value: stage_names.rollout_group,
            Env.SHADOW_SCHEDULER_ROLE.value: roles["scheduler"],
        }
    if approval:
        environment[Env.APPROVAL_MODE.value] = approval
    if tracking_uri:
        environment[Env.MLFLOW_TRACKING_URI.value] = tracking_uri
    if shadow is not None:
        environment[Env.SHADOW_SAMPLE.value] = f"{shadow[0]:g}"
        environment[Env.SHADOW_MINUTES.value] = str(shadow[1])
    code = lambda_zip(PIPELINE_CODE_PACKAGES, distributions=image_distributions())
    substitutions = _step_functions(
        lam,
        stage_names,
        STEP_FUNCTIONS.items(),
        PIPELINE_HANDLER_MODULE,
        role=roles["lambda"],
        code=code,
        environment=environment,
    )
    serving_arn = _function(
        lam,
        name=stage_names.serving_function,
        handler=SERVING_HANDLER,
        role=roles["lambda"],
        code=lambda_zip(SERVING_CODE_PACKAGES, distributions=serving_distributions()),
        environment=serving_environment(names),
        timeout=29,
        memory=1024,
    )
    _publish_base_version(lam, stage_names.serving_function)
    substitutions |= {
        AslSubstitution.TRAINING_IMAGE.value: LOCAL_TRAINING_IMAGE,
        AslSubstitution.TRAINING_ROLE_ARN.value: roles["sagemaker"],
        AslSubstitution.TRAINING_INSTANCE_TYPE.value: LOCAL_INSTANCE_TYPE,
        AslSubstitution.TRAINING_OUTPUT_S3_URI.value: f"s3://{names.artifacts_bucket}/{TRAINING_OUTPUT_PREFIX.rstrip('/')}",
    }
    state_machine_arn = _state_machine(
        stage_names.state_machine, substitute(substitutions), roles["states"]
    )
    # The cloud rule targets the state machine with the transformer. moto 5.2.5 cannot deliver to
    # a Step Functions target (NotImplementedError, which also stops delivery to the targets after
    # it), so the local rule feeds a queue and `triggers.drain` starts executions. LocalStack
    # applies the transformer; moto skips it for S3 events, so `drain` applies the same one.
    queue_url = _s3_trigger(
        stage_names.raw_object_rule,
        raw_object_event_pattern(names.data_bucket),
        stage_names.local_trigger_queue,
    )
    scoring_arn, scoring_queue_url = _scoring_flow(
        stage_names, names, code=code, environment=environment, roles=roles
    )
    # The registry's state-change events move the production pointer (pipeline.promotion). The
    # rule lives beside the registry and the deploy function, on moto, whatever the backend.
    registry_events = client_beside("events", "sagemaker")
    registry_events.put_rule(
        Name=stage_names.model_approval_rule,
        EventPattern=json.dumps(model_package_state_pattern(names.model_package_group)),
        State="ENABLED",
    )
    deploy_arn = substitutions[AslSubstitution.DEPLOY_FUNCTION_ARN.value]
    registry_events.put_targets(
        Rule=stage_names.model_approval_rule,
        Targets=[{"Id": "deploy-function", "Arn": deploy_arn}],
    )
    if rollout:
        _rollout_resources(
            stage_names,
            codedeploy_role=roles["codedeploy"],
            deploy_arn=deploy_arn,
            events=registry_events,
        )
    # The cloud's integration is the serving Lambda; on LocalStack, which cannot run it, an HTTP
    # stand-in running the same handler (`api_stand_in`, the local gateway's URL).
    rest_api.declare(
        client("apigateway"),
        stage_names,
        rest_api.HttpProxy(api_stand_in)
        if api_stand_in
        else rest_api.LambdaProxy(serving_arn, region),
    )
    return Deployment(
        account,
        region,
        stage,
        names.data_bucket,
        names.artifacts_bucket,
        state_machine_arn,
        queue_url,
        names.model_package_group,
        scoring_arn,
        scoring_queue_url,
    )
