"""The two container images: built from the repository at synth (CDK image assets), or, in the
delivery pipeline, the exact images it built once and pushed, named by digest.

`cdk deploy -c pipelineImage=<repo-uri>@sha256:... -c servingImage=<repo-uri>@sha256:...` deploys
those images without building anything, so staging and prod run the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.assets import (
    IMAGE_CONTEXT_EXCLUDES,
    PIPELINE_IMAGE_DOCKERFILE,
    REPO,
    SERVING_IMAGE_DOCKERFILE,
)


@dataclass(frozen=True)
class ImageReference:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<digest>`."""

    repository_name: str
    digest: str
    uri: str

    @classmethod
    def parse(cls, uri: str) -> ImageReference:
        location, separator, digest = uri.partition("@")
        if not separator or not digest.startswith("sha256:") or "/" not in location:
            raise ValueError(f"{uri!r}: expected <registry>/<repository>@sha256:<digest>")
        return cls(location.split("/", 1)[1], digest, uri)


class ContainerImage:
    """An image by URI that roles may pull: an asset built at synth, or a pushed digest."""

    def __init__(
        self, scope: Construct, construct_id: str, *, dockerfile: str, pushed: str | None
    ) -> None:
        self.dockerfile = dockerfile
        self.reference = ImageReference.parse(pushed) if pushed else None
        if self.reference is not None:
            self.repository: ecr.IRepository = ecr.Repository.from_repository_name(
                scope, f"{construct_id}Repository", self.reference.repository_name
            )
            self.uri = self.reference.uri
            self.asset: ecr_assets.DockerImageAsset | None = None
        else:
            self.asset = ecr_assets.DockerImageAsset(
                scope,
                construct_id,
                directory=str(REPO),
                file=dockerfile,
                exclude=IMAGE_CONTEXT_EXCLUDES,
                platform=ecr_assets.Platform.LINUX_AMD64,
            )
            self.repository = self.asset.repository
            self.uri = self.asset.image_uri

    def grant_pull(self, grantee: iam.IGrantable) -> None:
        self.repository.grant_pull(grantee)

    def lambda_code(self, command: str) -> lambda_.DockerImageCode:
        if self.reference is not None:
            return lambda_.DockerImageCode.from_ecr(
                self.repository, tag_or_digest=self.reference.digest, cmd=[command]
            )
        return lambda_.DockerImageCode.from_image_asset(
            directory=str(REPO),
            file=self.dockerfile,
            cmd=[command],
            exclude=IMAGE_CONTEXT_EXCLUDES,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )


__all__ = ["PIPELINE_IMAGE_DOCKERFILE", "SERVING_IMAGE_DOCKERFILE", "ContainerImage"]
