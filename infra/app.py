"""The CDK app: data lake, training pipeline, model registry, serving, monitoring.

npx cdk synth                              # fixed placeholder account/region from cdk.json
npx cdk synth -c account= -c region=       # environment-agnostic
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Tags, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from contracts.names import PROJECT
from infra.assets import ensure_built
from infra.config import DeploymentConfig, _flag
from infra.data_lake import DataLakeStack
from infra.delivery import DeliveryStack
from infra.model_registry import ModelRegistryStack
from infra.monitoring import MonitoringStack
from infra.scoring import ScoringFlow
from infra.serving import ApiOptions, ServingStack
from infra.training_pipeline import TrainingPipelineStack


def compliance_checks(app: App) -> list[Any]:
    """The cdk-nag packs every synth runs: AWS Solutions, and the Serverless pack."""
    return [AwsSolutionsChecks(app), ServerlessChecks(app)]


def build_app(app: App | None = None) -> App:
    """The five stacks of one deployment stage (`-c stage=dev|staging|prod`, default dev)."""
    app = app or App()
    config = DeploymentConfig.from_app(app)
    names, profile, env = config.names, config.profile, config.environment
    stage = names.stage
    data = DataLakeStack(
        app,
        "FacetDataLake",
        stack_name=names.stack("data-lake"),
        names=names,
        data=profile.data,
        keys=profile.keys,
        env=env,
        description=f"Facet {stage}: S3 data lake and model artifacts",
    )
    pipeline = TrainingPipelineStack(
        app,
        "FacetTrainingPipeline",
        stack_name=names.stack("training-pipeline"),
        names=names,
        lake=data.lake,
        profile=profile,
        images=config.images,
        alarm_email=config.alarm_email,
        env=env,
        description=f"Facet {stage}: retraining pipeline and bulk scoring",
    )
    # Beside the pipeline it shares the pipeline image, serving image, alarms and grants with.
    ScoringFlow(
        pipeline,
        "ScoringFlow",
        pipeline=pipeline.pipeline,
        instances=profile.transform_instances,
    )
    registry = ModelRegistryStack(
        app,
        "FacetModelRegistry",
        stack_name=names.stack("model-registry"),
        names=names,
        deploy_function=pipeline.pipeline.deploy_function,
        alarm_topic=pipeline.pipeline.alarm_topic,
        env=env,
        description=f"Facet {stage}: model registry",
    )
    serving = ServingStack(
        app,
        "FacetServing",
        stack_name=names.stack("serving"),
        names=names,
        lake=data.lake,
        options=ApiOptions(
            throttle=profile.throttle,
            reserved_concurrency=profile.reserved_concurrency,
            provisioned_concurrency=profile.provisioned_concurrency,
            log_retention=profile.log_retention,
            cors_origins=profile.cors_origins,
        ),
        production_parameter=pipeline.pipeline.production_parameter,
        serving_image=pipeline.pipeline.serving_image,
        serving_endpoint=config.serving_endpoint,
        env=env,
        description=f"Facet {stage}: price API and SageMaker endpoint alternative",
    )
    serving.add_dependency(registry)
    MonitoringStack(
        app,
        "FacetMonitoring",
        stack_name=names.stack("monitoring"),
        names=names,
        api=serving.price_api.api,
        serving_function=serving.price_api.function,
        state_machine=pipeline.pipeline.state_machine,
        alarm_topic=pipeline.pipeline.alarm_topic,
        api_latency_alarm_ms=profile.api_latency_alarm_ms,
        api_5xx_alarm=profile.api_5xx_alarm,
        env=env,
        description=f"Facet {stage}: dashboard and alarms",
    )
    if _flag(app.node.try_get_context("delivery")):
        DeliveryStack(
            app,
            "FacetDelivery",
            stack_name=f"{PROJECT}-delivery",
            repository=str(app.node.try_get_context("githubRepository") or ""),
            env=env,
            description="Facet: GitHub Actions OIDC, image repositories, deploy roles per stage",
        )
    Tags.of(app).add("project", PROJECT)
    Tags.of(app).add("stage", stage)
    Validations.of(app).add_plugins(*compliance_checks(app))
    return app


def main() -> None:
    ensure_built()
    build_app().synth()


if __name__ == "__main__":
    main()
