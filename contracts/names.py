"""Every name shared by infra, training, serving and the local emulation, spelled once.

Infra imports these to declare resources, runtime code imports them to find those resources,
and the local emulation imports them to provision the same resources in the emulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

PROJECT: Final = "facet"


class Zone(StrEnum):
    """Prefixes of the data lake bucket, one per stage of a row's life."""

    RAW = "raw"
    VALIDATED = "validated"
    QUARANTINE = "quarantine"
    CURATED = "curated"
    INFERENCE = "inference"
    REPORTS = "reports"

    def prefix(self) -> str:
        return f"{self.value}/"


class BucketRole(StrEnum):
    """Logical roles of the buckets; physical names are chosen by CloudFormation or the emulator."""

    DATA_LAKE = "data-lake"
    ARTIFACTS = "artifacts"
    ACCESS_LOGS = "access-logs"


# Deployment stages: each is a separate deployment whose every physical name carries the stage, so
# that two stages can live in one account. The local emulator is a stage like any other.
DEFAULT_STAGE: Final = "dev"
CLOUD_STAGES: Final = ("dev", "staging", "prod")
_STAGE_NAME: Final = re.compile(r"^[a-z][a-z0-9]{1,9}$")


@dataclass(frozen=True)
class StageNames:
    """Every physical name of one deployment stage, built here and nowhere else."""

    stage: str = DEFAULT_STAGE

    def __post_init__(self) -> None:
        if not _STAGE_NAME.match(self.stage):
            raise ValueError(
                f"stage {self.stage!r}: 2-10 lower-case letters or digits, starting with a letter"
            )

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.stage}"

    def bucket(self, role: BucketRole, account: str, region: str) -> str:
        """The same rule in the cloud (with pseudo-parameters) and locally."""
        return f"{self.prefix}-{role.value}-{account}-{region}"

    def step_function(self, handler: str) -> str:
        return f"{self.prefix}-{handler.replace('_', '-')}"

    def stack(self, name: str) -> str:
        """CloudFormation stack name."""
        return f"{self.prefix}-{name}"

    @property
    def model_package_group(self) -> str:
        return f"{self.prefix}-diamond-price"

    @property
    def state_machine(self) -> str:
        return f"{self.prefix}-training-pipeline"

    @property
    def serving_function(self) -> str:
        return f"{self.prefix}-serving-api"

    @property
    def rollout_application(self) -> str:
        """The CodeDeploy application that shifts the serving alias between model versions."""
        return f"{self.prefix}-serving"

    @property
    def rollout_group(self) -> str:
        return f"{self.prefix}-serving-rollout"

    @property
    def rollout_rule(self) -> str:
        return f"{self.prefix}-rollout-finished"

    def shadow_schedule(self, version: int) -> str:
        return f"{self.prefix}-shadow-ends-v{version}"

    @property
    def api_name(self) -> str:
        return f"{self.prefix}-price-api"

    @property
    def usage_plan(self) -> str:
        return f"{self.prefix}-partners"

    def api_key(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def sagemaker_endpoint(self) -> str:
        return f"{self.prefix}-price-endpoint"

    @property
    def training_job_prefix(self) -> str:
        return self.prefix

    @property
    def raw_object_rule(self) -> str:
        return f"{self.prefix}-raw-batch-arrived"

    @property
    def drift_schedule_rule(self) -> str:
        return f"{self.prefix}-scheduled-drift-check"

    @property
    def model_approval_rule(self) -> str:
        return f"{self.prefix}-model-package-approved"

    @property
    def local_trigger_queue(self) -> str:
        return f"{self.prefix}-pipeline-triggers"

    @property
    def production_parameter(self) -> str:
        return f"/{PROJECT}/{self.stage}/production-model-package"

    @property
    def metric_namespace(self) -> str:
        return f"Facet/{self.stage}"

    @property
    def dashboard(self) -> str:
        return f"{self.prefix}-overview"

    @property
    def experiment(self) -> str:
        """The MLflow experiment every training job of this stage is a run in."""
        return f"{PROJECT}-{self.stage}"

    @property
    def tracking_server(self) -> str:
        return f"{self.prefix}-experiments"

    @property
    def scoring_state_machine(self) -> str:
        return f"{self.prefix}-scoring"

    @property
    def catalogue_rule(self) -> str:
        return f"{self.prefix}-catalogue-arrived"

    @property
    def local_scoring_queue(self) -> str:
        return f"{self.prefix}-scoring-triggers"

    @property
    def transform_job_prefix(self) -> str:
        """Batch transform jobs and the SageMaker models they run: `<prefix>-<stamp>-<hash>`."""
        return f"{self.prefix}-score"

    def role(self, purpose: str) -> str:
        return f"{self.prefix}-{purpose}-role"


# Object keys inside the zones.
RAW_BATCH_PATTERN: Final = "diamonds_raw_{stamp}.csv"
RAW_BATCH_REGEX: Final = r"^diamonds_raw_(\d{8}T\d{6})\.csv$"
REFERENCE_DATASET_KEY: Final = f"{Zone.CURATED.value}/reference/diamonds.csv.gz"
HOLDOUT_KEY: Final = f"{Zone.CURATED.value}/holdout/holdout.csv"
HOLDOUT_MANIFEST_KEY: Final = f"{Zone.CURATED.value}/holdout/manifest.json"
HOLDOUT_ARCHIVE_PREFIX: Final = f"{Zone.CURATED.value}/holdouts/"
DATASETS_PREFIX: Final = f"{Zone.CURATED.value}/datasets/"
RECENT_HOLDOUTS_PREFIX: Final = f"{Zone.CURATED.value}/recent-holdouts/"
BATCHES_PREFIX: Final = f"{Zone.CURATED.value}/batches/"
LINEAGE_PREFIX: Final = f"{Zone.CURATED.value}/lineage/"
LEDGER_PREFIX: Final = f"{Zone.CURATED.value}/ledger/"
TRAINING_OUTPUT_PREFIX: Final = "training-jobs/"
TRAINING_CODE_KEY: Final = "code/training-source.tar.gz"
# The MLflow tracking server's artifact store: its own prefix of the artifacts bucket.
MLFLOW_ARTIFACTS_PREFIX: Final = "mlflow/"

# Bulk scoring (SageMaker Batch Transform): a catalogue landed under incoming/ starts the scoring
# flow; work/<name>/ holds the transform job's input parts and raw output, results/<name>/ what a
# partner downloads. All three expire (infra/data_lake.py).
SCORING_PREFIX: Final = "scoring/"
SCORING_INCOMING_PREFIX: Final = f"{SCORING_PREFIX}incoming/"
SCORING_WORK_PREFIX: Final = f"{SCORING_PREFIX}work/"
SCORING_RESULTS_PREFIX: Final = f"{SCORING_PREFIX}results/"
# S3 user metadata of a landed catalogue: "false" prices without explanations.
CATALOGUE_EXPLAIN_METADATA: Final = "explain"
# The largest catalogue one scoring run takes. Its steps hold it in memory: the join of 1,000,000
# explained stones peaked at 1,041 MB (benchmarks/bench_scoring.py), so 2,000,000 fit the 3,008 MB
# step Lambdas with room; the byte bound is checked before reading, the rows right after.
CATALOGUE_MAX_BYTES: Final = 256 * 1024 * 1024
CATALOGUE_MAX_ROWS: Final = 2_000_000
# The transform job's mini-batch bound; the hosting entry point answers any chunk up to it.
TRANSFORM_MAX_PAYLOAD_MB: Final = 6

# Names of models and figures wherever they are stored (registry metadata, MLflow, the lake's
# reports): the course brief's convention, `<algorithm>_<dataset>_<version>` and
# `<topic>_<dataset>_<date>.png`, built by `asset_name` alone.
DATASET_NAME: Final = "diamonds"
ALGORITHM_SHORT_NAMES: Final = {"lightgbm": "lgbm"}
_NAME_PART: Final = re.compile(r"[^a-z0-9]+")


def asset_name(subject: str, qualifier: str, *, dataset: str = DATASET_NAME) -> str:
    """`<subject>_<dataset>_<qualifier>`: lower-case, parts joined by `_`, `-` inside a part.

    Models: asset_name(family, f"v{version}") -> "lgbm_diamonds_v3"; figures:
    asset_name("predicted_vs_actual", "2026-12-02") -> "predicted-vs-actual_diamonds_2026-12-02".
    """
    subject = ALGORITHM_SHORT_NAMES.get(subject, subject)
    parts = []
    for part in (subject, dataset, qualifier):
        cleaned = _NAME_PART.sub("-", part.lower()).strip("-")
        if not cleaned:
            raise ValueError(f"name part {part!r} has no letters or digits")
        parts.append(cleaned)
    return "_".join(parts)


def model_name(family: str, version: int) -> str:
    return asset_name(family, f"v{version}")


def figure_name(topic: str, day: str) -> str:
    return f"{asset_name(topic, day)}.png"


# SageMaker.
TRAINING_CHANNEL_TRAIN: Final = "train"
TRAINING_CHANNEL_HOLDOUT: Final = "holdout"
TRAINING_METRIC_PREFIX: Final = "facet-metric"
# The serving image locally: the name every package records, which the emulator resolves to
# this repository's serving code (in AWS: the image asset's ECR URI).
LOCAL_SERVING_IMAGE: Final = f"{PROJECT}-serving:local"

# Step Functions.
ASL_FILE: Final = "training_pipeline.asl.json"
SCORING_ASL_FILE: Final = "scoring_flow.asl.json"

# API Gateway's stage of each deployment's own API: the deployment stage is in the API's name
# and id, so a client's paths are the same for every deployment.
API_STAGE: Final = "prod"


class Env(StrEnum):
    """Environment variable names read by the runtime settings (contracts.settings)."""

    DATA_BUCKET = "FACET_DATA_BUCKET"
    ARTIFACTS_BUCKET = "FACET_ARTIFACTS_BUCKET"
    MODEL_PACKAGE_GROUP = "FACET_MODEL_PACKAGE_GROUP"
    PRODUCTION_MODEL_PARAM = "FACET_PRODUCTION_MODEL_PARAM"
    MODEL_REFRESH_SECONDS = "FACET_MODEL_REFRESH_SECONDS"
    MAX_BATCH_ROWS = "FACET_MAX_BATCH_ROWS"
    INFERENCE_LOG_FLUSH_ROWS = "FACET_INFERENCE_LOG_FLUSH_ROWS"
    INFERENCE_LOG_FLUSH_SECONDS = "FACET_INFERENCE_LOG_FLUSH_SECONDS"
    MAX_EXPLAINED_ROWS = "FACET_MAX_EXPLAINED_ROWS"
    CORS_ALLOWED_ORIGINS = "FACET_CORS_ALLOWED_ORIGINS"
    API_STAGE = "FACET_API_STAGE"
    MODEL_DIR = "FACET_MODEL_DIR"
    LOG_LEVEL = "FACET_LOG_LEVEL"
    TRAINING_POLL_SECONDS = "FACET_TRAINING_POLL_SECONDS"
    LOCAL_TRAINING_POLL_SECONDS = "FACET_LOCAL_TRAINING_POLL_SECONDS"
    LOCAL_LAMBDA_IDLE_SECONDS = "FACET_LOCAL_LAMBDA_IDLE_SECONDS"
    LOCAL_LAMBDA_MAX_ENVIRONMENTS = "FACET_LOCAL_LAMBDA_MAX_ENVIRONMENTS"
    TRAINING_MAX_SECONDS = "FACET_TRAINING_MAX_SECONDS"
    TRAINING_MODELS = "FACET_TRAINING_MODELS"
    TRAINING_HYPERPARAMETERS = "FACET_TRAINING_HYPERPARAMETERS"
    SERVING_IMAGE = "FACET_SERVING_IMAGE"
    TRAINING_SOURCE_S3_URI = "FACET_TRAINING_SOURCE_S3_URI"
    STATE_MACHINE_ARN = "FACET_STATE_MACHINE_ARN"
    STAGE = "FACET_STAGE"
    # The MLflow tracking server (an ARN in AWS, a URL locally); unset, nothing is tracked.
    MLFLOW_TRACKING_URI = "FACET_MLFLOW_TRACKING_URI"
    # Rollout (contracts.rollout): the deploy function shifts the serving alias with CodeDeploy
    # when the deployment group is set; without it, production moves at once (the pointer).
    ROLLOUT_GROUP = "FACET_ROLLOUT_GROUP"
    APPROVAL_MODE = "FACET_APPROVAL_MODE"
    SHADOW_SCHEDULER_ROLE = "FACET_SHADOW_SCHEDULER_ROLE"
    SHADOW_SAMPLE = "FACET_SHADOW_SAMPLE"
    SHADOW_MINUTES = "FACET_SHADOW_MINUTES"
    LOCAL_ROLLOUT_SPEEDUP = "FACET_LOCAL_ROLLOUT_SPEEDUP"
    # The local gateway invokes this function's `live` alias, version by version, as API
    # Gateway does; unset, it runs the serving handler of this checkout.
    LOCAL_GATEWAY_FUNCTION = "FACET_LOCAL_GATEWAY_FUNCTION"
    # Bulk scoring: how many instances a transform job runs on (the stage's profile).
    TRANSFORM_INSTANCE_COUNT = "FACET_TRANSFORM_INSTANCE_COUNT"
    # "false": the hosting container's /invocations prices without explanations (a transform
    # job's choice, in its Environment).
    EXPLAIN = "FACET_EXPLAIN"


# Where SageMaker puts the model data inside a hosting container.
CONTAINER_MODEL_DIR: Final = "/opt/ml/model"


class TrainingJobEnv(StrEnum):
    """The training job's Environment (CreateTrainingJob): MLflow's own variables and ours."""

    TRACKING_URI = "MLFLOW_TRACKING_URI"
    EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
    # The registry version this model will get if registered: it names the model.
    MODEL_VERSION = "FACET_MODEL_VERSION"


# CloudWatch (namespace: StageNames.metric_namespace).
PRODUCTION_VERSION_METRIC: Final = "ProductionModelVersion"
# Production's MAPE on each newly arrived labelled batch, and the batch's price level against
# production (percent): the verdict's evidence, alarmed on in the monitoring stack.
PRODUCTION_ERROR_ON_BATCH_METRIC: Final = "ProductionErrorOnNewBatch"
PRICE_SHIFT_METRIC: Final = "PriceShift"


class AslSubstitution(StrEnum):
    """Every `${...}` placeholder of the ASL file; infra and the emulation fill them all."""

    VALIDATE_FUNCTION_ARN = "ValidateBatchFunctionArn"
    CHECK_DRIFT_FUNCTION_ARN = "CheckDriftFunctionArn"
    BUILD_DATASET_FUNCTION_ARN = "BuildDatasetFunctionArn"
    EVALUATE_FUNCTION_ARN = "EvaluateModelFunctionArn"
    REGISTER_FUNCTION_ARN = "RegisterModelFunctionArn"
    DEPLOY_FUNCTION_ARN = "DeployModelFunctionArn"
    REPORT_FUNCTION_ARN = "WriteReportFunctionArn"
    RECORD_FAILURE_FUNCTION_ARN = "RecordFailureFunctionArn"
    TRAINING_IMAGE = "TrainingImage"
    TRAINING_ROLE_ARN = "SageMakerRoleArn"
    TRAINING_INSTANCE_TYPE = "TrainingInstanceType"
    TRAINING_OUTPUT_S3_URI = "TrainingOutputS3Uri"


class ScoringSubstitution(StrEnum):
    """Every `${...}` placeholder of the scoring flow's ASL file."""

    PREPARE_FUNCTION_ARN = "PrepareCatalogueFunctionArn"
    JOIN_FUNCTION_ARN = "JoinScoresFunctionArn"
    FAILURE_FUNCTION_ARN = "RecordScoringFailureFunctionArn"
    MODEL_ROLE_ARN = "ScoringModelRoleArn"
    INSTANCE_TYPE = "TransformInstanceType"
    OUTPUT_KEY_ARN = "LakeKeyArn"


SCORING_STEP_FUNCTIONS: Final = {
    ScoringSubstitution.PREPARE_FUNCTION_ARN: "prepare_catalogue",
    ScoringSubstitution.JOIN_FUNCTION_ARN: "join_scores",
    ScoringSubstitution.FAILURE_FUNCTION_ARN: "record_scoring_failure",
}
SCORING_HANDLER_MODULE: Final = "pipeline.scoring"


# What the pipeline Lambdas are, by step: the value is the handler function in pipeline.handlers.
STEP_FUNCTIONS: Final = {
    AslSubstitution.VALIDATE_FUNCTION_ARN: "validate_batch",
    AslSubstitution.CHECK_DRIFT_FUNCTION_ARN: "check_drift",
    AslSubstitution.BUILD_DATASET_FUNCTION_ARN: "build_dataset",
    AslSubstitution.EVALUATE_FUNCTION_ARN: "evaluate_model",
    AslSubstitution.REGISTER_FUNCTION_ARN: "register_model",
    AslSubstitution.DEPLOY_FUNCTION_ARN: "deploy_model",
    AslSubstitution.REPORT_FUNCTION_ARN: "write_report",
    AslSubstitution.RECORD_FAILURE_FUNCTION_ARN: "record_failure",
}
PIPELINE_HANDLER_MODULE: Final = "pipeline.handlers"
# The packages each deployable's code is made of (dependencies come from a layer or image).
PIPELINE_CODE_PACKAGES: Final = ("contracts", "training", "pipeline")
SERVING_CODE_PACKAGES: Final = ("contracts", "training", "serving")
TRAINING_CODE_PACKAGES: Final = ("contracts", "training")
TRAINING_ENTRY_SCRIPT: Final = "train_entry.py"
SERVING_HANDLER: Final = "serving.handler.handler"


class PackageMetadata(StrEnum):
    """Keys of a model package's CustomerMetadataProperties in the Model Registry."""

    ARTIFACT_SHA256 = "artifact_sha256"
    DATASET_HASH = "dataset_hash"
    HOLDOUT_HASH = "holdout_hash"
    CODE_VERSION = "code_version"
    SCHEMA_VERSION = "schema_version"
    MODEL_FAMILY = "model_family"
    HOLDOUT_MAPE = "holdout_mape"
    HOLDOUT_RMSE = "holdout_rmse"
    HOLDOUT_R2 = "holdout_r2"
    DECISION = "decision"
    REASON = "reason"
    RETRAIN_REASON = "retrain_reason"
    EXECUTION = "execution"
    TRAINING_JOB = "training_job"
    APPROVED_AT = "approved_at"
    MARKET_LEVEL = "market_level"
    HOLDOUT_VERSION = "holdout_version"
    GATE_HOLDOUT = "gate_holdout"
    RECENT_MAPE = "recent_mape"
    MODEL_NAME = "model_name"
    MLFLOW_RUN_ID = "mlflow_run_id"


# The S3 "Object Created" event, reduced to what the pipeline needs. The cloud rule and the local
# queue target use this same transformer, so the state machine sees the same input from both.
RAW_BATCH_EVENT_PATHS: Final = {
    "bucket": "$.detail.bucket.name",
    "key": "$.detail.object.key",
    "etag": "$.detail.object.etag",
    "time": "$.time",
}
# Placeholders inside quotes: AWS accepts both forms, moto 5.2.5 only inserts text verbatim.
RAW_BATCH_EVENT_TEMPLATE: Final = (
    '{"trigger": "s3", "bucket": "<bucket>", "key": "<key>", "etag": "<etag>", '
    '"event_time": "<time>"}'
)


def raw_object_event_pattern(bucket: str) -> dict[str, object]:
    """EventBridge pattern of a new object under raw/ in the data lake (S3 "Object Created")."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"prefix": Zone.RAW.prefix()}]},
        },
    }


def catalogue_event_pattern(bucket: str) -> dict[str, object]:
    """EventBridge pattern of a catalogue landed under scoring/incoming/ (S3 "Object Created")."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"prefix": SCORING_INCOMING_PREFIX}]},
        },
    }


def model_package_state_pattern(group: str) -> dict[str, object]:
    """EventBridge pattern of a package of the group approved or rejected (from anywhere)."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [group],
            "ModelApprovalStatus": ["Approved", "Rejected", "PendingManualApproval"],
        },
    }


SCHEDULE_EVENT_INPUT: Final = '{"trigger": "schedule"}'
DRIFT_SCHEDULE_EXPRESSION: Final = "rate(1 day)"


DEPLOYMENT_STATE_CHANGE: Final = "CodeDeploy Deployment State-change Notification"


def deployment_finished_pattern(application: str) -> dict[str, object]:
    """EventBridge pattern of a CodeDeploy deployment of the application that succeeded, failed
    or was stopped (a rollback): the deploy function moves production or rejects the package."""
    return {
        "source": ["aws.codedeploy"],
        "detail-type": [DEPLOYMENT_STATE_CHANGE],
        "detail": {"application": [application], "state": ["SUCCESS", "FAILURE", "STOP"]},
    }
