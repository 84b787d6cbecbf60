"""FacetDelivery: GitHub's OIDC provider and roles only one repository's workflows can assume."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Validations

from infra.app import compliance_checks
from infra.delivery import DeliveryStack

REPOSITORY = "example-org/facet"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = App(outdir=str(tmp_path_factory.mktemp("delivery")))
    stack = DeliveryStack(app, "FacetDelivery", repository=REPOSITORY)
    Validations.of(app).add_plugins(*compliance_checks(app))  # cdk-nag: synth fails on a finding
    loaded: dict[str, Any] = app.synth().get_stack_artifact(stack.artifact_id).template
    return loaded


def roles(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RoleName"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and "RoleName" in r["Properties"]
    }


def rendered(value: Any) -> str:
    """A string or an Fn::Join of strings and Refs, with each Ref as ${Name}."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    separator, parts = value["Fn::Join"]
    return str(separator).join(rendered(part) for part in parts)


def test_oidc_provider_for_github_actions(template: dict[str, Any]) -> None:
    providers = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "Custom::AWSCDKOpenIdConnectProvider"
    ]
    assert providers and providers[0]["Url"] == "https://token.actions.githubusercontent.com"
    assert providers[0]["ClientIDList"] == ["sts.amazonaws.com"]


@pytest.mark.parametrize(
    ("role", "subject"),
    [
        ("facet-github-build", "ref:refs/heads/main"),
        ("facet-github-deploy-dev", "environment:dev"),
        ("facet-github-deploy-staging", "environment:staging"),
        ("facet-github-deploy-prod", "environment:prod"),
    ],
)
def test_each_role_trusts_one_repository_and_one_branch_or_environment(
    template: dict[str, Any], role: str, subject: str
) -> None:
    (statement,) = roles(template)[role]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:sub"] == f"repo:{REPOSITORY}:{subject}"
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"


def test_deploy_roles_can_assume_the_cdk_bootstrap_roles_and_seed_their_stages_lake_only(
    template: dict[str, Any],
) -> None:
    policies = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
    ]
    for stage in ("dev", "staging", "prod"):
        role_id = next(
            k
            for k, r in template["Resources"].items()
            if r["Properties"].get("RoleName") == f"facet-github-deploy-{stage}"
        )
        statements = [
            s
            for p in policies
            if {"Ref": role_id} in p["Roles"]
            for s in p["PolicyDocument"]["Statement"]
        ]
        actions = {
            action
            for s in statements
            for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        }
        assert actions == {
            "sts:AssumeRole",
            "apigateway:GET",
            "cloudformation:DescribeStacks",
            "s3:GetObject",
            "s3:PutObject",
            "kms:GenerateDataKey",
            "kms:Decrypt",
        }
        assume = next(s for s in statements if s["Action"] == "sts:AssumeRole")
        assert "cdk-hnb659fds-*-" in json.dumps(assume["Resource"])
        # the seeding: the lake's three starting objects of this stage, nothing else
        objects = next(s for s in statements if "s3:PutObject" in s["Action"])
        lake = f"arn:${{AWS::Partition}}:s3:::facet-{stage}-data-lake-${{AWS::AccountId}}-${{AWS::Region}}"
        assert sorted(rendered(r) for r in objects["Resource"]) == [
            f"{lake}/curated/holdout/holdout.csv",
            f"{lake}/curated/holdout/manifest.json",
            f"{lake}/curated/reference/diamonds.csv.gz",
        ]
        key_use = next(s for s in statements if "kms:Decrypt" in s["Action"])
        conditions = key_use["Condition"]["StringEquals"]
        assert set(conditions) == {"kms:ViaService", "kms:EncryptionContext:aws:s3:arn"}
        assert rendered(conditions["kms:EncryptionContext:aws:s3:arn"]) == lake
        assert rendered(conditions["kms:ViaService"]) == "s3.${AWS::Region}.amazonaws.com"


def test_images_are_immutable_and_scanned(template: dict[str, Any]) -> None:
    repositories = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ECR::Repository"
    ]
    assert {r["RepositoryName"] for r in repositories} == {"facet-pipeline", "facet-serving"}
    for repository in repositories:
        assert repository["ImageTagMutability"] == "IMMUTABLE"
        assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}


def test_no_access_keys_anywhere(template: dict[str, Any]) -> None:
    types = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::IAM::AccessKey" not in types and "AWS::IAM::User" not in types
