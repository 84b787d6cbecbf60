"""mypy follows only the aws_cdk modules the code imports (pyproject.toml): a module imported but
missing from that list would be Any to mypy, and every call into it unchecked."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKED_PACKAGES = ("contracts", "training", "pipeline", "local_emulation", "serving", "infra")


def _imported_cdk_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "aws_cdk":
                modules.add("aws_cdk")
                # `from aws_cdk import aws_s3 as s3` imports a module; `import App` a class
                modules |= {f"aws_cdk.{a.name}" for a in node.names if a.name[0].islower()}
            elif node.module.startswith("aws_cdk."):
                modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules |= {a.name for a in node.names if a.name.split(".")[0] == "aws_cdk"}
    return modules


def _followed_cdk_modules() -> tuple[set[str], set[str]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    followed, skipped = set(), set()
    for override in config.get("overrides", []):
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        if override.get("follow_imports") == "normal":
            followed |= set(modules)
        elif override.get("follow_imports") == "skip":
            skipped |= set(modules)
    return followed, skipped


def test_every_aws_cdk_module_the_code_imports_is_type_checked() -> None:
    imported = set()
    for package in CHECKED_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            imported |= _imported_cdk_modules(path.read_text())
    followed, skipped = _followed_cdk_modules()
    assert "aws_cdk.*" in skipped  # the reason for the list
    assert {"aws_cdk", "aws_cdk.aws_s3", "aws_cdk.aws_lambda"} <= imported  # the walk finds them
    assert imported - followed == set(), "add these to the follow_imports = normal list"


def test_the_import_walk_tells_modules_from_classes() -> None:
    source = "from aws_cdk import App, aws_ec2 as ec2\nimport aws_cdk.aws_sqs\n"
    assert _imported_cdk_modules(source) == {"aws_cdk", "aws_cdk.aws_ec2", "aws_cdk.aws_sqs"}
