"""Property assertions on the synthesized templates (never on hash-suffixed logical IDs)."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match

from contracts.api import GATEWAY_ANSWERS, PRICE_API_ROUTES, diamond_request_schema
from contracts.names import (
    API_STAGE,
    PRICE_SHIFT_METRIC,
    PRODUCTION_ERROR_ON_BATCH_METRIC,
    SCORING_STEP_FUNCTIONS,
    SERVING_HANDLER,
    STEP_FUNCTIONS,
    Env,
    StageNames,
)
from contracts.rollout import SERVING_ALIAS, RolloutEnv, rollback_alarms, rollout_policy
from contracts.settings import GatePolicy, VerdictPolicy
from infra.stages import PROFILES
from pipeline.definition import expected_substitutions, raw_definition, state_names, substitute
from tests.infra.conftest import Synthesized

ENV_NAMES = {member.value for member in Env} | {member.value for member in RolloutEnv}
NAMES = StageNames("dev")  # cdk.json's stage
STATE_MACHINE = NAMES.state_machine
SERVING_FUNCTION = NAMES.serving_function
MODEL_PACKAGE_GROUP = NAMES.model_package_group
METRIC_NAMESPACE = NAMES.metric_namespace
step_function_name = NAMES.step_function
DEV = PROFILES["dev"]


def resources(synthesized: Synthesized, stack: str, kind: str) -> dict[str, Any]:
    return {k: v for k, v in synthesized.raw(stack)["Resources"].items() if v["Type"] == kind}


def state_machine(synthesized: Synthesized, name: str) -> dict[str, Any]:
    (machine,) = [
        m
        for m in resources(
            synthesized, "FacetTrainingPipeline", "AWS::StepFunctions::StateMachine"
        ).values()
        if m["Properties"]["StateMachineName"] == name
    ]
    return machine


def test_data_lake_buckets_are_kms_encrypted_versioned_private(synthesized: Synthesized) -> None:
    template = synthesized.template("FacetDataLake")
    template.resource_properties_count_is(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": Match.any_value(),
                            }
                        }
                    )
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": Match.object_like({"DestinationBucketName": Match.any_value()}),
        },
        2,
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_data_lake_lifecycle_rules_for_raw_and_inference(synthesized: Synthesized) -> None:
    buckets = resources(synthesized, "FacetDataLake", "AWS::S3::Bucket").values()
    rules = [
        rule
        for b in buckets
        for rule in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    ]
    by_prefix = {rule.get("Prefix"): rule for rule in rules}
    assert by_prefix["raw/"]["Transitions"][0]["StorageClass"] == "STANDARD_IA"
    assert by_prefix["inference/"]["ExpirationInDays"] == 365


def test_every_bucket_denies_plain_http(synthesized: Synthesized) -> None:
    policies = resources(synthesized, "FacetDataLake", "AWS::S3::BucketPolicy").values()
    assert len(policies) == 3
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_data_lake_sends_object_events_to_eventbridge(synthesized: Synthesized) -> None:
    synthesized.template("FacetDataLake").has_resource_properties(
        "Custom::S3BucketNotifications",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {}}},
    )


def test_state_machine_is_the_shared_asl_file_with_substitutions(synthesized: Synthesized) -> None:
    machine = state_machine(synthesized, STATE_MACHINE)
    properties = machine["Properties"]
    assert properties["StateMachineName"] == STATE_MACHINE
    # DefinitionBody.from_file ships the file itself as an S3 asset, byte for byte.
    asset = synthesized.outdir / f"asset.{properties['DefinitionS3Location']['Key']}"
    assert asset.read_text() == raw_definition()
    assert set(properties["DefinitionSubstitutions"]) == expected_substitutions()
    # Substituting placeholder values gives the same states the local emulation runs.
    values = {
        name: f"arn:aws:lambda:us-east-1:111111111111:function:{name}"
        for name in expected_substitutions()
    }
    assert state_names(substitute(values)) == state_names()
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"


def test_state_machine_substitutes_each_step_function(synthesized: Synthesized) -> None:
    machine = state_machine(synthesized, STATE_MACHINE)
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    functions = resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function")
    by_logical_id = {
        logical_id: f["Properties"]["FunctionName"] for logical_id, f in functions.items()
    }
    for placeholder, handler in STEP_FUNCTIONS.items():
        logical_id = substitutions[placeholder.value]["Fn::GetAtt"][0]
        assert by_logical_id[logical_id] == step_function_name(handler)
    # With a fixed region the SDK's lookup gives the concrete framework image URI.
    assert (
        substitutions["TrainingImage"]
        == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    )


def test_pipeline_functions_are_images_with_their_handler_and_shared_env_names(
    synthesized: Synthesized,
) -> None:
    functions = resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function")
    commands = {}
    for function in functions.values():
        properties = function["Properties"]
        if properties.get("PackageType") != "Image":
            continue
        commands[properties["FunctionName"]] = properties["ImageConfig"]["Command"][0]
        assert set(properties["Environment"]["Variables"]) <= ENV_NAMES
        assert properties["MemorySize"] >= 2048 and properties["TracingConfig"] == {
            "Mode": "Active"
        }
    assert commands == {
        step_function_name(h): f"pipeline.handlers.{h}" for h in STEP_FUNCTIONS.values()
    } | {step_function_name(h): f"pipeline.scoring.{h}" for h in SCORING_STEP_FUNCTIONS.values()}


def test_serving_lambda_runtime_memory_and_environment(synthesized: Synthesized) -> None:
    template = synthesized.template("FacetServing")
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": SERVING_FUNCTION,
            "Runtime": "python3.12",
            "Handler": SERVING_HANDLER,
            "MemorySize": 1024,
            "Architectures": ["x86_64"],
            "Environment": {
                "Variables": Match.object_like({Env.MODEL_PACKAGE_GROUP.value: MODEL_PACKAGE_GROUP})
            },
        },
    )
    (function,) = [
        f
        for f in resources(synthesized, "FacetServing", "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == SERVING_FUNCTION
    ]
    assert set(function["Properties"]["Environment"]["Variables"]) <= ENV_NAMES


def test_api_stage_throttling_access_logs_and_tracing(synthesized: Synthesized) -> None:
    synthesized.template("FacetServing").has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": API_STAGE,
            "TracingEnabled": True,
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {
                            "ThrottlingRateLimit": DEV.throttle.rate,
                            "ThrottlingBurstLimit": DEV.throttle.burst,
                        }
                    )
                ]
            ),
        },
    )


def _method_paths(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(HTTP method, resource path, properties) of every API Gateway method in a template."""
    resources_ = {
        k: v["Properties"] for k, v in template.items() if v["Type"] == "AWS::ApiGateway::Resource"
    }

    def path(resource_id: Any) -> str:
        if "Fn::GetAtt" in resource_id:
            return ""  # the RestApi's root resource
        resource = resources_[resource_id["Ref"]]
        return f"{path(resource['ParentId'])}/{resource['PathPart']}"

    return [
        (v["Properties"]["HttpMethod"], path(v["Properties"]["ResourceId"]) or "/", v["Properties"])
        for v in template.values()
        if v["Type"] == "AWS::ApiGateway::Method"
    ]


def test_api_has_exactly_the_declared_routes_and_every_pricing_method_needs_a_key(
    synthesized: Synthesized,
) -> None:
    methods = _method_paths(synthesized.raw("FacetServing")["Resources"])
    to_lambda = {
        (method, path): props
        for method, path, props in methods
        if props["Integration"]["Type"] == "AWS_PROXY"
    }
    # One method per declared route; no catch-all; the SageMaker routes are absent
    assert set(to_lambda) == {(r.method, r.path) for r in PRICE_API_ROUTES}
    assert not any("{proxy+}" in path and not path.startswith("/static/") for _, path in to_lambda)
    assert not any(path in {"/invocations", "/ping"} for _, path in to_lambda)
    for (method, path), props in to_lambda.items():
        if path.startswith("/v1/"):  # pricing code, and the model registry's contents
            assert props["ApiKeyRequired"] is True, (method, path)
        else:
            assert method == "GET" and not props.get("ApiKeyRequired"), (method, path)
    # CORS preflight (MOCK integrations) for the configured partner origins, never keyed
    preflights = [props for method, _, props in methods if method == "OPTIONS"]
    assert preflights and all(p["Integration"]["Type"] == "MOCK" for p in preflights)
    assert all(not p.get("ApiKeyRequired") for p in preflights)
    assert all(origin in json.dumps(preflights) for origin in DEV.cors_origins)


def test_api_validates_the_price_body_against_the_schema(synthesized: Synthesized) -> None:
    template = synthesized.raw("FacetServing")["Resources"]
    validated = [
        (method, path)
        for method, path, props in _method_paths(template)
        if props.get("RequestValidatorId")
    ]
    assert validated == [("POST", "/v1/prices")]
    models = [r["Properties"] for r in template.values() if r["Type"] == "AWS::ApiGateway::Model"]
    schema = models[0]["Schema"]
    assert schema["properties"]["cut"]["enum"] == ["Fair", "Good", "Very Good", "Premium", "Ideal"]
    assert schema["properties"]["carat"] | {"description": ""} == {
        "description": "",
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 10,
    }
    assert schema["additionalProperties"] is False
    # the emulators declare their Diamond model from the same contract
    assert schema == diamond_request_schema()
    usage_plans = [
        r["Properties"] for r in template.values() if r["Type"] == "AWS::ApiGateway::UsagePlan"
    ]
    assert usage_plans[0]["Throttle"] and usage_plans[0]["Quota"]["Period"] == "MONTH"


def test_api_gateways_own_answers_use_the_apps_error_shape(synthesized: Synthesized) -> None:
    template = synthesized.raw("FacetServing")["Resources"]
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in template.values()
        if r["Type"] == "AWS::ApiGateway::GatewayResponse"
    }
    assert set(responses) == {kind.value for kind in GATEWAY_ANSWERS}
    for kind, answer in GATEWAY_ANSWERS.items():
        props = responses[kind.value]
        assert props["StatusCode"] == str(answer.status)
        body = props["ResponseTemplates"]["application/json"]
        assert f'"error": "{answer.error}"' in body and "$context.requestId" in body


def test_serving_lambda_gets_the_stage_cors_origins(synthesized: Synthesized) -> None:
    synthesized.template("FacetServing").has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": SERVING_FUNCTION,
            "Environment": {
                "Variables": Match.object_like(
                    {Env.CORS_ALLOWED_ORIGINS.value: ",".join(DEV.cors_origins)}
                )
            },
        },
    )


def _statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for stack in synthesized.stacks:
        for logical_id, resource in synthesized.raw(stack)["Resources"].items():
            if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::Role"}:
                documents = [resource["Properties"].get("PolicyDocument")] + [
                    p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])
                ]
                for document in filter(None, documents):
                    found += [(f"{stack}/{logical_id}", s) for s in document["Statement"]]
    return found


ALLOWED_STAR_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
    "ecr:GetAuthorizationToken",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_iam_never_grants_star_resources_where_an_arn_exists(synthesized: Synthesized) -> None:
    for where, statement in _statements(synthesized):
        resources_ = statement.get("Resource")
        if resources_ in ("*", ["*"]):
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert set(actions) <= ALLOWED_STAR_ACTIONS, (where, actions)
            if "cloudwatch:PutMetricData" in actions:
                assert "cloudwatch:namespace" in json.dumps(statement.get("Condition", {})), where


def test_iam_s3_object_grants_are_scoped_to_zone_prefixes(synthesized: Synthesized) -> None:
    for where, statement in _statements(synthesized):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if (
            any(a in {"s3:PutObject", "s3:DeleteObject"} for a in actions)
            and "TrainingPipeline" in where
        ):
            for resource in (
                statement["Resource"]
                if isinstance(statement["Resource"], list)
                else [statement["Resource"]]
            ):
                text = json.dumps(resource)
                assert re.search(
                    r"/(raw|validated|quarantine|curated/ledger|curated/datasets|curated/batches|"
                    r"curated/recent-holdouts|reports|training-jobs|inference|mlflow|"
                    r"scoring/work|scoring/results)/\*",
                    text,
                ), (where, text)


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_the_stage_has_a_small_mlflow_tracking_server_in_its_artifacts_bucket(
    synthesized: Synthesized,
) -> None:
    (server,) = resources(
        synthesized, "FacetTrainingPipeline", "AWS::SageMaker::MlflowTrackingServer"
    ).values()
    properties = server["Properties"]
    assert properties["TrackingServerName"] == NAMES.tracking_server
    assert properties["TrackingServerSize"] == "Small"
    assert properties["AutomaticModelRegistration"] is False
    # its own prefix of the stage's artifacts bucket (which the lake's KMS key encrypts)
    uri = json.dumps(properties["ArtifactStoreUri"])
    assert "/mlflow" in uri and "Artifacts" in uri, uri
    role = properties["RoleArn"]["Fn::GetAtt"][0]
    assert "ExperimentsServerRole" in role
    # the server's role: get and put under mlflow/ only, list that prefix only, the lake's key
    server_statements = [s for where, s in _statements(synthesized) if role[:-8] in where]
    s3_objects = [s for s in server_statements if "s3:PutObject" in _actions(s)]
    assert s3_objects and all(
        '/mlflow/*"' in json.dumps(s["Resource"]) and json.dumps(s["Resource"]).count("*") == 1
        for s in s3_objects
    ), s3_objects
    listing = [s for s in server_statements if "s3:ListBucket" in _actions(s)]
    assert [s["Condition"] for s in listing] == [{"StringLike": {"s3:prefix": ["mlflow/*"]}}]
    assert any("kms:Decrypt" in _actions(s) for s in server_statements)
    # the pipeline's functions are told where it is: its ARN, built from its name
    functions = resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function")
    uris = {
        json.dumps(f["Properties"]["Environment"]["Variables"][Env.MLFLOW_TRACKING_URI.value])
        for f in functions.values()
        if Env.MLFLOW_TRACKING_URI.value
        in f["Properties"].get("Environment", {}).get("Variables", {})
    }
    (tracking_uri,) = uris
    assert f"mlflow-tracking-server/{NAMES.tracking_server}" in tracking_uri


def test_mlflow_permissions_are_scoped_to_the_stages_server_and_to_who_needs_them(
    synthesized: Synthesized,
) -> None:
    server_arn = f"mlflow-tracking-server/{NAMES.tracking_server}"
    granted: dict[str, set[str]] = {}
    for where, statement in _statements(synthesized):
        mlflow_actions = {a for a in _actions(statement) if a.startswith("sagemaker-mlflow:")}
        if not mlflow_actions:
            continue
        # always the one server, never a wildcard
        assert json.dumps(statement["Resource"]).count(server_arn) == 1, (where, statement)
        assert "*" not in json.dumps(statement["Resource"]).split(server_arn)[1], where
        assert not any(a.endswith("*") for a in mlflow_actions), (where, mlflow_actions)
        granted.setdefault(where.split("/")[-1], set()).update(mlflow_actions)
    writers = [w for w in granted if "TrainingRole" in w]
    linkers = [w for w in granted if "RegisterModel" in w]
    assert len(writers) == 1 and len(linkers) == 1 and len(granted) == 2, sorted(granted)
    assert {"sagemaker-mlflow:CreateRun", "sagemaker-mlflow:LogBatch"} <= granted[writers[0]]
    assert granted[linkers[0]] == {"sagemaker-mlflow:LogBatch"}
    # the training role may write the run's artifacts under mlflow/, nothing else of that bucket
    training_puts = [
        json.dumps(s["Resource"])
        for where, s in _statements(synthesized)
        if "TrainingRole" in where and "s3:PutObject" in _actions(s)
    ]
    assert any("/mlflow/*" in r for r in training_puts), training_puts


def test_the_training_job_gets_its_environment_from_the_dataset_step(
    synthesized: Synthesized,
) -> None:
    start = json.loads(raw_definition())["States"]["Start training job"]["Parameters"]
    assert start["Environment.$"] == "$.dataset.training_environment"


def test_each_role_can_only_be_passed_to_the_service_it_is_for(synthesized: Synthesized) -> None:
    passes = [s for _, s in _statements(synthesized) if s["Action"] == "iam:PassRole"]
    service_of = {
        "TrainingRole": "sagemaker",
        "TransformRole": "sagemaker",
        "ShadowScheduler": "scheduler",
    }
    seen = set()
    for statement in passes:
        role = statement["Resource"]["Fn::GetAtt"][0]
        (kind,) = [k for k in service_of if k in role]
        seen.add(kind)
        assert statement["Condition"] == {
            "StringEquals": {"iam:PassedToService": f"{service_of[kind]}.amazonaws.com"}
        }
    assert seen == set(service_of)


def test_the_api_invokes_the_live_alias_which_codedeploy_shifts_under_three_alarms(
    synthesized: Synthesized,
) -> None:
    serving = synthesized.raw("FacetServing")["Resources"]
    (alias_id, alias) = next(
        (k, v) for k, v in serving.items() if v["Type"] == "AWS::Lambda::Alias"
    )
    assert alias["Properties"]["Name"] == SERVING_ALIAS
    # CloudFormation hands alias updates (a code deployment) to the same deployment group
    hook = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    (group_id, group) = next(
        (k, v) for k, v in serving.items() if v["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    )
    assert hook["DeploymentGroupName"] == {"Ref": group_id}
    properties = group["Properties"]
    assert properties["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert properties["DeploymentGroupName"] == StageNames().rollout_group
    assert set(properties["AutoRollbackConfiguration"]["Events"]) == {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
        "DEPLOYMENT_STOP_ON_REQUEST",
    }
    alarm_refs = [a["Name"]["Ref"] for a in properties["AlarmConfiguration"]["Alarms"]]
    rules = {r.name: r for r in rollback_alarms(StageNames(), rollout_policy("dev"), "prod")}
    declared = {
        serving[ref]["Properties"]["AlarmName"]: serving[ref]["Properties"] for ref in alarm_refs
    }
    assert set(declared) == set(rules)
    for name, alarm in declared.items():
        rule = rules[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == (rule.namespace, rule.metric)
        assert {(d["Name"], d["Value"]) for d in alarm["Dimensions"]} == set(rule.dimensions)
        assert alarm.get("Statistic", alarm.get("ExtendedStatistic")) == rule.statistic
        assert alarm["Threshold"] == rule.threshold and alarm["EvaluationPeriods"] == 1
        assert alarm["TreatMissingData"] == "notBreaching"
    # a code deployment's version is pinned to the production of its deployment time
    (function,) = [
        v["Properties"]
        for v in serving.values()
        if v["Type"] == "AWS::Lambda::Function"
        and v["Properties"].get("Handler") == "serving.handler.handler"
    ]
    pin = function["Environment"]["Variables"][RolloutEnv.MODEL_PIN.value]
    assert pin == "{{resolve:ssm:" + NAMES.production_parameter + "}}"
    # every API method integrates with the alias, never with the unqualified function
    methods = [v for v in serving.values() if v["Type"] == "AWS::ApiGateway::Method"]
    uris = [json.dumps(m["Properties"]["Integration"].get("Uri", "")) for m in methods]
    proxied = [u for u in uris if "lambda" in u]
    assert proxied and all(alias_id in u for u in proxied)


def test_registry_group_and_approval_rule_deploys(synthesized: Synthesized) -> None:
    template = synthesized.template("FacetModelRegistry")
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": MODEL_PACKAGE_GROUP}
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": Match.object_like({"ModelPackageGroupName": [MODEL_PACKAGE_GROUP]}),
            }
        },
    )


def test_triggers_raw_objects_and_daily_drift_check(synthesized: Synthesized) -> None:
    rules = [
        r["Properties"]
        for r in resources(synthesized, "FacetTrainingPipeline", "AWS::Events::Rule").values()
    ]
    raw = next(r for r in rules if "EventPattern" in r)
    assert raw["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "raw/"}]}
    assert raw["Targets"][0]["InputTransformer"]["InputPathsMap"]["key"] == "$.detail.object.key"
    schedule = next(r for r in rules if "ScheduleExpression" in r)
    assert schedule["ScheduleExpression"] == "rate(1 day)"
    assert json.loads(schedule["Targets"][0]["Input"]) == {"trigger": "schedule"}


def test_pipeline_failure_alarm_notifies_an_encrypted_topic(synthesized: Synthesized) -> None:
    template = synthesized.template("FacetTrainingPipeline")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "ExecutionsFailed", "AlarmActions": Match.any_value()},
    )
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_dashboard_shows_latency_errors_runs_and_production_version(
    synthesized: Synthesized,
) -> None:
    (dashboard,) = resources(synthesized, "FacetMonitoring", "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in (
        "p50",
        "p99",
        "5XXError",
        "4XXError",
        "ExecutionsFailed",
        "ProductionModelVersion",
    ):
        assert needle in body, needle


def test_new_batch_error_and_price_shift_are_alarmed_and_on_the_dashboard(
    synthesized: Synthesized,
) -> None:
    alarms = resources(synthesized, "FacetMonitoring", "AWS::CloudWatch::Alarm").values()

    def alarm_on(metric: str) -> dict[str, Any]:
        (found,) = [a["Properties"] for a in alarms if metric in json.dumps(a["Properties"])]
        return found

    batch_error = alarm_on(PRODUCTION_ERROR_ON_BATCH_METRIC)
    assert batch_error["Threshold"] == GatePolicy().max_mape * 100
    assert batch_error["AlarmActions"] and METRIC_NAMESPACE in json.dumps(batch_error)
    shift = alarm_on(PRICE_SHIFT_METRIC)
    assert shift["Threshold"] == VerdictPolicy().shift_threshold * 100
    assert shift["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and shift["AlarmActions"]
    assert any(m.get("Expression") == "ABS(shift)" for m in shift["Metrics"])
    (dashboard,) = resources(synthesized, "FacetMonitoring", "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert PRODUCTION_ERROR_ON_BATCH_METRIC in body and PRICE_SHIFT_METRIC in body


def test_the_validate_step_may_publish_the_verdict_metrics_and_record_batches(
    synthesized: Synthesized,
) -> None:
    statements = [s for where, s in _statements(synthesized) if "ValidateBatch" in where]
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert "cloudwatch:PutMetricData" in actions
    assert "curated/batches/*" in json.dumps(statements)


def test_alarms_can_publish_to_their_encrypted_topic(synthesized: Synthesized) -> None:
    pipeline = synthesized.raw("FacetTrainingPipeline")["Resources"]
    (topic_id, topic), *_ = [(k, v) for k, v in pipeline.items() if v["Type"] == "AWS::SNS::Topic"]
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = pipeline[key_id]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch_may_use_the_key = [
        s for s in key_policy if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert cloudwatch_may_use_the_key and set(cloudwatch_may_use_the_key[0]["Action"]) == {
        "kms:Decrypt",
        "kms:GenerateDataKey*",
    }
    (policy,) = [
        v["Properties"]
        for v in pipeline.values()
        if v["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": topic_id} in v["Properties"]["Topics"]
    ]
    statements = policy["PolicyDocument"]["Statement"]
    allow = [
        s
        for s in statements
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert allow and allow[0]["Action"] == "sns:Publish" and "aws:SourceArn" in json.dumps(allow)
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in statements)


def test_every_registered_package_names_the_real_serving_image(synthesized: Synthesized) -> None:
    functions = resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function")
    (register,) = [
        f["Properties"]
        for f in functions.values()
        if f["Properties"].get("FunctionName") == step_function_name("register_model")
    ]
    image = json.dumps(register["Environment"]["Variables"][Env.SERVING_IMAGE.value])
    assert "dkr.ecr" in image and "cdk-hnb659fds-container-assets" in image
    manifest = json.loads((synthesized.outdir / "FacetTrainingPipeline.assets.json").read_text())
    dockerfiles = [i["source"].get("dockerFile") for i in manifest["dockerImages"].values()]
    assert "infra/images/serving/Dockerfile" in dockerfiles


def test_every_eventbridge_target_and_async_lambda_has_an_alarmed_dead_letter_queue(
    synthesized: Synthesized,
) -> None:
    for stack in ("FacetTrainingPipeline", "FacetModelRegistry"):
        rules = resources(synthesized, stack, "AWS::Events::Rule").values()
        queues = resources(synthesized, stack, "AWS::SQS::Queue")
        assert queues and all(
            q["Properties"]["SqsManagedSseEnabled"] is True for q in queues.values()
        )
        for rule in rules:
            for target in rule["Properties"]["Targets"]:
                assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] in queues, target
                assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        alarms = resources(synthesized, stack, "AWS::CloudWatch::Alarm").values()
        for queue_id in queues:
            assert any(
                a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
                and queue_id in json.dumps(a["Properties"]["Dimensions"])
                and a["Properties"]["AlarmActions"]
                for a in alarms
                if "MetricName" in a["Properties"]
            ), queue_id
    functions = resources(synthesized, "FacetTrainingPipeline", "AWS::Lambda::Function")
    (deploy,) = [
        f["Properties"]
        for f in functions.values()
        if f["Properties"].get("FunctionName") == step_function_name("deploy_model")
    ]
    assert deploy["DeadLetterConfig"]["TargetArn"]
    invoke_configs = resources(
        synthesized, "FacetTrainingPipeline", "AWS::Lambda::EventInvokeConfig"
    ).values()
    assert any(
        c["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] for c in invoke_configs
    )


def stateful_policies(synthesized: Synthesized) -> dict[str, set[tuple[str, str]]]:
    """{resource type: {(DeletionPolicy, UpdateReplacePolicy)}} over every stack."""
    found: dict[str, set[tuple[str, str]]] = {}
    for stack in synthesized.stacks:
        for resource in synthesized.raw(stack)["Resources"].values():
            found.setdefault(resource["Type"], set()).add(
                (resource.get("DeletionPolicy", "-"), resource.get("UpdateReplacePolicy", "-"))
            )
    return found


def expected_policies(profile: Any) -> dict[str, str]:
    from infra import lifecycle

    def policy(decision: Any) -> str:
        return "Retain" if decision.policy.name == "RETAIN" else "Delete"

    return {
        "AWS::S3::Bucket": policy(profile.data),
        "AWS::KMS::Key": policy(profile.keys),
        "AWS::SageMaker::ModelPackageGroup": policy(lifecycle.MODEL_REGISTRY),
        "AWS::SSM::Parameter": policy(lifecycle.PRODUCTION_POINTER),
        "AWS::SQS::Queue": policy(lifecycle.OPERATIONAL),
        "AWS::Logs::LogGroup": policy(lifecycle.OPERATIONAL),
    }


def test_every_stateful_resource_states_what_a_stack_delete_does_to_it(
    synthesized: Synthesized,
) -> None:
    found = stateful_policies(synthesized)
    for kind, policy in expected_policies(DEV).items():
        assert found[kind] == {(policy, policy)}, kind
