"""Facet's diagrams as code (the `diagrams` package, rendered by Graphviz to PNG).

    python diagrams/facet_diagrams.py [OUT_DIR]      # default: diagrams/

Every AWS node names the CloudFormation resource type it stands for (and, where the app declares
several, which one), and the system overview draws its edges through `Recorder.edge`: a test
checks each drawn edge against a real integration in the synthesized templates (one resource
referring to the other: a rule's target, a grant, a metric, a substitution), so the picture
cannot claim a connection the app does not make.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diagrams.aws.compute import ECR, Lambda
from diagrams.aws.devtools import Codedeploy
from diagrams.aws.integration import SNS, SQS, Eventbridge, StepFunctions
from diagrams.aws.management import Cloudformation, Cloudwatch, ParameterStore
from diagrams.aws.ml import Sagemaker, SagemakerModel, SagemakerTrainingJob
from diagrams.aws.network import APIGateway
from diagrams.aws.security import KMS, IAMRole
from diagrams.aws.storage import S3
from diagrams.onprem.ci import GithubActions
from diagrams.onprem.client import Users
from diagrams.onprem.vcs import Github
from diagrams.programming.flowchart import StartEnd
from diagrams.programming.language import Python

from diagrams import Cluster, Diagram, Edge

HERE = Path(__file__).resolve().parent
GRAPH = {"fontsize": "13", "pad": "0.4", "nodesep": "0.5", "ranksep": "0.8"}


@dataclass(frozen=True)
class Shown:
    """What a node stands for: a CloudFormation type (or asl:/local:/... part) and, where the app
    declares several of that type, a fragment of the one's logical id or physical name."""

    represents: str
    match: str = ""
    # The ASL states a node of the training pipeline stands for: an edge between two such nodes
    # is checked against the definition's transitions instead of the templates.
    states: tuple[str, ...] = ()


@dataclass
class Recorder:
    """What each diagram draws: CloudFormation types, ASL resources (asl:...) or local parts, and
    the edges drawn with `edge`."""

    shown: dict[str, set[str]] = field(default_factory=dict)
    nodes: dict[int, Shown] = field(default_factory=dict)
    edges: dict[str, list[tuple[Shown, Shown, str]]] = field(default_factory=dict)
    current: str = ""

    def node(
        self,
        kind: type,
        label: str,
        represents: str,
        match: str = "",
        states: tuple[str, ...] = (),
    ) -> Any:
        self.shown.setdefault(self.current, set()).add(represents)
        drawn = kind(label)
        self.nodes[id(drawn)] = Shown(represents, match, states)
        return drawn

    def edge(self, source: Any, target: Any, label: str = "", **attributes: str) -> None:
        """Draw source → target and record it (both must be recorded nodes)."""
        source >> Edge(label=label, **attributes) >> target
        self.edges.setdefault(self.current, []).append(
            (self.nodes[id(source)], self.nodes[id(target)], label)
        )


RECORDER = Recorder()


@contextmanager
def diagram(
    name: str,
    title: str,
    out_dir: Path,
    direction: str = "LR",
    *,
    splines: str = "ortho",
    nodesep: str = GRAPH["nodesep"],
) -> Any:
    RECORDER.current = name
    RECORDER.shown[name] = set()
    with Diagram(
        title,
        filename=str(out_dir / name),
        show=False,
        outformat="png",
        direction=direction,
        # Curved edges where many cross: Graphviz's orthogonal router can end an arrow beside
        # its node rather than on it.
        graph_attr=GRAPH | {"splines": splines, "nodesep": nodesep},
    ) as drawn:
        yield drawn


def approval_path(deploy_does: str) -> tuple[Any, Any, Any]:
    """The registry, the rule on its approvals and the deploy function that rule invokes."""
    n = RECORDER.node
    registry = n(
        SagemakerModel, "Model Registry\n(approval = decision)", "AWS::SageMaker::ModelPackageGroup"
    )
    approval = n(
        Eventbridge, "package approved / rejected", "AWS::Events::Rule", "model-package-approved"
    )
    deploy = n(Lambda, f"deploy function\n({deploy_does})", "AWS::Lambda::Function", "deploy-model")
    return registry, approval, deploy


def system_overview(out_dir: Path) -> None:
    n, e = RECORDER.node, RECORDER.edge
    with diagram(
        "system_overview",
        "Facet on AWS: data in, model registered, prices out",
        out_dir,
        splines="spline",
    ):
        appraisers = Users("appraisals (CSV)")
        clients = Users("web app / partners")
        with Cluster("AWS account (one per stage: dev, staging, prod)"), Cluster("Region"):
            with Cluster("Data lake (S3, SSE-KMS, versioned)"):
                lake = n(
                    S3,
                    "raw/ validated/ quarantine/\ncurated/ inference/ reports/ scoring/",
                    "AWS::S3::Bucket",
                    "data-lake",
                )
                key = n(KMS, "customer key", "AWS::KMS::Key", "LakeKey")
            artifacts = n(
                S3,
                "artifacts bucket\ntraining-jobs/<job>/output/model.tar.gz",
                "AWS::S3::Bucket",
                "artifacts",
            )
            source = n(
                S3,
                "CDK assets bucket\ntraining-source.tar.gz",
                "asset:training-source",
                "cdk-hnb659fds-assets-",
            )
            raw_rule = n(
                Eventbridge, "raw/ object created", "AWS::Events::Rule", "raw-batch-arrived"
            )
            schedule = n(
                Eventbridge, "daily drift check", "AWS::Events::Rule", "scheduled-drift-check"
            )
            with Cluster("Training pipeline (pipeline/training_pipeline.asl.json)"):
                machine = n(
                    StepFunctions,
                    "Step Functions",
                    "AWS::StepFunctions::StateMachine",
                    "training-pipeline",
                )
                steps = n(
                    Lambda,
                    "validate · build dataset\nevaluate · register",
                    "AWS::Lambda::Function",
                    "validate-batch|build-dataset|evaluate-model|register-model",
                )
                training = n(
                    SagemakerTrainingJob,
                    "SageMaker training job\n(scikit-learn image)",
                    "asl:arn:aws:states:::sagemaker:createTrainingJob",
                    "TrainingRole",
                )
            registry, approval, deploy = approval_path("rollout, production pointer")
            pointer = n(ParameterStore, "production pointer", "AWS::SSM::Parameter")
            with Cluster("Serving"):
                api = n(
                    APIGateway,
                    "API Gateway (REST, prod)\nAPI keys · throttling",
                    "AWS::ApiGateway::RestApi",
                )
                serving = n(
                    Lambda, "FastAPI via Mangum\n(alias live)", "AWS::Lambda::Function", "serving"
                )
            alarms = n(Cloudwatch, "alarms (13)", "AWS::CloudWatch::Alarm")
            topic = n(SNS, "alarm topic", "AWS::SNS::Topic")
        appraisers >> Edge(label="upload") >> lake
        clients >> Edge(label="HTTPS + API key") >> api
        e(lake, raw_rule, "Object Created")
        e(raw_rule, machine, "starts")
        e(schedule, machine, "starts")
        e(machine, steps, "invokes")
        e(machine, training, "CreateTrainingJob")
        e(training, lake, "reads datasets, holdout")
        e(training, source, "reads code")
        e(training, artifacts, "writes model.tar.gz")
        e(steps, lake, "reads, writes zones")
        e(steps, registry, "registers")
        e(registry, approval, "state change")
        e(approval, deploy, "invokes")
        e(deploy, pointer, "writes")
        e(deploy, serving, "new version, alias")
        e(api, serving, "invokes")
        e(serving, pointer, "follows")
        e(serving, artifacts, "loads model")
        e(serving, lake, "logs requests")
        e(lake, key, "encrypted by")
        e(machine, alarms, "failed runs")
        e(api, alarms, "5xx, latency")
        e(alarms, topic, "notify")


def training_pipeline(out_dir: Path) -> None:
    n, e = RECORDER.node, RECORDER.edge
    lambda_type = "AWS::Lambda::Function"
    with diagram(
        "training_pipeline",
        "The training pipeline (Step Functions, pipeline/training_pipeline.asl.json)",
        out_dir,
        splines="spline",
    ):
        with Cluster("AWS account · Region (one per stage)"):
            raw_rule = n(
                Eventbridge, "raw/ object created", "AWS::Events::Rule", "raw-batch-arrived"
            )
            schedule = n(
                Eventbridge, "daily schedule", "AWS::Events::Rule", "scheduled-drift-check"
            )
            lake = n(S3, "lake: raw/, curated/datasets/,\nholdout", "AWS::S3::Bucket", "data-lake")
            artifacts = n(S3, "artifacts: model.tar.gz", "AWS::S3::Bucket", "artifacts")
            registry = n(SagemakerModel, "Model Registry", "AWS::SageMaker::ModelPackageGroup")
            alarm = n(
                Cloudwatch,
                "alarm on failed executions",
                "AWS::CloudWatch::Alarm",
                "PipelineFailed",
            )
            with Cluster("State machine facet-<stage>-training-pipeline"):
                start = n(
                    StepFunctions,
                    "Note the run:\nnew batch or drift check?",
                    "AWS::StepFunctions::StateMachine",
                    "training-pipeline",
                    ("Note the run", "New batch or drift check?"),
                )
                validate = n(
                    Lambda,
                    "Validate batch\n(quarantine, verdict, ledger)",
                    lambda_type,
                    "validate-batch",
                    ("Validate batch",),
                )
                skip = n(
                    StartEnd,
                    "Skip duplicate batch",
                    "asl:Skip duplicate batch",
                    states=("Skip duplicate batch",),
                )
                drift = n(Lambda, "Check drift", lambda_type, "check-drift", ("Check drift",))
                build = n(
                    Lambda,
                    "Build dataset\n(content-hashed)",
                    lambda_type,
                    "build-dataset",
                    ("Build dataset",),
                )
                train = n(
                    SagemakerTrainingJob,
                    "Start training job\n→ wait → check",
                    "asl:arn:aws:states:::sagemaker:createTrainingJob",
                    "TrainingRole",
                    (
                        "Start training job",
                        "Wait for training job",
                        "Check training job",
                        "Training finished?",
                        "Get training failure reason",
                        "Training job stopped",
                    ),
                )
                evaluate = n(
                    Lambda,
                    "Evaluate model\n(frozen holdout vs production)",
                    lambda_type,
                    "evaluate-model",
                    ("Evaluate model",),
                )
                register = n(
                    Lambda,
                    "Register model\n(metrics, versions, reason)",
                    lambda_type,
                    "register-model",
                    ("Register model",),
                )
                deploy = n(
                    Lambda,
                    "Deploy model\n(approve, or wait for a person)",
                    lambda_type,
                    "deploy-model",
                    ("Deploy model",),
                )
                report = n(Lambda, "Write report", lambda_type, "write-report", ("Write report",))
                finished = n(
                    StartEnd,
                    "Pipeline finished",
                    "asl:Pipeline finished",
                    states=("Pipeline finished",),
                )
                failure = n(
                    Lambda,
                    "Record failure\n(production untouched)",
                    lambda_type,
                    "record-failure",
                    ("Record failure",),
                )
                failed = n(
                    StartEnd,
                    "Pipeline failed",
                    "AWS::StepFunctions::StateMachine",
                    "training-pipeline",
                    ("Pipeline failed", "Pipeline failed without a report"),
                )
        e(raw_rule, start, "starts")
        e(schedule, start, "starts")
        e(start, validate, "new batch")
        e(start, drift, "drift check")
        e(validate, skip, "already processed")
        e(validate, build, "trainable rows")
        e(validate, report, "no trainable rows")
        e(drift, build, "drifted")
        e(drift, report, "no drift")
        e(validate, lake, "reads raw/, writes zones")
        e(build, train, "")
        e(lake, train, "channels")
        e(train, artifacts, "model.tar.gz")
        e(train, evaluate, "Completed")
        e(evaluate, register, "")
        e(register, deploy, "better than production")
        e(register, report, "not better: reason")
        e(deploy, report, "")
        e(register, registry, "registers")
        e(deploy, registry, "approves")
        e(report, finished, "")
        for index, task in enumerate(
            [validate, drift, build, train, evaluate, register, deploy, report]
        ):
            label = "every task catches States.ALL" if index == 0 else ""
            e(task, failure, label, style="dashed", color="firebrick")
        e(failure, failed, "")
        e(failed, alarm, "ExecutionsFailed", style="dashed")


def serving_path(out_dir: Path) -> None:
    n, e = RECORDER.node, RECORDER.edge
    with diagram(
        "serving_path",
        "Serving: one price, explained, by one pinned model",
        out_dir,
        splines="spline",
    ):
        client = Users("web page / partner")
        with Cluster("AWS account · Region (one per stage)"):
            api = n(
                APIGateway,
                "API Gateway REST\nstage prod, API key, validation",
                "AWS::ApiGateway::RestApi",
            )
            alias = n(Lambda, "alias live\n(canary: 10 % on the new version)", "AWS::Lambda::Alias")
            function = n(
                Lambda,
                "serving versions, one pinned model each\nFastAPI + Mangum",
                "AWS::Lambda::Function",
                "serving-api",
            )
            registry, approval, deploy = approval_path("publishes a pinned version")
            rollout = n(
                Codedeploy,
                "CodeDeploy\ncanary, automatic rollback",
                "AWS::CodeDeploy::DeploymentGroup",
            )
            alarms = n(
                Cloudwatch,
                "rollback alarms\n5xx, p99, price disagreement",
                "AWS::CloudWatch::Alarm",
                "rollout-",
            )
            pointer = n(ParameterStore, "production pointer", "AWS::SSM::Parameter")
            artifacts = n(
                S3,
                "artifacts bucket\nmodel.tar.gz (sha256-checked)",
                "AWS::S3::Bucket",
                "artifacts",
            )
            lake = n(
                S3,
                "lake: inference/ logs\n(both prices in shadow/canary)",
                "AWS::S3::Bucket",
                "data-lake",
            )
            with Cluster("alternative\n(servingEndpoint=true)"):
                endpoint = n(
                    Sagemaker,
                    "SageMaker\nserverless endpoint\n(/ping, /invocations)",
                    "AWS::SageMaker::Endpoint",
                )
                image = n(
                    SagemakerModel,
                    "SageMaker model\n(serving image,\nfollows the registry)",
                    "AWS::SageMaker::Model",
                )
        client >> Edge(label="HTTPS + API key") >> api
        e(api, alias, "invokes")
        e(alias, function, "weights per version")
        e(registry, approval, "state change")
        e(approval, deploy, "invokes")
        e(deploy, function, "new version")
        e(deploy, rollout, "starts a deployment")
        e(deploy, pointer, "writes")
        e(rollout, alias, "shifts weights")
        e(function, pointer, "follows")
        e(function, artifacts, "its package, once")
        e(function, lake, "batched")
        e(function, alarms, "PriceDisagreement")
        e(api, alarms, "5xx, p99")
        e(alarms, rollout, "in ALARM: roll back")
        e(endpoint, image, "runs")
        e(image, registry, "reads")
        e(image, artifacts, "loads")


def local_emulation(out_dir: Path) -> None:
    n = RECORDER.node
    with diagram(
        "local_emulation",
        "Locally: the same definition, handlers and training code",
        out_dir,
        # Left to right: edges enter a node from the side, at its icon; from above they stop at
        # the node's box, which holds the label too, short of the icon.
        direction="LR",
        splines="spline",
    ):
        cli = n(Python, "facet CLI\ndemo · ingest\nscore · serve", "local:cli")
        with Cluster("embedded moto 5.2.5 (control plane) on 127.0.0.1"):
            s3 = n(S3, "S3 (lake, artifacts)", "AWS::S3::Bucket")
            events = n(Eventbridge, "EventBridge rule", "AWS::Events::Rule")
            queue = n(SQS, "trigger queue (local only)", "local:queue")
            machine = n(
                StepFunctions,
                "Step Functions\n(executes the ASL file)",
                "AWS::StepFunctions::StateMachine",
            )
            registry = n(
                SagemakerModel, "SageMaker Model Registry", "AWS::SageMaker::ModelPackageGroup"
            )
        with Cluster("local compute plugged into moto"):
            runtime = n(
                Python, "Lambda executor\n(handler in its own process)", "local:lambda-executor"
            )
            trainer = n(Python, "training-job runner\n(/opt/ml contract)", "local:training-runner")
            transformer = n(
                Python,
                "transform runner\n(hosting entry point per instance)",
                "local:transform-runner",
            )
        gateway = n(Python, "API Gateway-style gateway\n(REST proxy events)", "local:gateway")
        cli >> s3 >> events >> queue >> machine
        machine >> Edge(label="Lambda invoke") >> runtime
        machine >> Edge(label="CreateTrainingJob") >> trainer >> s3
        machine >> Edge(label="CreateTransformJob") >> transformer >> s3
        runtime >> registry
        cli >> gateway >> Edge(label="serving.handler") >> registry


def delivery(out_dir: Path) -> None:
    """The delivery pipeline as built: FacetDelivery and the stages side by side in one account."""
    n, e = RECORDER.node, RECORDER.edge
    role, repository = "delivery:AWS::IAM::Role", "delivery:AWS::ECR::Repository"
    with diagram(
        "delivery",
        "From a commit to production: GitHub Actions, OIDC, one image, stages side by side",
        out_dir,
        splines="spline",
    ):
        repo = n(Github, "GitHub repository", "external:github")
        actions = n(
            GithubActions, "GitHub Actions\n(environments staging, prod)", "external:actions"
        )
        with Cluster("AWS account · Region"):
            with Cluster("FacetDelivery (an administrator deploys it once)"):
                oidc = n(
                    IAMRole,
                    "GitHub OIDC provider",
                    "delivery:Custom::AWSCDKOpenIdConnectProvider",
                )
                build_role = n(IAMRole, "facet-github-build\n(main branch)", role, "BuildRole")
                deploy_role = n(
                    IAMRole,
                    "facet-github-deploy-<stage>\n(that environment only)",
                    role,
                    "DeployDevRole",
                )
                images = n(ECR, "facet-pipeline, facet-serving\n(immutable tags)", repository)
            bootstrap = n(IAMRole, "CDK bootstrap roles\ncdk-hnb659fds-*", "external:cdk-bootstrap")
            with Cluster("stage stacks facet-<stage>-*"):
                stacks = n(Cloudformation, "five stacks per stage", "external:stage-stacks")
                lake = n(
                    S3,
                    "data lake: reference data,\nfrozen holdout (seeded once)",
                    "AWS::S3::Bucket",
                    "data-lake",
                )
                api = n(APIGateway, "price API (smoke test)", "AWS::ApiGateway::RestApi")
        repo >> actions
        actions >> Edge(label="OIDC token") >> oidc
        e(oidc, build_role, "trusted by")
        e(oidc, deploy_role, "trusted by")
        e(build_role, images, "push once")
        deploy_role >> Edge(label="assumes") >> bootstrap
        bootstrap >> Edge(label="cdk deploy (image digests)") >> stacks
        e(deploy_role, lake, "seeds")
        deploy_role >> Edge(label="reads its keys, calls it", style="dashed") >> api
        stacks >> Edge(label="pull by digest", style="dashed") >> images


DIAGRAMS: dict[str, Callable[[Path], None]] = {
    "system_overview": system_overview,
    "training_pipeline": training_pipeline,
    "serving_path": serving_path,
    "local_emulation": local_emulation,
    "delivery": delivery,
}


def render_all(out_dir: Path = HERE) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = {}
    for name, build in DIAGRAMS.items():
        build(out_dir)
        rendered[name] = out_dir / f"{name}.png"
    return rendered


if __name__ == "__main__":
    for name, path in render_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE).items():
        print(f"{name}: {path}")
