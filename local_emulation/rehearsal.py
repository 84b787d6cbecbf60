"""A deploy rehearsal: the CDK app's synthesized templates deployed through CloudFormation into a
host-mode LocalStack, as `cdk deploy` would deploy them into an account, then read back.

What `cdk deploy` does, in the same order: the bootstrap resources the templates expect (the
assets bucket and the `/cdk-bootstrap/<qualifier>/version` parameter their CheckBootstrapVersion
rule reads), the file assets of every `*.assets.json` published to their destinations (directories
zipped), the stacks created in the manifest's dependency order from a template URL. Container
image assets need a Docker engine and ECR (LocalStack Pro): they are skipped and said so.

LocalStack's free edition accepts a resource type it has no provider for without creating it (its
physical id is "unknown"); those are reported as skipped, with their type. Everything that matters
for the deploy is then read back through the service APIs, not through CloudFormation, and
compared with the template: a template LocalStack only pretends to deploy fails here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any, Final

from contracts.api import (
    API_THROTTLES,
    GATEWAY_ANSWERS,
    JSON,
    diamond_request_schema,
    gateway_error_template,
)
from contracts.names import API_STAGE, StageNames
from pipeline.definition import (
    expected_scoring_substitutions,
    expected_substitutions,
    scoring_definition,
    substitute,
)

REPO: Final = Path(__file__).resolve().parents[1]
BOOTSTRAP_QUALIFIER: Final = "hnb659fds"  # the CDK's default qualifier
# The version `cdk bootstrap` of CDK CLI 2.1148 writes; templates require a minimum (6 today).
BOOTSTRAP_VERSION: Final = "21"
CAPABILITIES: Final = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
NOT_CREATED: Final = "unknown"  # LocalStack's physical id for a type it has no provider for
STACK_TIMEOUT_SECONDS: Final = 300


class RehearsalError(Exception):
    """The rehearsal could not deploy (named stack, resource and reason)."""


@dataclass(frozen=True)
class Skipped:
    what: str
    why: str


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str
    # A difference that is LocalStack's, documented in docs/local-emulation.md, with the
    # template shown to declare the right thing: reported, not counted as a failure.
    localstack_gap: bool = False


class LocalStackGapError(Exception):
    """The template declares it; LocalStack (free edition, this version) does not apply it."""


@dataclass(frozen=True)
class StackArtifact:
    artifact_id: str
    stack_name: str
    template_file: Path
    dependencies: tuple[str, ...]

    def template(self) -> dict[str, Any]:
        return dict(json.loads(self.template_file.read_text()))


@dataclass
class Rehearsal:
    """What was deployed, what was skipped and why, and what the read-back found."""

    stacks: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


# --- the cloud assembly ---


def synthesize(outdir: Path, stage: str, account: str, region: str) -> Path:
    """`cdk synth` of the app for this account and region (offline: no credentials needed)."""
    command = [
        "npx",
        "cdk",
        "synth",
        "-q",
        "-c",
        f"stage={stage}",
        "-c",
        f"account={account}",
        "-c",
        f"region={region}",
        "-o",
        str(outdir.resolve()),  # the CDK CLI runs in the repository
    ]
    environment = os.environ | {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    completed = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RehearsalError(f"`{' '.join(command)}` failed:\n{completed.stderr[-3000:]}")
    return outdir


def read_assembly(outdir: Path) -> tuple[list[StackArtifact], list[Path]]:
    """The stacks in dependency order, and the asset manifests."""
    manifest_file = outdir / "manifest.json"
    if not manifest_file.is_file():
        raise RehearsalError(f"{outdir} is not a cloud assembly: no manifest.json")
    artifacts = json.loads(manifest_file.read_text())["artifacts"]
    stacks = {
        artifact_id: StackArtifact(
            artifact_id,
            artifact["properties"].get("stackName", artifact_id),
            outdir / artifact["properties"]["templateFile"],
            tuple(
                d
                for d in artifact.get("dependencies", [])
                if artifacts.get(d, {}).get("type") == "aws:cloudformation:stack"
            ),
        )
        for artifact_id, artifact in artifacts.items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    order = TopologicalSorter({k: set(v.dependencies) for k, v in stacks.items()}).static_order()
    asset_manifests = [
        outdir / artifact["properties"]["file"]
        for artifact in artifacts.values()
        if artifact["type"] == "cdk:asset-manifest"
    ]
    return [stacks[artifact_id] for artifact_id in order], asset_manifests


# --- what `cdk bootstrap` and the asset publishing do ---


def assets_bucket(account: str, region: str) -> str:
    return f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{account}-{region}"


def bootstrap(s3: Any, ssm: Any, account: str, region: str) -> None:
    bucket = assets_bucket(account, region)
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
    ssm.put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version",
        Value=BOOTSTRAP_VERSION,
        Type="String",
        Overwrite=True,
    )


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _placeholders(text: str, account: str, region: str) -> str:
    return (
        text.replace("${AWS::AccountId}", account)
        .replace("${AWS::Region}", region)
        .replace("${AWS::Partition}", "aws")
    )


def publish_assets(
    s3: Any, asset_manifests: list[Path], account: str, region: str
) -> tuple[int, list[Skipped]]:
    """Every file asset uploaded where the templates expect it; image assets skipped."""
    published, skipped = 0, []
    for manifest_file in asset_manifests:
        manifest = json.loads(manifest_file.read_text())
        for asset in manifest.get("files", {}).values():
            source = manifest_file.parent / asset["source"]["path"]
            body = (
                _zip_directory(source)
                if asset["source"].get("packaging") == "zip" and source.is_dir()
                else source.read_bytes()
            )
            for destination in asset["destinations"].values():
                s3.put_object(
                    Bucket=_placeholders(destination["bucketName"], account, region),
                    Key=_placeholders(destination["objectKey"], account, region),
                    Body=body,
                )
                published += 1
        for asset_hash, asset in manifest.get("dockerImages", {}).items():
            directory = asset["source"].get("directory", "?")
            skipped.append(
                Skipped(
                    f"container image asset {asset_hash[:12]} ({directory}, {manifest_file.name})",
                    "building it needs a Docker engine and pushing it ECR (LocalStack Pro); "
                    "the functions that name it are created but cannot run",
                )
            )
    return published, skipped


# --- the stacks ---


def deploy_stack(cfn: Any, s3: Any, stack: StackArtifact, bucket: str, endpoint: str) -> float:
    """Create the stack from a template URL (as the CDK toolkit does past 50 kB); seconds."""
    started = time.monotonic()
    key = f"rehearsal/{stack.artifact_id}.template.json"
    s3.put_object(Bucket=bucket, Key=key, Body=stack.template_file.read_bytes())
    cfn.create_stack(
        StackName=stack.stack_name,
        TemplateURL=f"{endpoint.rstrip('/')}/{bucket}/{key}",
        Capabilities=CAPABILITIES,
    )
    deadline = started + STACK_TIMEOUT_SECONDS
    while True:
        described = cfn.describe_stacks(StackName=stack.stack_name)["Stacks"][0]
        status = described["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise RehearsalError(f"{stack.stack_name} still {status} after {deadline:.0f} s")
        time.sleep(0.5)
    if status != "CREATE_COMPLETE":
        failures = [
            f"{event['LogicalResourceId']} ({event['ResourceType']}): "
            f"{event.get('ResourceStatusReason', '')}"
            for event in cfn.describe_stack_events(StackName=stack.stack_name)["StackEvents"]
            if event["ResourceStatus"].endswith("_FAILED")
        ]
        raise RehearsalError(f"{stack.stack_name}: {status}; " + "; ".join(failures[:5]))
    return time.monotonic() - started


def not_created(cfn: Any, stack_name: str) -> list[Skipped]:
    return [
        Skipped(
            f"{resource['ResourceType']} {resource['LogicalResourceId']} ({stack_name})",
            "LocalStack's free edition has no CloudFormation provider for this type: "
            "accepted without being created",
        )
        for resource in cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        if resource.get("PhysicalResourceId") == NOT_CREATED
    ]


# --- reading back what was deployed ---


class UnresolvableError(Exception):
    """A template value that names something that does not exist where it was deployed."""


@dataclass
class Deployed:
    """The deployed stacks as the service APIs see them, and a resolver for template values."""

    clients: Callable[[str], Any]
    account: str
    region: str
    templates: dict[str, dict[str, Any]]  # stack name -> template
    physical: dict[str, dict[str, str]]  # stack name -> logical id -> physical id
    exports: dict[str, str]

    def resources(self, resource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(stack, logical id, properties) of every resource of a type."""
        for stack, template in self.templates.items():
            for logical, resource in template["Resources"].items():
                if resource["Type"] == resource_type:
                    yield stack, logical, resource.get("Properties", {})

    def physical_id(self, stack: str, logical: str) -> str:
        value = self.physical[stack].get(logical)
        if not value or value == NOT_CREATED:
            raise UnresolvableError(f"{logical} was not created in {stack}")
        return value

    def arn(self, stack: str, logical: str) -> str:
        """The resource's ARN, asked of the service that owns it."""
        kind = self.templates[stack]["Resources"][logical]["Type"]
        physical = self.physical_id(stack, logical)
        if kind == "AWS::Lambda::Function":
            return str(
                self.clients("lambda").get_function(FunctionName=physical)["Configuration"][
                    "FunctionArn"
                ]
            )
        if kind == "AWS::IAM::Role":
            return str(self.clients("iam").get_role(RoleName=physical)["Role"]["Arn"])
        if kind == "AWS::SQS::Queue":
            return str(
                self.clients("sqs").get_queue_attributes(
                    QueueUrl=physical, AttributeNames=["QueueArn"]
                )["Attributes"]["QueueArn"]
            )
        if kind == "AWS::KMS::Key":
            return str(self.clients("kms").describe_key(KeyId=physical)["KeyMetadata"]["Arn"])
        if physical.startswith("arn:"):
            return physical
        raise UnresolvableError(f"no ARN lookup for {kind} {logical}")

    def resolve(self, stack: str, value: Any) -> Any:
        """A template value with Ref, Fn::GetAtt Arn, Fn::ImportValue and Fn::Join resolved
        from the deployed resources (independently of LocalStack's own resolution)."""
        if isinstance(value, list):
            return [self.resolve(stack, item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" or function.startswith("Fn::"):
                return self._intrinsic(stack, function, argument)
        return {key: self.resolve(stack, item) for key, item in value.items()}

    def _intrinsic(self, stack: str, function: str, argument: Any) -> Any:
        if function == "Ref":
            pseudo = {"AWS::AccountId": self.account, "AWS::Region": self.region}
            return pseudo.get(argument) or self.physical_id(stack, argument)
        if function == "Fn::GetAtt" and argument[1] == "Arn":
            return self.arn(stack, argument[0])
        if function == "Fn::ImportValue":
            name = self.resolve(stack, argument)
            if not self.exports.get(name):
                raise UnresolvableError(f"export {name} does not exist")
            return self.exports[name]
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(self.resolve(stack, part)) for part in parts)
        raise UnresolvableError(f"{function} is not resolved by the rehearsal")


def _check(checks: list[Check], what: str, probe: Callable[[], str]) -> None:
    try:
        checks.append(Check(what, True, probe()))
    except LocalStackGapError as gap:
        checks.append(Check(what, True, str(gap), localstack_gap=True))
    except (UnresolvableError, AssertionError) as error:
        checks.append(Check(what, False, str(error)))
    except Exception as error:  # a service refused: the resource is not what the template says
        checks.append(Check(what, False, f"{type(error).__name__}: {error}"))


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_buckets(deployed: Deployed, checks: list[Check]) -> None:
    s3 = deployed.clients("s3")
    for stack, logical, properties in deployed.resources("AWS::S3::Bucket"):

        def probe(stack: str = stack, logical: str = logical, p: Any = properties) -> str:
            name = deployed.physical_id(stack, logical)
            versioning = s3.get_bucket_versioning(Bucket=name).get("Status", "off")
            wanted = p.get("VersioningConfiguration", {}).get("Status", "off")
            _expect(versioning == wanted, f"{name}: versioning {versioning}, template {wanted}")
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
            _expect(
                block == p.get("PublicAccessBlockConfiguration"),
                f"{name}: public access block {block}",
            )
            return f"{name}: versioning {versioning}, all public access blocked"

        _check(checks, f"bucket {logical}", probe)


def _api_probes(
    apigateway: Any, deployed: Deployed, api_id: str, names: StageNames
) -> list[tuple[str, Callable[[], str]]]:
    def stage() -> str:
        described = apigateway.get_stage(restApiId=api_id, stageName=API_STAGE)
        throttle = described.get("methodSettings", {}).get("*/*", {})
        wanted = API_THROTTLES[names.stage]
        got = (throttle.get("throttlingRateLimit"), throttle.get("throttlingBurstLimit"))
        if got == (None, None):
            (declared,) = [
                (setting.get("ThrottlingRateLimit"), setting.get("ThrottlingBurstLimit"))
                for _, _, p in deployed.resources("AWS::ApiGateway::Stage")
                for setting in p.get("MethodSettings", [])
                if setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*"
            ]
            _expect(declared == (wanted.rate, wanted.burst), f"template throttling {declared}")
            raise LocalStackGapError(
                f"stage {API_STAGE} exists; LocalStack's CloudFormation Stage provider drops "
                f"MethodSettings, so its throttling is unset there (the template declares "
                f"{wanted.rate:g} req/s, burst {wanted.burst})"
            )
        _expect(got == (wanted.rate, wanted.burst), f"stage throttling {got}")
        return f"stage {API_STAGE}: {wanted.rate:g} req/s, burst {wanted.burst}"

    def keys_and_plan() -> str:
        keys = {k["name"]: k for k in apigateway.get_api_keys(limit=500)["items"]}
        wanted = [p["Name"] for _, _, p in deployed.resources("AWS::ApiGateway::ApiKey")]
        _expect(all(keys.get(n, {}).get("enabled") for n in wanted), f"keys {wanted}")
        (plan,) = [
            p
            for p in apigateway.get_usage_plans(limit=500)["items"]
            if p["name"] == names.usage_plan
        ]
        _expect(
            any(s["apiId"] == api_id and s["stage"] == API_STAGE for s in plan["apiStages"]),
            f"usage plan stages {plan['apiStages']}",
        )
        members = apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
        _expect(set(wanted) <= {k["name"] for k in members}, f"usage plan keys {members}")
        return f"{len(wanted)} keys enabled, all in usage plan {plan['name']}"

    def validator_and_model() -> str:
        validators = apigateway.get_request_validators(restApiId=api_id)["items"]
        _expect(
            any(v["validateRequestBody"] and v["validateRequestParameters"] for v in validators),
            f"validators {validators}",
        )
        models = apigateway.get_models(restApiId=api_id)["items"]
        (model,) = [m for m in models if m["name"] == "Diamond"]
        _expect(json.loads(model["schema"]) == diamond_request_schema(), "Diamond schema")
        return "body-and-parameters validator; Diamond model = contracts.api's schema"

    def gateway_responses() -> str:
        for kind, answer in GATEWAY_ANSWERS.items():
            response = apigateway.get_gateway_response(restApiId=api_id, responseType=kind.value)
            _expect(response.get("statusCode") == str(answer.status), f"{kind.value} status")
            _expect(
                response.get("responseTemplates", {}).get(JSON) == gateway_error_template(answer),
                f"{kind.value} template",
            )
        return f"{len(GATEWAY_ANSWERS)} gateway responses in the app's error shape"

    return [
        ("API stage and throttling", stage),
        ("API keys and usage plan", keys_and_plan),
        ("API validator and model", validator_and_model),
        ("API gateway responses", gateway_responses),
    ]


def check_api(deployed: Deployed, checks: list[Check], names: StageNames) -> None:
    apigateway = deployed.clients("apigateway")
    for stack, logical, _ in deployed.resources("AWS::ApiGateway::RestApi"):
        api_id = deployed.physical[stack].get(logical, "")
        for what, probe in _api_probes(apigateway, deployed, api_id, names):
            _check(checks, what, probe)


def check_alarms(deployed: Deployed, checks: list[Check]) -> None:
    cloudwatch = deployed.clients("cloudwatch")
    names = [
        deployed.physical[stack].get(logical, "")
        for stack, logical, _ in deployed.resources("AWS::CloudWatch::Alarm")
    ]

    def probe() -> str:
        found = {
            a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
        }
        _expect(found == set(names), f"missing alarms: {sorted(set(names) - found)}")
        return f"{len(names)} alarms"

    _check(checks, "CloudWatch alarms", probe)


def check_state_machine(deployed: Deployed, checks: list[Check]) -> None:
    sfn = deployed.clients("stepfunctions")
    for stack, logical, properties in deployed.resources("AWS::StepFunctions::StateMachine"):

        def probe(stack: str = stack, logical: str = logical, p: Any = properties) -> str:
            arn = deployed.physical_id(stack, logical)
            definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
            values = {
                name: str(deployed.resolve(stack, value))
                for name, value in p["DefinitionSubstitutions"].items()
            }
            # Which ASL file the machine is, by the placeholders it fills.
            scoring = set(values) == expected_scoring_substitutions()
            expected = json.loads(scoring_definition(values) if scoring else substitute(values))
            _expect(definition == expected, "the deployed definition differs from the ASL file")
            _expect(scoring or set(values) == expected_substitutions(), "substitutions")
            kind = "scoring" if scoring else "pipeline"
            return f"{arn.rsplit(':', 1)[-1]} = {kind} ASL with {len(values)} substitutions"

        _check(checks, f"state machine {logical}", probe)


def check_parameters(deployed: Deployed, checks: list[Check]) -> None:
    ssm = deployed.clients("ssm")
    for stack, logical, properties in deployed.resources("AWS::SSM::Parameter"):

        def probe(stack: str = stack, logical: str = logical, p: Any = properties) -> str:
            name = deployed.physical_id(stack, logical)
            value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
            _expect(value == p["Value"], f"{name} = {value!r}")
            return f"{name} holds the template's initial value"

        _check(checks, f"SSM parameter {logical}", probe)


def check_rules(deployed: Deployed, checks: list[Check]) -> None:
    events = deployed.clients("events")
    for stack, logical, properties in deployed.resources("AWS::Events::Rule"):

        def probe(stack: str = stack, logical: str = logical, p: Any = properties) -> str:
            name = p["Name"]
            rule = events.describe_rule(Name=name)
            _expect(rule["State"] == p.get("State", "ENABLED"), f"{name} state {rule['State']}")
            if "EventPattern" in p:
                pattern = deployed.resolve(stack, p["EventPattern"])
                _expect(json.loads(rule["EventPattern"]) == pattern, f"{name} pattern")
            targets = {t["Id"]: t for t in events.list_targets_by_rule(Rule=name)["Targets"]}
            for wanted in p.get("Targets", []):
                got = targets.get(wanted["Id"])
                _expect(got is not None, f"{name}: target {wanted['Id']} missing")
                assert got is not None
                _expect(got["Arn"] == deployed.resolve(stack, wanted["Arn"]), "target ARN")
                if "DeadLetterConfig" in wanted:
                    dead_letters = deployed.resolve(stack, wanted["DeadLetterConfig"]["Arn"])
                    _expect(
                        got.get("DeadLetterConfig", {}).get("Arn") == dead_letters,
                        f"{name}: dead-letter queue",
                    )
            return f"{name}: {len(targets)} target(s), ARNs and dead-letter queues as declared"

        _check(checks, f"EventBridge rule {logical}", probe)


def check_exports(deployed: Deployed, checks: list[Check]) -> None:
    """Every export another stack imports exists and is not empty: LocalStack resolves a
    missing one to nothing instead of failing the importing stack, as AWS would."""

    def imports(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Fn::ImportValue" and isinstance(item, str):
                    yield item
                else:
                    yield from imports(item)
        elif isinstance(value, list):
            for item in value:
                yield from imports(item)

    wanted = sorted({name for t in deployed.templates.values() for name in imports(t)})

    def probe() -> str:
        missing = [name for name in wanted if not deployed.exports.get(name)]
        _expect(not missing, f"imported but not exported: {missing}")
        return f"{len(wanted)} imported exports exist"

    _check(checks, "stack exports", probe)


def read_back(deployed: Deployed, names: StageNames) -> list[Check]:
    checks: list[Check] = []
    check_buckets(deployed, checks)
    check_api(deployed, checks, names)
    check_alarms(deployed, checks)
    check_state_machine(deployed, checks)
    check_parameters(deployed, checks)
    check_rules(deployed, checks)
    check_exports(deployed, checks)
    return checks


# --- the whole rehearsal ---


def existing_names(s3: Any, cfn: Any, stacks: list[StackArtifact]) -> list[str]:
    """Stacks or buckets of this stage that already exist there (a rehearsal starts empty)."""
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    wanted_buckets = {
        str(resource["Properties"]["BucketName"])
        for stack in stacks
        for resource in stack.template()["Resources"].values()
        if resource["Type"] == "AWS::S3::Bucket"
        and isinstance(resource.get("Properties", {}).get("BucketName"), str)
    }
    existing_stacks = {
        s["StackName"]
        for s in cfn.list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }
    return sorted(
        [f"stack {s.stack_name}" for s in stacks if s.stack_name in existing_stacks]
        + [f"bucket {b}" for b in wanted_buckets & buckets]
    )


def rehearse(
    clients: Callable[[str], Any],
    endpoint: str,
    cdk_out: Path,
    *,
    stage: str,
    account: str,
    region: str,
    on_stack: Callable[[str, float], None] | None = None,
) -> Rehearsal:
    stacks, asset_manifests = read_assembly(cdk_out)
    s3, cfn = clients("s3"), clients("cloudformation")
    taken = existing_names(s3, cfn, stacks)
    if taken:
        raise RehearsalError(
            f"already there on {endpoint}: {', '.join(taken)}. A rehearsal deploys into an empty "
            "LocalStack (or use another stage, or one the demo does not use)."
        )
    result = Rehearsal()
    bootstrap(s3, clients("ssm"), account, region)
    _, skipped = publish_assets(s3, asset_manifests, account, region)
    result.skipped += skipped
    for stack in stacks:
        seconds = deploy_stack(cfn, s3, stack, assets_bucket(account, region), endpoint)
        result.stacks.append(stack.stack_name)
        result.seconds[stack.stack_name] = seconds
        result.skipped += not_created(cfn, stack.stack_name)
        if on_stack is not None:
            on_stack(stack.stack_name, seconds)
    result.checks = read_back(deployed_view(clients, cdk_out, account, region), StageNames(stage))
    return result


def deployed_view(
    clients: Callable[[str], Any], cdk_out: Path, account: str, region: str
) -> Deployed:
    """The assembly's stacks as deployed where `clients` point."""
    stacks, _ = read_assembly(cdk_out)
    cfn = clients("cloudformation")
    return Deployed(
        clients,
        account,
        region,
        templates={s.stack_name: s.template() for s in stacks},
        physical={
            s.stack_name: {
                r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                for r in cfn.describe_stack_resources(StackName=s.stack_name)["StackResources"]
            }
            for s in stacks
        },
        exports={e["Name"]: e["Value"] for e in cfn.list_exports().get("Exports", [])},
    )
