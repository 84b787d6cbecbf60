"""Serving: the price API (API Gateway REST → Lambda running FastAPI via Mangum), and a SageMaker
serverless endpoint running the same code as the alternative (context flag servingEndpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from contracts.names import (
    API_NAME,
    MODEL_PACKAGE_GROUP,
    SAGEMAKER_ENDPOINT,
    SERVING_FUNCTION,
    SERVING_HANDLER,
    BucketRole,
    Env,
    Zone,
)
from contracts.schema import Diamond
from infra.assets import IMAGE_CONTEXT_EXCLUDES, REPO, SERVING_IMAGE_DOCKERFILE, SERVING_PACKAGE
from infra.data_lake import DataLake
from infra.nag import Nag, bucket_objects, service_arn
from infra.training_pipeline import (
    MODEL_ARTIFACTS,
    PACKAGES_ARN,
    REASONS,
    acknowledge_common,
    registry_read,
)

SERVING_MEMORY = 1024


@dataclass(frozen=True)
class ApiOptions:
    """What a deployment may tune about the price API (from the CDK context)."""

    stage: str
    throttle_rate: float
    throttle_burst: int
    reserved_concurrency: int
    provisioned_concurrency: int


API_KEYS = ("jeweller-web", "partner-example")
INVALID_BODY_TEMPLATE = (
    '{"error": "invalid input", "message": "$context.error.validationErrorString", '
    '"details": [], "request_id": "$context.requestId"}'
)


def diamond_model_schema() -> apigateway.JsonSchema:
    """The API's Diamond model (contracts.schema) in API Gateway's JSON Schema draft 4."""

    def build(schema: dict[str, Any]) -> apigateway.JsonSchema:
        types = {
            "object": apigateway.JsonSchemaType.OBJECT,
            "number": apigateway.JsonSchemaType.NUMBER,
            "string": apigateway.JsonSchemaType.STRING,
        }
        properties = {}
        for name, prop in schema["properties"].items():
            arguments: dict[str, Any] = {"description": prop.get("description")}
            if "enum" in prop:
                arguments |= {"type": apigateway.JsonSchemaType.STRING, "enum": prop["enum"]}
            else:
                arguments["type"] = types[prop["type"]]
                if "exclusiveMinimum" in prop:
                    arguments |= {"minimum": prop["exclusiveMinimum"], "exclusive_minimum": True}
                if "minimum" in prop:
                    arguments["minimum"] = prop["minimum"]
                if "maximum" in prop:
                    arguments["maximum"] = prop["maximum"]
            properties[name] = apigateway.JsonSchema(**arguments)
        return apigateway.JsonSchema(
            schema=apigateway.JsonSchemaVersion.DRAFT4,
            title="Diamond",
            type=apigateway.JsonSchemaType.OBJECT,
            required=list(schema["required"]),
            additional_properties=False,
            properties=properties,
        )

    return build(Diamond.model_json_schema())


class PriceApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        lake: DataLake,
        options: ApiOptions,
    ) -> None:
        super().__init__(scope, construct_id)
        stage = options.stage
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=SERVING_FUNCTION,
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
                Env.MODEL_PACKAGE_GROUP.value: MODEL_PACKAGE_GROUP,
                Env.MODEL_REFRESH_SECONDS.value: "30",
                Env.API_STAGE.value: stage,
            },
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=logs.LogGroup(
                self,
                "FunctionLogs",
                log_group_name=f"/aws/lambda/{SERVING_FUNCTION}",
                retention=logs.RetentionDays.THREE_MONTHS,
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        inference_logs = bucket_objects(BucketRole.DATA_LAKE, Zone.INFERENCE.prefix())
        self.function.add_to_role_policy(registry_read())
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[MODEL_ARTIFACTS.value])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[inference_logs.value])
        )
        nag = Nag(self.function)
        nag.wildcard(PACKAGES_ARN, REASONS["packages"])
        nag.wildcard(MODEL_ARTIFACTS, REASONS["artifacts"])
        nag.wildcard(
            inference_logs,
            "Inference logs are written as inference/date=<day>/<time>-<id>.csv; "
            "the grant covers that prefix.",
        )
        acknowledge_common(nag)
        nag.acknowledge(
            id="AwsSolutions-L1",
            reason="Pinned to python3.12: the package's wheels are built for it and its "
            "cold start is measured (benchmarks/bench_serving.py).",
        )
        lake.key.grant_encrypt_decrypt(self.function)
        target: lambda_.IFunction = self.function
        if options.provisioned_concurrency:
            target = lambda_.Alias(
                self,
                "Live",
                alias_name="live",
                version=self.function.current_version,
                provisioned_concurrent_executions=options.provisioned_concurrency,
            )

        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=API_NAME,
            description="Facet diamond prices: POST /v1/prices, /v1/prices/batch; GET "
            "/v1/model, /v1/models; web page at /",
            binary_media_types=["multipart/form-data", "text/csv"],
            cloud_watch_role=True,
            deploy_options=apigateway.StageOptions(
                stage_name=stage,
                throttling_rate_limit=options.throttle_rate,
                throttling_burst_limit=options.throttle_burst,
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
        # Public: the web page, docs, health. Partners (and the web page) use an API key on /v1.
        self.api.root.add_method("GET", integration)
        self.api.root.add_proxy(default_integration=integration, any_method=True)
        v1 = self.api.root.add_resource("v1")
        v1.add_proxy(default_integration=integration, any_method=False).add_method(
            "ANY", integration, api_key_required=True
        )
        prices = v1.add_resource("prices")
        prices.add_method(
            "POST",
            integration,
            api_key_required=True,
            request_validator=validator,
            request_models={"application/json": diamond},
        )
        # API Gateway rejects a body that breaks the Diamond model before the Lambda runs; answer
        # in the app's error shape, with the status and the field named, not a bare 400.
        self.api.add_gateway_response(
            "InvalidBody",
            type=apigateway.ResponseType.BAD_REQUEST_BODY,
            status_code="422",
            templates={"application/json": INVALID_BODY_TEMPLATE},
        )
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            name="facet-partners",
            throttle=apigateway.ThrottleSettings(
                rate_limit=options.throttle_rate / 2,
                burst_limit=max(1, options.throttle_burst // 2),
            ),
            quota=apigateway.QuotaSettings(limit=1_000_000, period=apigateway.Period.MONTH),
        )
        self.usage_plan.add_api_stage(stage=self.api.deployment_stage)
        for name in API_KEYS:
            self.usage_plan.add_api_key(
                self.api.add_api_key(name.title().replace("-", ""), api_key_name=f"facet-{name}")
            )
        acknowledge_api(self)


def acknowledge_api(api: PriceApi) -> None:
    api_validations = Nag(api.api)
    api_validations.acknowledge(
        id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        reason="The account-level role API Gateway needs to write execution logs; "
        "AWS's managed policy is the documented one.",
    )
    api_validations.acknowledge(
        id="AwsSolutions-APIG4",
        reason="Partners authenticate with API keys and usage plans on /v1 (metered, "
        "throttled); the web page, docs and health are public by design.",
    )
    api_validations.acknowledge(
        id="AwsSolutions-COG4",
        reason="No Cognito: partner businesses use API keys; the jeweller's staff "
        "page uses its own key. IAM auth is the documented upgrade path.",
    )
    api_validations.acknowledge(
        id="AwsSolutions-APIG3",
        reason="WAF is a per-account decision (cost); throttling and usage plans bound abuse here.",
    )


class SageMakerEndpoint(Construct):
    """The endpoint alternative: the same serving code in a container, following the registry."""

    def __init__(self, scope: Construct, construct_id: str, *, lake: DataLake) -> None:
        super().__init__(scope, construct_id)
        image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO),
            file=SERVING_IMAGE_DOCKERFILE,
            exclude=IMAGE_CONTEXT_EXCLUDES,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Facet SageMaker endpoint",
        )
        image.repository.grant_pull(role)
        inference_logs = bucket_objects(BucketRole.DATA_LAKE, Zone.INFERENCE.prefix())
        role.add_to_policy(registry_read())
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[MODEL_ARTIFACTS.value])
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
                image=image.image_uri,
                environment={
                    Env.DATA_BUCKET.value: lake.bucket.bucket_name,
                    Env.MODEL_PACKAGE_GROUP.value: MODEL_PACKAGE_GROUP,
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
            endpoint_name=SAGEMAKER_ENDPOINT,
            endpoint_config_name=config.attr_endpoint_config_name,
        )
        validations = Nag(self)
        validations.wildcard(PACKAGES_ARN, REASONS["packages"])
        validations.wildcard(MODEL_ARTIFACTS, REASONS["artifacts"])
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
        lake: DataLake,
        options: ApiOptions,
        serving_endpoint: bool,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.price_api = PriceApi(
            self,
            "PriceApi",
            lake=lake,
            options=options,
        )
        self.endpoint = (
            SageMakerEndpoint(self, "SageMakerEndpoint", lake=lake) if serving_endpoint else None
        )
