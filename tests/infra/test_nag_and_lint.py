"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized app; the other synthesis variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from contracts.names import StageNames
from infra.app import compliance_checks
from tests.infra.conftest import Synthesized, synthesize


def violations(outdir: Path) -> list[dict[str, object]]:
    report = json.loads((outdir / "validation-report.json").read_text())
    return [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]


def test_cdk_nag_aws_solutions_and_serverless_pass_with_every_acknowledgment_reasoned(
    synthesized: Synthesized,
) -> None:
    assert violations(synthesized.outdir) == []
    from infra.training_pipeline import REASONS

    assert all(len(reason) > 40 for reason in REASONS.values())


@pytest.mark.parametrize("pack", ["AwsSolutions", "Serverless"])
def test_cdk_nag_really_runs_both_packs_here(tmp_path: Path, pack: str) -> None:
    # GIVEN an app with a careless bucket and queue and the plugins the Facet app uses
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Careless")
    s3.Bucket(stack, "Open")
    sqs.Queue(stack, "NoRedrive")
    Validations.of(app).add_plugins(*compliance_checks(app))
    # WHEN it is synthesized, THEN each pack reports it (so the clean report above means something)
    with pytest.raises(Exception, match=pack):
        app.synth()


def test_cfn_lint_passes_on_every_template(synthesized: Synthesized) -> None:
    templates = sorted(str(path) for path in synthesized.outdir.glob("*.template.json"))
    assert len(templates) == 5
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--ignore-checks",
            "W3005",
            "--",
            *templates,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_environment_agnostic_synth_maps_the_training_image_per_region(tmp_path: Path) -> None:
    agnostic = synthesize(tmp_path, account="", region="")
    template = agnostic.raw("FacetTrainingPipeline")
    mapping = template["Mappings"]["SklearnTrainingImage"]
    assert (
        mapping["us-east-1"]["uri"]
        == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    )
    assert len(mapping) > 20
    uri = next(iter(mapping.values()))["uri"]
    assert uri.endswith("/sagemaker-scikit-learn:1.4-2-py312-cpu-py3")
    assert violations(tmp_path) == []


def test_serving_endpoint_alternative_behind_a_context_flag(
    synthesized_with_endpoint: Synthesized,
) -> None:
    with_endpoint = synthesized_with_endpoint
    template = with_endpoint.raw("FacetServing")["Resources"]
    endpoints = [
        r["Properties"] for r in template.values() if r["Type"] == "AWS::SageMaker::Endpoint"
    ]
    configs = [
        r["Properties"] for r in template.values() if r["Type"] == "AWS::SageMaker::EndpointConfig"
    ]
    assert endpoints[0]["EndpointName"] == StageNames("dev").sagemaker_endpoint
    assert configs[0]["ProductionVariants"][0]["ServerlessConfig"] == {
        "MaxConcurrency": 5,
        "MemorySizeInMB": 2048,
    }
    assert violations(with_endpoint.outdir) == []


def test_the_serving_lambda_package_holds_the_locked_versions(synthesized: Synthesized) -> None:
    from infra.assets import SERVING_PACKAGE
    from infra.packaging import canonical, locked_versions, serving_requirements

    shipped = {}
    for info in SERVING_PACKAGE.glob("*.dist-info"):
        name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
        shipped[canonical(name)] = version
    locked = locked_versions()
    for name in serving_requirements():
        assert shipped[canonical(name)] == locked[canonical(name)], name
    assert "boto3" not in shipped  # the Lambda runtime provides it
