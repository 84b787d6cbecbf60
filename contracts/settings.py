"""Typed settings, read from the environment once.

Runtime code calls `get_settings()`; tests build `Settings(...)` directly. SageMaker's `SM_*`
container variables map onto `TrainingJobSettings` here and nowhere else. Endpoint URLs are not
settings: boto3 reads `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` itself.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import names
from contracts.names import Env
from contracts.rollout import ComparisonRole, RolloutEnv, RolloutPolicy, rollout_policy


class GatePolicy(BaseSettings):
    """When a candidate model may replace production (DESIGN.md §5)."""

    model_config = SettingsConfigDict(env_prefix="FACET_GATE_", frozen=True)

    max_mape: float = Field(0.08, description="Absolute floor: holdout MAPE must be at most this.")
    max_rmse: float = Field(
        700.0,
        description="Absolute floor: holdout RMSE (USD) at most this, at the classic data's "
        "price level; judged on data at another level (after a market shift), it moves with it.",
    )
    min_r2: float = Field(0.97, description="Absolute floor: holdout R^2 at least this.")
    min_mape_improvement: float = Field(
        0.0005,
        description="The candidate's holdout MAPE must beat production's by at least this "
        "(absolute, 0.0005 = 0.05 percentage points).",
    )
    on_shift: Literal["manual", "auto"] = Field(
        "manual",
        description="After a market shift, a candidate that wins on recent data is registered "
        "PendingManualApproval for a person to decide (manual), or approved (auto): a model "
        "that follows a price move changes every price at once.",
    )


class VerdictPolicy(BaseSettings):
    """How a labelled batch is judged before training (pipeline/verdict.py), from production's
    log-residuals on it compared with those on its holdout.

    Calibrated on the classic data with a model trained on it (`make bench` prints the verdict's
    numbers): clean 5,000-row batches spread 0.89-0.95x the holdout's and have 0.8 % of stones
    beyond the holdout's 99th-percentile error; shuffled prices spread 23x; shuffling 5 % of a
    batch's prices puts 5.2 % of its stones beyond that error; a +15 % market moves the median
    by +15 % and leaves the spread at 0.94x.
    """

    model_config = SettingsConfigDict(env_prefix="FACET_VERDICT_", frozen=True)

    shift_threshold: float = Field(
        0.05,
        description="A batch whose median price level differs from production's by more than "
        "this fraction (either way) is a market shift: 5 % is a move a jeweller would re-price "
        "for, and about five times the level noise of a clean 5,000-row batch (< 0.3 %).",
    )
    max_spread_ratio: float = Field(
        1.5,
        description="A batch whose residuals spread more than this multiple of the holdout's is "
        "inconsistent: clean samples of 30 stones reach at most 1.57x (p99 1.47x), of 100 "
        "stones 1.39x; shuffled prices reach 23x.",
    )
    max_outlier_share: float = Field(
        0.04,
        description="A batch is inconsistent, too, when its share of stones beyond the holdout's "
        "99th-percentile error is "
        "above this (4x the holdout's 1 %): clean 200-stone samples reach at most 2.5 %; a batch "
        "with 5 % of its prices shuffled reaches 5.2 %.",
    )
    min_rows_for_outliers: int = Field(
        200, description="The outlier share is judged only on batches at least this large."
    )
    min_rows: int = Field(
        30, description="Smaller batches are accepted as consistent without being judged."
    )


class Settings(BaseSettings):
    """Runtime settings of the Lambdas, the API and the CLI."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    stage: str = Field(
        names.DEFAULT_STAGE,
        validation_alias=Env.STAGE.value,
        description="The deployment stage; every physical name carries it (StageNames).",
    )
    data_bucket: str = Field("", validation_alias=Env.DATA_BUCKET.value)
    artifacts_bucket: str = Field("", validation_alias=Env.ARTIFACTS_BUCKET.value)
    model_package_group: str = Field(
        "",
        validation_alias=Env.MODEL_PACKAGE_GROUP.value,
        description="Default: the stage's (StageNames.model_package_group).",
    )
    production_model_param: str = Field(
        "",
        validation_alias=Env.PRODUCTION_MODEL_PARAM.value,
        description="Default: the stage's (StageNames.production_parameter).",
    )
    model_refresh_seconds: float = Field(
        30.0,
        validation_alias=Env.MODEL_REFRESH_SECONDS.value,
        description="How often the API checks the registry for a newly approved model.",
    )
    max_batch_rows: int = Field(10_000, validation_alias=Env.MAX_BATCH_ROWS.value, gt=0)
    max_explained_rows: int = Field(
        5_000,
        validation_alias=Env.MAX_EXPLAINED_ROWS.value,
        gt=0,
        description="Most rows one request may ask to have explained: an explained row is up to "
        "~1 kB in Lambda's response encoding, and the whole answer must fit in 6 MB "
        "(tests/integration/test_serving_limits.py measures the worst case at this limit).",
    )
    inference_log_flush_rows: int = Field(
        1_000,
        validation_alias=Env.INFERENCE_LOG_FLUSH_ROWS.value,
        gt=0,
        description="Inference rows are written to the lake as soon as this many are waiting.",
    )
    inference_log_flush_seconds: float = Field(
        10.0,
        validation_alias=Env.INFERENCE_LOG_FLUSH_SECONDS.value,
        gt=0,
        description="Inference rows are written once the oldest has waited this long; a hard "
        "kill loses at most the rows of one such window (or flush_rows rows).",
    )
    cors_allowed_origins: str = Field(
        "",
        validation_alias=Env.CORS_ALLOWED_ORIGINS.value,
        description="Comma-separated origins whose browser apps may call the API (partners' "
        "sites); empty: only the API's own page.",
    )
    api_stage: str = Field(names.API_STAGE, validation_alias=Env.API_STAGE.value)
    model_dir: Path | None = Field(
        None,
        validation_alias=Env.MODEL_DIR.value,
        description="Serve this local artifact directory instead of following the registry.",
    )
    explain: bool = Field(
        True,
        validation_alias=Env.EXPLAIN.value,
        description="The hosting container's /invocations explains every price; a batch "
        "transform job that only wants prices sets it to false in its Environment.",
    )
    transform_instance_count: int = Field(
        1,
        validation_alias=Env.TRANSFORM_INSTANCE_COUNT.value,
        gt=0,
        le=100,
        description="Instances a scoring run's batch transform job uses (the stage's profile); "
        "the catalogue is split into at least this many parts, one or more per instance.",
    )
    log_level: str = Field("INFO", validation_alias=Env.LOG_LEVEL.value)
    training_poll_seconds: int = Field(
        30,
        validation_alias=Env.TRAINING_POLL_SECONDS.value,
        gt=0,
        description="Seconds the pipeline waits between training-job status checks.",
    )
    local_training_poll_seconds: int = Field(
        1,
        validation_alias=Env.LOCAL_TRAINING_POLL_SECONDS.value,
        gt=0,
        description="The same wait in the emulator, which provisions the pipeline with it: a "
        "local job ends in seconds, and the ASL that AWS runs is unchanged.",
    )
    local_lambda_idle_seconds: float = Field(
        120.0,
        validation_alias=Env.LOCAL_LAMBDA_IDLE_SECONDS.value,
        gt=0,
        description="The emulator stops a Lambda execution environment idle this long.",
    )
    local_lambda_max_environments: int = Field(
        10,
        validation_alias=Env.LOCAL_LAMBDA_MAX_ENVIRONMENTS.value,
        gt=0,
        description="Warm Lambda environments the emulator keeps on this machine at most "
        "(least recently used idle ones stop first); busy ones are never stopped. 10 keeps the "
        "pipeline's eight functions and the API warm: with 4, a run cycling through eight "
        "functions cold-started every step (26.5 s per run against 16 s).",
    )
    local_rollout_speedup: float = Field(
        120.0,
        validation_alias=Env.LOCAL_ROLLOUT_SPEEDUP.value,
        gt=0,
        description="The emulator's stand-in for CodeDeploy divides every canary interval and "
        "alarm period by this: at 120, a 5-minute canary with 1-minute alarm periods takes 2.5 s "
        "with 0.5-s periods (the local gateway and serving publish their metrics every 0.25 s, "
        "so each period sees two flushes).",
    )
    training_max_seconds: int = Field(
        3600,
        validation_alias=Env.TRAINING_MAX_SECONDS.value,
        gt=0,
        description="A training job running longer is stopped by SageMaker and the run fails.",
    )
    training_models: str = Field(
        "linear,tree,lightgbm",
        validation_alias=Env.TRAINING_MODELS.value,
        description="Candidates the training job compares (see training.hyperparameters).",
    )
    training_hyperparameters: str = Field(
        "{}",
        validation_alias=Env.TRAINING_HYPERPARAMETERS.value,
        description="JSON object of extra training hyperparameters (strings).",
    )
    serving_image: str = Field(
        names.LOCAL_SERVING_IMAGE,
        validation_alias=Env.SERVING_IMAGE.value,
        description="Container image recorded in each model package's inference specification.",
    )
    state_machine_arn: str = Field("", validation_alias=Env.STATE_MACHINE_ARN.value)
    # A SageMaker MLflow tracking server's ARN, or a URL; empty: training jobs track nothing.
    mlflow_tracking_uri: str = Field("", validation_alias=Env.MLFLOW_TRACKING_URI.value)
    training_source_s3_uri: str = Field(
        "",
        validation_alias=Env.TRAINING_SOURCE_S3_URI.value,
        description="s3:// URI of the training code tarball run by the framework container.",
    )

    rollout_group: str = Field(
        "",
        validation_alias=Env.ROLLOUT_GROUP.value,
        description="CodeDeploy deployment group that shifts the serving alias to a newly "
        "approved model (canary, alarms); empty: production moves at once.",
    )
    approval_mode: Literal["auto", "manual", ""] = Field(
        "",
        validation_alias=Env.APPROVAL_MODE.value,
        description="auto: the pipeline approves a model the gate passed; manual: it waits "
        "PendingManualApproval for a person. Empty: the stage's (contracts.rollout).",
    )
    shadow_scheduler_role: str = Field(
        "",
        validation_alias=Env.SHADOW_SCHEDULER_ROLE.value,
        description="Role EventBridge Scheduler assumes to end a shadow period.",
    )
    model_pin: str = Field(
        "",
        validation_alias=RolloutEnv.MODEL_PIN.value,
        description="JSON ModelPin: this serving version serves exactly this model package.",
    )
    compare_pin: str = Field(
        "",
        validation_alias=RolloutEnv.COMPARE_PIN.value,
        description="JSON ModelPin of the model this version also prices, to compare with.",
    )
    compare_role: ComparisonRole = Field(
        ComparisonRole.CANARY, validation_alias=RolloutEnv.COMPARE_ROLE.value
    )
    compare_sample: float = Field(
        1.0,
        validation_alias=RolloutEnv.COMPARE_SAMPLE.value,
        ge=0.0,
        le=1.0,
        description="Share of requests priced by the compared model too.",
    )
    disagreement: float = Field(
        0.10,
        validation_alias=RolloutEnv.DISAGREEMENT.value,
        gt=0.0,
        description="Two prices of one stone disagree when they differ by more than this "
        "fraction of the answered price.",
    )

    shadow_sample: float | None = Field(
        None,
        validation_alias=Env.SHADOW_SAMPLE.value,
        ge=0.0,
        le=1.0,
        description="Share of requests the candidate also prices in shadow before its canary; "
        "0: no shadow. Unset: the stage's (contracts.rollout).",
    )
    shadow_minutes: int | None = Field(
        None,
        validation_alias=Env.SHADOW_MINUTES.value,
        ge=0,
        description="How long the shadow lasts. Unset: the stage's (contracts.rollout).",
    )

    @property
    def approval(self) -> str:
        return self.rollout.approval

    @property
    def rollout(self) -> RolloutPolicy:
        """The stage's rollout policy with what this environment overrides."""
        policy = rollout_policy(self.stage)
        return replace(
            policy,
            approval=self.approval_mode or policy.approval,  # type: ignore[arg-type]
            shadow_sample=(
                policy.shadow_sample if self.shadow_sample is None else self.shadow_sample
            ),
            shadow_minutes=(
                policy.shadow_minutes if self.shadow_minutes is None else self.shadow_minutes
            ),
        )

    @model_validator(mode="after")
    def _stage_defaults(self) -> Settings:
        stage = names.StageNames(self.stage)
        # frozen: set once, while validating
        if not self.model_package_group:
            object.__setattr__(self, "model_package_group", stage.model_package_group)
        if not self.production_model_param:
            object.__setattr__(self, "production_model_param", stage.production_parameter)
        return self

    @property
    def names(self) -> names.StageNames:
        return names.StageNames(self.stage)

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class TrainingJobSettings(BaseSettings):
    """The SageMaker training container contract, as environment variables with their defaults.

    https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    model_dir: Path = Field(Path("/opt/ml/model"), validation_alias="SM_MODEL_DIR")
    input_dir: Path = Field(Path("/opt/ml/input"), validation_alias="SM_INPUT_DIR")
    input_config_dir: Path = Field(
        Path("/opt/ml/input/config"), validation_alias="SM_INPUT_CONFIG_DIR"
    )
    output_dir: Path = Field(Path("/opt/ml/output"), validation_alias="SM_OUTPUT_DIR")
    output_data_dir: Path = Field(
        Path("/opt/ml/output/data"), validation_alias="SM_OUTPUT_DATA_DIR"
    )
    train_channel: Path = Field(
        Path(f"/opt/ml/input/data/{names.TRAINING_CHANNEL_TRAIN}"),
        validation_alias=AliasChoices(f"SM_CHANNEL_{names.TRAINING_CHANNEL_TRAIN.upper()}"),
    )
    holdout_channel: Path = Field(
        Path(f"/opt/ml/input/data/{names.TRAINING_CHANNEL_HOLDOUT}"),
        validation_alias=AliasChoices(f"SM_CHANNEL_{names.TRAINING_CHANNEL_HOLDOUT.upper()}"),
    )
    hps_json: str | None = Field(None, validation_alias="SM_HPS")

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def hyperparameters(self) -> dict[str, str]:
        """SageMaker passes every hyperparameter as a string, in SM_HPS or hyperparameters.json."""
        raw: dict[str, Any]
        if self.hps_json:
            raw = json.loads(self.hps_json)
        else:
            path = self.input_config_dir / "hyperparameters.json"
            raw = json.loads(path.read_text()) if path.exists() else {}
        return {key: str(value) for key, value in raw.items()}
