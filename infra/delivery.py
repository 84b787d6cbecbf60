"""FacetDelivery: what GitHub Actions may do in this account, with no long-lived keys anywhere.

GitHub's OIDC provider, the two image repositories the delivery pipeline pushes to, and three
roles that only GitHub workflows of one repository can assume, each for one job:

- `facet-github-build` (the main branch): push images to the two repositories, nothing else;
- `facet-github-deploy-<stage>` (the GitHub environment `<stage>`): assume the CDK bootstrap
  roles of this account and region, which deploy the stage's stacks (`cdk deploy`); read the
  stage's API key for the smoke test.

Deployed once per account by an administrator:
`npx cdk deploy FacetDelivery -c delivery=true -c githubRepository=<owner>/<name>`.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from contracts.names import (
    CLOUD_STAGES,
    HOLDOUT_KEY,
    HOLDOUT_MANIFEST_KEY,
    PROJECT,
    REFERENCE_DATASET_KEY,
    BucketRole,
    StageNames,
)
from infra.nag import Nag

GITHUB_ISSUER = "token.actions.githubusercontent.com"
IMAGE_REPOSITORIES = ("pipeline", "serving")


def image_repository_name(image: str) -> str:
    return f"{PROJECT}-{image}"


class DeliveryStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repository: str,
        stages: tuple[str, ...] = CLOUD_STAGES,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        if repository.count("/") != 1:
            raise ValueError(f"githubRepository={repository!r}: expected <owner>/<name>")
        provider = iam.OpenIdConnectProvider(
            self, "GitHub", url=f"https://{GITHUB_ISSUER}", client_ids=["sts.amazonaws.com"]
        )
        self.repositories = {
            image: ecr.Repository(
                self,
                f"{image.title()}Images",
                repository_name=image_repository_name(image),
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                image_scan_on_push=True,
                removal_policy=RemovalPolicy.RETAIN,
                lifecycle_rules=[ecr.LifecycleRule(max_image_count=200)],
            )
            for image in IMAGE_REPOSITORIES
        }
        for repo in self.repositories.values():
            # Lambda pulls the pipeline's images with the service principal.
            repo.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("lambda.amazonaws.com")],
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    conditions={
                        "StringLike": {
                            "aws:sourceArn": f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:"
                            f"{Aws.ACCOUNT_ID}:function:{PROJECT}-*"
                        }
                    },
                )
            )

        def github(subject: str) -> iam.WebIdentityPrincipal:
            return iam.WebIdentityPrincipal(
                provider.open_id_connect_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com",
                        f"{GITHUB_ISSUER}:sub": f"repo:{repository}:{subject}",
                    }
                },
            )

        self.build_role = iam.Role(
            self,
            "BuildRole",
            role_name=f"{PROJECT}-github-build",
            assumed_by=github("ref:refs/heads/main"),
            max_session_duration=Duration.hours(1),
            description="GitHub Actions, main branch: push the images it built",
        )
        for repo in self.repositories.values():
            repo.grant_push(self.build_role)
        self.deploy_roles = {}
        for stage in stages:
            role = iam.Role(
                self,
                f"Deploy{stage.title()}Role",
                role_name=f"{PROJECT}-github-deploy-{stage}",
                assumed_by=github(f"environment:{stage}"),
                max_session_duration=Duration.hours(1),
                description=f"GitHub Actions, environment {stage}: deploy the {stage} stacks",
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["sts:AssumeRole"],
                    resources=[
                        f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/"
                        f"cdk-hnb659fds-*-{Aws.ACCOUNT_ID}-{Aws.REGION}"
                    ],
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["apigateway:GET"],
                    resources=[f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/apikeys/*"],
                    conditions={
                        "StringEquals": {
                            "aws:ResourceTag/stage": StageNames(stage).stage,
                        }
                    },
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["cloudformation:DescribeStacks"],
                    resources=[
                        f"arn:{Aws.PARTITION}:cloudformation:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                        f"stack/{StageNames(stage).prefix}-*/*"
                    ],
                )
            )
            # `make deploy` seeds the lake once (scripts/deploy.py, pipeline/seeding.py): its
            # three starting objects only, and the lake key only as S3 uses it for that bucket.
            lake = StageNames(stage).bucket(BucketRole.DATA_LAKE, Aws.ACCOUNT_ID, Aws.REGION)
            lake_arn = f"arn:{Aws.PARTITION}:s3:::{lake}"
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:PutObject"],
                    resources=[
                        f"{lake_arn}/{key}"
                        for key in (REFERENCE_DATASET_KEY, HOLDOUT_KEY, HOLDOUT_MANIFEST_KEY)
                    ],
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[f"arn:{Aws.PARTITION}:kms:{Aws.REGION}:{Aws.ACCOUNT_ID}:key/*"],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com",
                            # the lake uses an S3 Bucket Key: the context is the bucket's ARN
                            "kms:EncryptionContext:aws:s3:arn": lake_arn,
                        }
                    },
                )
            )
            self.deploy_roles[stage] = role
            nag = Nag(role)
            nag.acknowledge(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:"
                "<AWS::AccountId>:key/*]",
                reason="The lake's key lives in the stage's stacks, not this one; conditions "
                "limit its use to S3 encrypting or reading the stage's lake bucket (seeding).",
            )
            nag.acknowledge(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/"
                "cdk-hnb659fds-*-<AWS::AccountId>-<AWS::Region>]",
                reason="The CDK bootstrap roles of this account and region (deploy, file "
                "publishing, lookup): the deploy role can do only what they allow.",
            )
            nag.acknowledge(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:apigateway:<AWS::Region>::"
                "/apikeys/*]",
                reason="API key ids are generated at deploy time; a tag condition limits the "
                "read to the stage's own keys (for the smoke test).",
            )
            nag.acknowledge(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:"
                f"<AWS::Region>:<AWS::AccountId>:stack/{StageNames(stage).prefix}-*/*]",
                reason="Stack ids end in a generated UUID; the grant covers the stage's stacks "
                "(to read their outputs) only.",
            )
        Nag(self.build_role).acknowledge(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken has no resource ARN; pushes are limited to the two "
            "image repositories.",
        )
