"""The diagrams render, and show only services the CDK app really declares."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.definition import raw_definition
from tests.infra.conftest import Synthesized

REPO = Path(__file__).resolve().parents[2]


def load_diagrams() -> ModuleType:
    # The repo's diagrams/ folder shares its name with the `diagrams` package: load by path.
    spec = importlib.util.spec_from_file_location(
        "facet_diagrams", REPO / "diagrams" / "facet_diagrams.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["facet_diagrams"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, dict[str, Path]]:
    module = load_diagrams()
    return module, module.render_all(tmp_path_factory.mktemp("diagrams"))


def test_every_diagram_renders_to_a_non_empty_png(
    rendered: tuple[ModuleType, dict[str, Path]],
) -> None:
    _, paths = rendered
    assert set(paths) == {
        "system_overview",
        "training_pipeline",
        "serving_path",
        "local_emulation",
        "delivery",
    }
    for path in paths.values():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, path


def test_committed_pngs_exist_for_the_docs(rendered: tuple[ModuleType, dict[str, Path]]) -> None:
    _, paths = rendered
    for name in paths:
        assert (REPO / "diagrams" / f"{name}.png").stat().st_size > 20_000


def test_diagrams_show_only_declared_services(
    rendered: tuple[ModuleType, dict[str, Path]], synthesized: Synthesized
) -> None:
    module, _ = rendered
    declared = {
        resource["Type"]
        for stack in synthesized.stacks
        for resource in synthesized.raw(stack)["Resources"].values()
    }
    with_endpoint = declared | {
        "AWS::SageMaker::Endpoint",
        "AWS::SageMaker::Model",
    }  # behind servingEndpoint=true
    from aws_cdk import App

    from infra.delivery import DeliveryStack

    delivery_app = App()
    delivery_stack = DeliveryStack(delivery_app, "FacetDelivery", repository="example-org/facet")
    delivery_types = {
        resource["Type"]
        for resource in delivery_app.synth()
        .get_stack_artifact(delivery_stack.artifact_id)
        .template["Resources"]
        .values()
    } | {"AWS::CloudFormation::Stack"}  # what CloudFormation makes of each stage's stacks
    for diagram, shown in module.RECORDER.shown.items():
        for component in shown:
            if component.startswith("local:"):
                assert diagram == "local_emulation", (diagram, component)
            elif component.startswith(("delivery:", "external:")):
                assert diagram == "delivery", (diagram, component)
                if component.startswith("delivery:"):
                    assert component.removeprefix("delivery:") in delivery_types, component
            elif component.startswith("asl:"):
                assert component.removeprefix("asl:") in raw_definition(), (diagram, component)
            else:
                assert component in with_endpoint, (diagram, component)
