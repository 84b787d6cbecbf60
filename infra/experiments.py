"""Experiment tracking: a SageMaker MLflow tracking server per stage.

Training jobs log a run per job (and one per candidate) to it, through the sagemaker-mlflow plugin
with the server's ARN as MLflow's tracking URI; the register function tags each run with its model
package. Artifacts live under their own prefix of the stage's artifacts bucket (encrypted with the
lake's key), written by the clients themselves and read by the server for its UI.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from contracts.names import MLFLOW_ARTIFACTS_PREFIX, BucketRole, StageNames
from infra.data_lake import DataLake
from infra.nag import Nag, ScopedArn, bucket, bucket_objects, service_arn

# The smallest size (AWS recommends it for teams of up to 25 users); MLflow 3 to match the
# client the training job installs (mlflow-skinny 3.x).
SERVER_SIZE: Final = "Small"
MLFLOW_VERSION: Final = "3.0"
MAINTENANCE_WINDOW: Final = "Sun:03:00"
# What a training job does on the server: one experiment per stage, its runs, their metrics,
# parameters, tags, figures and logged models (service prefix sagemaker-mlflow).
RUN_WRITER_ACTIONS: Final = (
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:GetExperiment",
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:SearchExperiments",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:UpdateRun",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:LogMetric",
    "sagemaker-mlflow:LogParam",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:LogInputs",
    "sagemaker-mlflow:LogOutputs",
    "sagemaker-mlflow:SetTag",
    "sagemaker-mlflow:LogModel",
    "sagemaker-mlflow:FinalizeLoggedModel",
    "sagemaker-mlflow:GetLoggedModel",
    "sagemaker-mlflow:SetLoggedModelTags",
    "sagemaker-mlflow:LogLoggedModelParams",
)
# What the register function does: tag the run with its package (one log-batch call).
RUN_LINKER_ACTIONS: Final = ("sagemaker-mlflow:LogBatch",)
ARTIFACTS_WILDCARD_REASON: Final = (
    "MLflow names artifact objects <experiment>/<run>/artifacts/... under its own prefix of the "
    "artifacts bucket; the grant covers that prefix only."
)


class ExperimentTracking(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, names: StageNames, lake: DataLake
    ) -> None:
        super().__init__(scope, construct_id)
        self.names, self.lake = names, lake
        self.arn: ScopedArn = service_arn(
            "sagemaker", f"mlflow-tracking-server/{names.tracking_server}"
        )
        self.artifacts: ScopedArn = bucket_objects(
            names, BucketRole.ARTIFACTS, MLFLOW_ARTIFACTS_PREFIX
        )
        self.role = iam.Role(
            self,
            "ServerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="The stage's MLflow tracking server: reads and writes its artifact "
            "prefix of the artifacts bucket",
        )
        self.grant_artifacts(self.role, write=True)
        nag = Nag(self.role)
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            nag.acknowledge(
                id=f"AwsSolutions-IAM5[Action::{action}]",
                reason="CDK's encrypt/decrypt grant on the lake's customer key includes the "
                "data-key actions.",
            )
        self.server = sagemaker.CfnMlflowTrackingServer(
            self,
            "Server",
            tracking_server_name=names.tracking_server,
            artifact_store_uri=lake.artifacts.s3_url_for_object(
                MLFLOW_ARTIFACTS_PREFIX.rstrip("/")
            ),
            role_arn=self.role.role_arn,
            tracking_server_size=SERVER_SIZE,
            mlflow_version=MLFLOW_VERSION,
            # Facet's registry is the SageMaker Model Registry, written by the pipeline alone.
            automatic_model_registration=False,
            weekly_maintenance_window_start=MAINTENANCE_WINDOW,
        )
        self.server.node.add_dependency(self.role)

    @property
    def tracking_uri(self) -> str:
        """MLflow's tracking URI in AWS: the server's ARN (the sagemaker-mlflow plugin signs
        the requests). Built from the name, not read from the resource: functions need not wait
        the ~25 minutes a server takes to create, and a job that runs before it exists trains
        untracked (training/tracking.py)."""
        return self.arn.value

    def grant_artifacts(self, grantee: iam.IGrantable, *, write: bool) -> None:
        actions = ["s3:GetObject", *(["s3:PutObject"] if write else [])]
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[self.artifacts.value])
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket(self.names, BucketRole.ARTIFACTS).value],
                conditions={"StringLike": {"s3:prefix": [f"{MLFLOW_ARTIFACTS_PREFIX}*"]}},
            )
        )
        self.lake.key.grant_encrypt_decrypt(grantee)
        if isinstance(grantee, Construct):
            Nag(grantee).wildcard(self.artifacts, ARTIFACTS_WILDCARD_REASON)

    def grant_runs(self, grantee: iam.IGrantable, actions: tuple[str, ...]) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(actions), resources=[self.arn.value])
        )
