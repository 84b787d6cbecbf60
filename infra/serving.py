"""Serving: the price API (API Gateway REST → Lambda running FastAPI via Mangum), and a SageMaker
serverless endpoint running the same code as the alternative (context flag servingEndpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from contracts.api import (
    API_KEY_HEADER,
    API_KEY_NAMES,
    GATEWAY_ANSWERS,
    JSON,
    PARTNER_MONTHLY_QUOTA,
    PRICE_API_ROUTES,
    Access,
    Throttle,
    diamond_request_schema,
    gateway_error_template,
)
from contracts.names import (
    API_STAGE,
    SERVING_HANDLER,
    BucketRole,
    Env,
    StageNames,
    Zone,
)
from contracts.rollout import SERVING_ALIAS, RolloutEnv, rollback_alarms, rollout_policy
from infra import lifecycle
from infra.assets import SERVING_PACKAGE
from infra.data_lake import DataLake
from infra.images import ContainerImage
from infra.nag import Nag, StageArns, bucket_objects, service_arn
from infra.runbooks import with_runbook
from infra.training_pipeline import REASONS, acknowledge_common, registry_read

SERVING_MEMORY = 1024


@dataclass(frozen=True)
class ApiOptions:
    """What a deployment stage tunes about the price API (infra/stages.py)."""

    throttle: Throttle
    reserved_concurrency: int
    provisioned_concurrency: int
    log_retention: logs.RetentionDays
    cors_origins: tuple[str, ...] = ()


def ssm_reference(parameter: str) -> str:
    """A CloudFormation dynamic reference: the parameter's value when the stack deploys."""
    return f"{{{{resolve:ssm:{parameter}}}}}"


def diamond_model_schema() -> apigateway.JsonSchema:
    """The API's Diamond model: contracts.api's JSON Schema as CDK's JsonSchema."""
    types = {
        "object": apigateway.JsonSchemaType.OBJECT,
        "number": apigateway.JsonSchemaType.NUMBER,
        "string": apigateway.JsonSchemaType.STRING,
    }
    schema = diamond_request_schema()
    properties = {}
    for name, prop in schema["properties"].items():
        arguments: dict[str, Any] = {
            "description": prop.get("description"),
            "type": types[prop["type"]],
            "enum": prop.get("enum"),
            "minimum": prop.get("minimum"),
            "exclusive_minimum": prop.get("exclusiveMinimum"),
            "maximum": prop.get("maximum"),
        }
        properties[name] = apigateway.JsonSchema(
            **{k: v for k, v in arguments.items() if v is not None}
        )
    return apigateway.JsonSchema(
        schema=apigateway.JsonSchemaVersion.DRAFT4,
        title=schema["title"],
        type=apigateway.JsonSchemaType.OBJECT,
        required=schema["required"],
        additional_properties=schema["additionalProperties"],
        properties=properties,
    )


class PriceApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        lake: DataLake,
        options: ApiOptions,
        production_parameter: ssm.IStringParameter,
    ) -> None:
        super().__init__(scope, construct_id)
        stage = API_STAGE
        arns = StageArns(names)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=names.serving_function,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            handler=SERVING_HANDLER,
            # Built without Docker by `make assets`: manylinux wheels for python3.12 + our packages.
            code=lambda_.Code.from_asset(str(SERVING_PACKAGE)),
            memory_size=SERVING_MEMORY,
            timeout=Duration.seconds(29),
            reserved_concurrent_executions=options.reserved_concurrency or None,
            environment={
                Env.DATA_BUCKET.value: lake.bucket.bucket_name,
                Env.STAGE.value: names.stage,
                Env.MODEL_PACKAGE_GROUP.value: names.model_package_group,
                Env.PRODUCTION_MODEL_PARAM.value: production_parameter.parameter_name,
                Env.MODEL_REFRESH_SECONDS.value: "30",
                Env.API_STAGE.value: stage,
                Env.CORS_ALLOWED_ORIGINS.value: ",".join(options.cors_origins),
                # A version published by a code deployment serves the model that is production
                # when it is deployed (CloudFormation resolves the pointer then); each model
                # rollout publishes its own pinned version (pipeline/rollout.py).
                RolloutEnv.MODEL_PIN.value: ssm_reference(names.production_parameter),
            },
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=logs.LogGroup(
                self,
                "FunctionLogs",
                log_group_name=f"/aws/lambda/{names.serving_function}",
                retention=options.log_retention,
                removal_policy=lifecycle.OPERATIONAL.policy,
            ),
        )
        inference_logs = bucket_objects(names, BucketRole.DATA_LAKE, Zone.INFERENCE.prefix())
        production_parameter.grant_read(self.function)
        self.function.add_to_role_policy(registry_read(arns))
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[arns.model_artifacts.value])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[inference_logs.value])
        )
        nag = Nag(self.function)
        nag.wildcard(arns.packages, REASONS["packages"])
        nag.wildcard(arns.model_artifacts, REASONS["artifacts"])
        nag.wildcard(
            inference_logs,
            "Inference logs are written as inference/date=<day>/<time>-<id>.csv; "
            "the grant covers that prefix.",
        )
        acknowledge_common(nag)
        for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion"):
            nag.acknowledge(
                id=rule,
                reason="Pinned to python3.12: the package's wheels are built for it and its "
                "cold start is measured (benchmarks/bench_serving.py).",
            )
        nag.acknowledge(
            id="Serverless-LambdaDLQ",
            reason="Invoked only synchronously, by API Gateway: a failure is the caller's 5xx "
            "(alarmed: Api5xx, ServingErrors), never a dead-letter queue's message.",
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": names.metric_namespace}},
            )
        )
        lake.key.grant_encrypt_decrypt(self.function)
        # API Gateway invokes the alias; each promoted model is a version pinned to it, and
        # CodeDeploy shifts the alias between versions (Rollout below, pipeline/rollout.py).
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=SERVING_ALIAS,
            version=self.function.current_version,
            provisioned_concurrent_executions=options.provisioned_concurrency or None,
        )
        self.rollout = Rollout(self, "Rollout", names=names, alias=self.alias, api_stage=stage)
        target: lambda_.IFunction = self.alias

        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=lifecycle.OPERATIONAL.policy,
        )
        # The API keeps nothing: a redeploy recreates it (keys are new; partners get new ones).
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=names.api_name,
            description="Facet diamond prices: POST /v1/prices, /v1/prices/batch; GET "
            "/v1/model, /v1/models (API key); web page at /, docs at /docs",
            binary_media_types=["multipart/form-data", "text/csv"],
            cloud_watch_role=True,
            default_cors_preflight_options=(
                apigateway.CorsOptions(
                    allow_origins=list(options.cors_origins),
                    allow_methods=["GET", "POST", "OPTIONS"],
                    allow_headers=["Content-Type", API_KEY_HEADER],
                    max_age=Duration.minutes(10),
                )
                if options.cors_origins
                else None
            ),
            deploy_options=apigateway.StageOptions(
                stage_name=stage,
                throttling_rate_limit=options.throttle.rate,
                throttling_burst_limit=options.throttle.burst,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                tracing_enabled=True,
                metrics_enabled=True,
            ),
            endpoint_types=[apigateway.EndpointType.REGIONAL],
        )
        integration = apigateway.LambdaIntegration(target, proxy=True)
        validator = apigateway.RequestValidator(
            self,
            "Validator",
            rest_api=self.api,
            validate_request_body=True,
            validate_request_parameters=True,
        )
        diamond = self.api.add_model(
            "Diamond",
            content_type="application/json",
            model_name="Diamond",
            schema=diamond_model_schema(),
        )
        # One resource and method per declared route (contracts.api), no catch-all: a path that
        # is not declared (e.g. the SageMaker container's /invocations) does not exist here.
        for route in PRICE_API_ROUTES:
            resource = (
                self.api.root if route.path == "/" else self.api.root.resource_for_path(route.path)
            )
            resource.add_method(
                route.method,
                integration,
                api_key_required=route.access is Access.API_KEY,
                request_validator=validator if route.validated_body else None,
                request_models={JSON: diamond} if route.validated_body else None,
            )
        # API Gateway's own answers (no key, no such route, throttled, invalid body...) in the
        # app's error shape, with the same statuses the local gateway gives.
        for kind, answer in GATEWAY_ANSWERS.items():
            self.api.add_gateway_response(
                kind.value.title().replace("_", ""),
                type=apigateway.ResponseType.of(kind.value),
                status_code=str(answer.status),
                templates={JSON: gateway_error_template(answer)},
            )
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            name=names.usage_plan,
            throttle=apigateway.ThrottleSettings(
                rate_limit=options.throttle.for_partners().rate,
                burst_limit=options.throttle.for_partners().burst,
            ),
            quota=apigateway.QuotaSettings(
                limit=PARTNER_MONTHLY_QUOTA, period=apigateway.Period.MONTH
            ),
        )
        self.usage_plan.add_api_stage(stage=self.api.deployment_stage)
        CfnOutput(self, "ApiUrl", value=self.api.url, description="The price API's base URL")
        for name in API_KEY_NAMES:
            key = self.api.add_api_key(
                name.title().replace("-", ""), api_key_name=names.api_key(name)
            )
            self.usage_plan.add_api_key(key)
            CfnOutput(
                self,
                f"{name.title().replace('-', '')}KeyId",
                value=key.key_id,
                description=f"API key {names.api_key(name)}: aws apigateway get-api-key "
                "--include-value --api-key <this id>",
            )
        acknowledge_api(self)


class Rollout(Construct):
    """CodeDeploy shifts the `live` alias to a newly approved model's version with the stage's
    canary configuration, and rolls back when any of the three alarms fires (contracts.rollout:
    the API's 5xx share, its p99 latency, and the share of canary prices that disagree with
    production's on the same requests)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        alias: lambda_.Alias,
        api_stage: str,
    ) -> None:
        super().__init__(scope, construct_id)
        policy = rollout_policy(names.stage)
        self.alarms = [
            cloudwatch.Alarm(
                self,
                rule.name.removeprefix(f"{names.prefix}-").title().replace("-", ""),
                alarm_name=rule.name,
                alarm_description=with_runbook(
                    rule.description, rule.name.removeprefix(f"{names.prefix}-")
                ),
                metric=cloudwatch.Metric(
                    namespace=rule.namespace,
                    metric_name=rule.metric,
                    dimensions_map=dict(rule.dimensions),
                    statistic=rule.statistic,
                    period=Duration.seconds(rule.period_seconds),
                ),
                threshold=rule.threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for rule in rollback_alarms(names, policy, api_stage)
        ]
        self.application = codedeploy.LambdaApplication(
            self, "Application", application_name=names.rollout_application
        )
        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "Group",
            application=self.application,
            deployment_group_name=names.rollout_group,
            alias=alias,
            deployment_config=codedeploy.LambdaDeploymentConfig.from_lambda_deployment_config_name(
                self, "Config", policy.deployment_config
            ),
            alarms=self.alarms,
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        Nag(self.group).acknowledge(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
            reason="CodeDeploy's role for Lambda deployments: AWS's managed policy is the "
            "documented one, and its 'Limited' variant can only shift aliases and invoke hooks.",
        )


def acknowledge_api(api: PriceApi) -> None:
    api_validations = Nag(api.api)
    api_validations.acknowledge(
        id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        reason="The account-level role API Gateway needs to write execution logs; "
        "AWS's managed policy is the documented one.",
    )
    public = ", ".join(
        f"{r.method} {r.path}" for r in PRICE_API_ROUTES if r.access is Access.PUBLIC
    )
    api_validations.acknowledge(
        id="AwsSolutions-APIG4",
        reason=f"No authorizer. Public, and pricing nothing: {public} (the page, its files, the "
        "API docs, health). Every /v1 method requires an API key on a usage plan; API keys "
        "meter and throttle partners, they are not authentication (AWS guidance). An IAM or "
        "Cognito authorizer on /v1 is the upgrade path.",
    )
    api_validations.acknowledge(
        id="AwsSolutions-COG4",
        reason="No Cognito user pool: partners are businesses holding API keys (metering, "
        "not authentication, see APIG4); the public methods price nothing.",
    )
    api_validations.acknowledge(
        id="AwsSolutions-APIG3",
        reason="WAF is a per-account decision (cost); throttling and usage plans bound abuse here.",
    )


class SageMakerEndpoint(Construct):
    """The endpoint alternative: the same serving code in a container, following the registry."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        lake: DataLake,
        production_parameter: ssm.IStringParameter,
        image: ContainerImage,
    ) -> None:
        super().__init__(scope, construct_id)
        arns = StageArns(names)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Facet SageMaker endpoint",
        )
        image.grant_pull(role)
        inference_logs = bucket_objects(names, BucketRole.DATA_LAKE, Zone.INFERENCE.prefix())
        role.add_to_policy(registry_read(arns))
        production_parameter.grant_read(role)
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[arns.model_artifacts.value])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[inference_logs.value])
        )
        lake.key.grant_encrypt_decrypt(role)
        endpoint_logs = service_arn("logs", "log-group:/aws/sagemaker/Endpoints/*")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[endpoint_logs.value],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.uri,
                environment={
                    Env.DATA_BUCKET.value: lake.bucket.bucket_name,
                    Env.STAGE.value: names.stage,
                    Env.MODEL_PACKAGE_GROUP.value: names.model_package_group,
                    Env.PRODUCTION_MODEL_PARAM.value: production_parameter.parameter_name,
                    Env.MODEL_REFRESH_SECONDS.value: "60",
                },
            ),
        )
        model.node.add_dependency(role)
        config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    model_name=model.attr_model_name,
                    variant_name="facet",
                    serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                        max_concurrency=5, memory_size_in_mb=2048
                    ),
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=names.sagemaker_endpoint,
            endpoint_config_name=config.attr_endpoint_config_name,
        )
        validations = Nag(self)
        validations.wildcard(arns.packages, REASONS["packages"])
        validations.wildcard(arns.model_artifacts, REASONS["artifacts"])
        validations.wildcard(
            inference_logs, "Inference logs are written as inference/date=<day>/<time>-<id>.csv."
        )
        validations.wildcard(
            endpoint_logs, "SageMaker names the endpoint's log groups after the endpoint."
        )
        validations.acknowledge(
            id="AwsSolutions-SM1", reason="Serverless endpoints do not run in a customer VPC."
        )
        validations.acknowledge(
            id="AwsSolutions-SM2",
            reason="Serverless endpoint configs take no KMS key for instance storage "
            "(none is attached).",
        )
        validations.acknowledge(
            id="AwsSolutions-SM3",
            reason="The container reads the model registry and S3 at run time, so network "
            "isolation cannot be enabled.",
        )
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            validations.acknowledge(
                id=f"AwsSolutions-IAM5[Action::{action}]",
                reason="How CDK grants encrypt/decrypt on the lake key.",
            )
        validations.acknowledge(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken has no resource ARN.",
        )


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        lake: DataLake,
        options: ApiOptions,
        production_parameter: ssm.IStringParameter,
        serving_image: ContainerImage,
        serving_endpoint: bool,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.price_api = PriceApi(
            self,
            "PriceApi",
            names=names,
            lake=lake,
            options=options,
            production_parameter=production_parameter,
        )
        self.endpoint = (
            SageMakerEndpoint(
                self,
                "SageMakerEndpoint",
                names=names,
                lake=lake,
                production_parameter=production_parameter,
                image=serving_image,
            )
            if serving_endpoint
            else None
        )
