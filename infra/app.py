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
from infra.config import DeploymentConfig
from infra.data_lake import DataLakeStack
from infra.model_registry import ModelRegistryStack
from infra.monitoring import MonitoringStack
from infra.serving import ApiOptions, ServingStack
from infra.training_pipeline import TrainingPipelineStack


def compliance_checks(app: App) -> list[Any]:
    """The cdk-nag packs every synth runs: AWS Solutions, and the Serverless pack."""
    return [AwsSolutionsChecks(app), ServerlessChecks(app)]


def build_app(app: App | None = None) -> App:
    app = app or App()
    config = DeploymentConfig.from_app(app)
    env = config.environment
    data = DataLakeStack(
        app, "FacetDataLake", env=env, description="Facet: S3 data lake and model artifacts"
    )
    pipeline = TrainingPipelineStack(
        app,
        "FacetTrainingPipeline",
        lake=data.lake,
        alarm_email=config.alarm_email,
        env=env,
        description="Facet: retraining pipeline",
    )
    registry = ModelRegistryStack(
        app,
        "FacetModelRegistry",
        deploy_function=pipeline.pipeline.deploy_function,
        alarm_topic=pipeline.pipeline.alarm_topic,
        env=env,
        description="Facet: model registry",
    )
    serving = ServingStack(
        app,
        "FacetServing",
        lake=data.lake,
        options=ApiOptions(
            stage=config.stage,
            throttle_rate=config.api_throttle_rate,
            throttle_burst=config.api_throttle_burst,
            reserved_concurrency=config.reserved_concurrency,
            provisioned_concurrency=config.provisioned_concurrency,
            cors_origins=config.cors_origins,
        ),
        production_parameter=pipeline.pipeline.production_parameter,
        serving_image=pipeline.pipeline.serving_image,
        serving_endpoint=config.serving_endpoint,
        env=env,
        description="Facet: price API and SageMaker endpoint alternative",
    )
    serving.add_dependency(registry)
    MonitoringStack(
        app,
        "FacetMonitoring",
        api=serving.price_api.api,
        serving_function=serving.price_api.function,
        state_machine=pipeline.pipeline.state_machine,
        alarm_topic=pipeline.pipeline.alarm_topic,
        env=env,
        description="Facet: dashboard and alarms",
    )
    Tags.of(app).add("project", PROJECT)
    Validations.of(app).add_plugins(*compliance_checks(app))
    return app


def main() -> None:
    ensure_built()
    build_app().synth()


if __name__ == "__main__":
    main()
