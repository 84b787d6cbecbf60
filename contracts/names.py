"""Every name shared by infra, training, serving and the local emulation, spelled once.

Infra imports these to declare resources, runtime code imports them to find those resources,
and the local emulation imports them to provision the same resources in the emulator.
"""

from __future__ import annotations

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


# Object keys inside the zones.
RAW_BATCH_PATTERN: Final = "diamonds_raw_{stamp}.csv"
RAW_BATCH_REGEX: Final = r"^diamonds_raw_(\d{8}T\d{6})\.csv$"
REFERENCE_DATASET_KEY: Final = f"{Zone.CURATED.value}/reference/diamonds.csv.gz"
HOLDOUT_KEY: Final = f"{Zone.CURATED.value}/holdout/holdout.csv"
HOLDOUT_MANIFEST_KEY: Final = f"{Zone.CURATED.value}/holdout/manifest.json"
DATASETS_PREFIX: Final = f"{Zone.CURATED.value}/datasets/"
LEDGER_PREFIX: Final = f"{Zone.CURATED.value}/ledger/"
TRAINING_OUTPUT_PREFIX: Final = "training-jobs/"
TRAINING_CODE_KEY: Final = "code/training-source.tar.gz"

# SageMaker.
MODEL_PACKAGE_GROUP: Final = "facet-diamond-price"
TRAINING_CHANNEL_TRAIN: Final = "train"
TRAINING_CHANNEL_HOLDOUT: Final = "holdout"
TRAINING_JOB_PREFIX: Final = "facet-train"
TRAINING_METRIC_PREFIX: Final = "facet-metric"
SAGEMAKER_ENDPOINT: Final = "facet-price-endpoint"

# Step Functions.
STATE_MACHINE: Final = "facet-training-pipeline"
ASL_FILE: Final = "training_pipeline.asl.json"


class Step(StrEnum):
    """Pipeline step Lambdas: each value is the handler function's name and the Lambda's suffix."""

    VALIDATE = "validate_batch"
    BUILD_DATASET = "build_dataset"
    EVALUATE = "evaluate_model"
    REGISTER = "register_model"
    DEPLOY = "deploy_model"
    RECORD_FAILURE = "record_failure"

    def function_name(self) -> str:
        return f"{PROJECT}-{self.value.replace('_', '-')}"

    def asl_placeholder(self) -> str:
        """The `${...}` substitution key of this Lambda's ARN in the ASL file."""
        return f"{self.name.title().replace('_', '')}FunctionArn"


SERVING_FUNCTION: Final = f"{PROJECT}-serving-api"
API_NAME: Final = f"{PROJECT}-price-api"
API_STAGE: Final = "prod"
LAMBDA_EXECUTION_ROLE: Final = f"{PROJECT}-lambda-role"
SAGEMAKER_EXECUTION_ROLE: Final = f"{PROJECT}-sagemaker-role"
STATES_EXECUTION_ROLE: Final = f"{PROJECT}-states-role"

# EventBridge.
RAW_OBJECT_RULE: Final = f"{PROJECT}-raw-batch-arrived"
DRIFT_SCHEDULE_RULE: Final = f"{PROJECT}-scheduled-drift-check"
MODEL_APPROVAL_RULE: Final = f"{PROJECT}-model-package-approved"
LOCAL_TRIGGER_QUEUE: Final = f"{PROJECT}-pipeline-triggers"

# SSM parameters.
PARAM_PREFIX: Final = f"/{PROJECT}"
PARAM_PRODUCTION_MODEL: Final = f"{PARAM_PREFIX}/production-model-package"
PARAM_GATE: Final = f"{PARAM_PREFIX}/gate"


class Env(StrEnum):
    """Environment variable names read by the runtime settings (contracts.settings)."""

    DATA_BUCKET = "FACET_DATA_BUCKET"
    ARTIFACTS_BUCKET = "FACET_ARTIFACTS_BUCKET"
    MODEL_PACKAGE_GROUP = "FACET_MODEL_PACKAGE_GROUP"
    PRODUCTION_MODEL_PARAM = "FACET_PRODUCTION_MODEL_PARAM"
    GATE_PARAM = "FACET_GATE_PARAM"
    MODEL_REFRESH_SECONDS = "FACET_MODEL_REFRESH_SECONDS"
    MAX_BATCH_ROWS = "FACET_MAX_BATCH_ROWS"
    INFERENCE_LOG_FLUSH_ROWS = "FACET_INFERENCE_LOG_FLUSH_ROWS"
    API_STAGE = "FACET_API_STAGE"
    MODEL_DIR = "FACET_MODEL_DIR"
    LOG_LEVEL = "FACET_LOG_LEVEL"


# CloudWatch.
METRIC_NAMESPACE: Final = "Facet"
