"""The S3 data lake (zones raw/ … reports/), the artifacts bucket, and their key and access logs."""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contracts.names import (
    SCORING_INCOMING_PREFIX,
    SCORING_RESULTS_PREFIX,
    SCORING_WORK_PREFIX,
    BucketRole,
    StageNames,
    Zone,
)
from infra.lifecycle import Lifecycle
from infra.nag import Nag

# (rule, prefix, days) of the scoring prefixes' expiry.
SCORING_RETENTION: Final = (
    ("incoming", SCORING_INCOMING_PREFIX, 30),
    ("work", SCORING_WORK_PREFIX, 7),
    ("results", SCORING_RESULTS_PREFIX, 90),
)


class DataLake(Construct):
    """Encrypted, versioned, TLS-only buckets with access logs and EventBridge notifications."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        data: Lifecycle,
        keys: Lifecycle,
    ) -> None:
        super().__init__(scope, construct_id)
        self.names, self.data = names, data
        self.key = kms.Key(
            self,
            "LakeKey",
            description=f"Facet {names.stage}: data lake and model artifacts",
            enable_key_rotation=True,
            removal_policy=keys.policy,
            pending_window=Duration.days(7) if keys.policy is RemovalPolicy.DESTROY else None,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=names.bucket(BucketRole.ACCESS_LOGS, Aws.ACCOUNT_ID, Aws.REGION),
            # S3 server access logs cannot be delivered to an SSE-KMS bucket.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))
            ],
            removal_policy=data.policy,
            auto_delete_objects=data.policy is RemovalPolicy.DESTROY,
        )
        Nag(self.access_logs).acknowledge(
            id="AwsSolutions-S1",
            reason="This is the access-log bucket itself; logging it into itself would loop.",
        )
        to_infrequent_access = [
            s3.Transition(
                storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(30)
            )
        ]
        self.bucket = self._encrypted_bucket(
            "Lake",
            BucketRole.DATA_LAKE,
            event_bridge_enabled=True,
            lifecycle_rules=[
                # Raw batches are kept (validated/ holds their accepted rows), in cheaper storage.
                s3.LifecycleRule(
                    id="raw-to-infrequent-access",
                    prefix=Zone.RAW.prefix(),
                    transitions=to_infrequent_access,
                    noncurrent_version_expiration=Duration.days(90),
                ),
                # Bulk scoring: partners' catalogues, the transform jobs' work and the results
                # are theirs to fetch, not ours to keep (contracts.names.SCORING_*).
                *(
                    s3.LifecycleRule(
                        id=f"scoring-{part}",
                        prefix=prefix,
                        expiration=Duration.days(days),
                        noncurrent_version_expiration=Duration.days(1),
                    )
                    for part, prefix, days in SCORING_RETENTION
                ),
                # Inference logs are for drift checks and audits: a year, then gone.
                s3.LifecycleRule(
                    id="inference-logs",
                    prefix=Zone.INFERENCE.prefix(),
                    transitions=to_infrequent_access,
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                ),
            ],
        )
        self.artifacts = self._encrypted_bucket(
            "Artifacts",
            BucketRole.ARTIFACTS,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="old-versions", noncurrent_version_expiration=Duration.days(180)
                )
            ],
        )

    def _encrypted_bucket(
        self,
        construct_id: str,
        role: BucketRole,
        *,
        lifecycle_rules: list[s3.LifecycleRule],
        event_bridge_enabled: bool = False,
    ) -> s3.Bucket:
        """Versioned, SSE-KMS with the lake key, private, TLS only, access-logged."""
        return s3.Bucket(
            self,
            construct_id,
            bucket_name=self.names.bucket(role, Aws.ACCOUNT_ID, Aws.REGION),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            event_bridge_enabled=event_bridge_enabled,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{role.value}/",
            lifecycle_rules=lifecycle_rules,
            removal_policy=self.data.policy,
            auto_delete_objects=self.data.policy is RemovalPolicy.DESTROY,
        )


class DataLakeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: StageNames,
        data: Lifecycle,
        keys: Lifecycle,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.lake = DataLake(self, "DataLake", names=names, data=data, keys=keys)
        Nag(self).acknowledge(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            reason="CDK's bucket-notification custom resource (turns on EventBridge "
            "delivery) logs with the basic execution policy.",
        )
