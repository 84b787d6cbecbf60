"""The diagrams render, and show only services the CDK app really declares."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipeline.definition import raw_definition, state_names
from tests.infra.conftest import NAME_PROPERTIES, Synthesized, literal_text

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
    rendered: tuple[ModuleType, dict[str, Path]],
    synthesized_with_endpoint: Synthesized,
    delivery_template: dict[str, Any],
) -> None:
    module, _ = rendered
    synthesized = synthesized_with_endpoint
    with_endpoint = {
        resource["Type"]
        for stack in synthesized.stacks
        for resource in synthesized.raw(stack)["Resources"].values()
    }
    delivery_types = {resource["Type"] for resource in delivery_template["Resources"].values()}
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
            elif component.startswith("asset:"):
                assert diagram == "system_overview", (diagram, component)
            else:
                assert component in with_endpoint, (diagram, component)


# What ties two resources by name: their physical names, and an alarm's custom metric namespace
# (tied to the roles allowed to put metrics in it).
LINKING_PROPERTIES = (*NAME_PROPERTIES, "Namespace")
# Resources that belong to the one they refer to (an API's methods, a function's alias and its
# role's policies): an integration of theirs is their owner's.
CHILD_TYPES = {
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Stage",
    "AWS::Lambda::Alias",
    "AWS::Lambda::Version",
    "AWS::IAM::Policy",
    "AWS::SageMaker::EndpointConfig",
}


class Templates:
    """The synthesized resources of every stack, with what each refers to (Ref, GetAtt, and
    ImportValue resolved to the exporting resource) and the strings it holds."""

    def __init__(
        self, synthesized: Synthesized, extra: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        exports: dict[str, str] = {}
        templates = {stack: synthesized.raw(stack) for stack in synthesized.stacks}
        for stack, template in (templates | (extra or {})).items():
            for logical_id, resource in template["Resources"].items():
                self.resources[f"{stack}/{logical_id}"] = resource
            for output in template.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if name:
                    exports[name] = f"{stack}/{self._referred(output['Value']) or ''}"
        self.refers: dict[str, set[str]] = {}
        self.strings: dict[str, str] = {}
        for key, resource in self.resources.items():
            stack = key.split("/")[0]
            found: set[str] = set()
            texts: list[str] = []
            # an alias's UpdatePolicy names the CodeDeploy group that shifts it
            for part in ("Properties", "UpdatePolicy"):
                self._walk(resource.get(part, {}), stack, exports, found, texts)
            self.refers[key] = found
            self.strings[key] = "\n".join(texts)

    @staticmethod
    def _referred(value: Any) -> str | None:
        """The logical id a Ref or Fn::GetAtt names."""
        if isinstance(value, dict) and "Ref" in value:
            return str(value["Ref"])
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
        return None

    def _walk(
        self, value: Any, stack: str, exports: dict[str, str], found: set[str], texts: list[str]
    ) -> None:
        if isinstance(value, dict):
            if "Fn::ImportValue" in value and value["Fn::ImportValue"] in exports:
                found.add(exports[value["Fn::ImportValue"]])
            referred = self._referred(value)
            if referred:
                found.add(f"{stack}/{referred}")
            joined = literal_text(value)
            if joined is not None:
                texts.append(joined)
            for item in value.values():
                self._walk(item, stack, exports, found, texts)
        elif isinstance(value, list):
            for item in value:
                self._walk(item, stack, exports, found, texts)
        elif isinstance(value, str):
            texts.append(value)

    def physical_names(self, key: str) -> list[str]:
        properties = self.resources[key].get("Properties", {})
        names = [literal_text(properties.get(name)) for name in LINKING_PROPERTIES]
        return [n for n in names if n and len(n) > 6 and not n.startswith("AWS/")]

    def matching(self, shown: Any) -> list[str]:
        kind = shown.represents.removeprefix("asl:").removeprefix("delivery:")
        alternatives = shown.match.split("|") if shown.match else [""]
        found = []
        for key, resource in self.resources.items():
            if not kind.startswith("arn:") and resource["Type"] != kind:
                continue
            texts = [key, *self.physical_names(key)]
            if any(a in text for a in alternatives for text in texts):
                found.append(key)
        return found

    def members(self, key: str) -> set[str]:
        """The resource, the role it runs as, and the children that refer to either."""
        group = {key} | {
            r for r in self.refers[key] if self.resources.get(r, {}).get("Type") == "AWS::IAM::Role"
        }
        for _ in range(3):
            roles = {m for m in group if self.resources[m]["Type"] == "AWS::IAM::Role"}
            group |= {
                other
                for other, refers in self.refers.items()
                if self.resources[other]["Type"] in CHILD_TYPES
                # a policy belongs to the role it is attached to, not to what it grants
                and refers
                & (roles if self.resources[other]["Type"] == "AWS::IAM::Policy" else group)
            }
        return group

    def connected(self, source: Any, target: Any) -> bool:
        """Whether any resource the source stands for refers to one the target stands for (or
        the other way round), by reference or by physical name."""
        if source.represents.startswith("asset:") or target.represents.startswith("asset:"):
            asset, other = (
                (source, target)
                if source.represents.startswith("asset:")
                else (
                    target,
                    source,
                )
            )
            return any(
                asset.match in self.strings[m]
                for key in self.matching(other)
                for m in self.members(key)
            )
        for a in self.matching(source):
            for b in self.matching(target):
                left, right = self.members(a), self.members(b)
                if any(self.refers[m] & right for m in left) or any(
                    self.refers[m] & left for m in right
                ):
                    return True
                names_a = [n for m in left for n in self.physical_names(m)]
                names_b = [n for m in right for n in self.physical_names(m)]
                if any(n in self.strings[m] for n in names_b for m in left) or any(
                    n in self.strings[m] for n in names_a for m in right
                ):
                    return True
        return False


@pytest.fixture(scope="module")
def delivery_template() -> dict[str, Any]:
    from aws_cdk import App

    from infra.delivery import DeliveryStack

    app = App()
    stack = DeliveryStack(app, "FacetDelivery", repository="example-org/facet")
    template: dict[str, Any] = app.synth().get_stack_artifact(stack.artifact_id).template
    return template


@pytest.fixture(scope="module")
def templates(
    synthesized_with_endpoint: Synthesized, delivery_template: dict[str, Any]
) -> Templates:
    # the app as synthesized with the endpoint alternative on, which the serving picture shows,
    # and FacetDelivery, which the delivery picture shows beside the (dev) stage's stacks
    return Templates(synthesized_with_endpoint, {"FacetDelivery": delivery_template})


def template_edges(module: ModuleType, diagram: str) -> list[tuple[Any, Any, str]]:
    """The diagram's edges a template shows: all but those between two pipeline states."""
    return [
        (source, target, label)
        for source, target, label in module.RECORDER.edges[diagram]
        if not (source.states and target.states)
    ]


@pytest.mark.parametrize(
    ("diagram", "at_least"),
    [
        ("system_overview", 20),
        ("training_pipeline", 8),
        ("serving_path", 15),
        ("delivery", 4),
    ],
)
def test_every_edge_of_an_aws_diagram_is_a_real_integration(
    rendered: tuple[ModuleType, dict[str, Path]],
    templates: Templates,
    diagram: str,
    at_least: int,
) -> None:
    module, _ = rendered
    edges = template_edges(module, diagram)
    assert len(edges) >= at_least
    for source, target, label in edges:
        assert templates.matching(source) or source.represents.startswith("asset:"), source
        assert templates.matching(target) or target.represents.startswith("asset:"), target
        assert templates.connected(source, target), (source, target, label)


def asl_transitions() -> tuple[str, dict[str, set[str]], dict[str, str]]:
    """The training pipeline's start state, each state's successors (Next, Default, Choices and
    Catch), and each state's type."""
    document = json.loads(raw_definition())
    transitions = {
        name: {
            target
            for target in [
                state.get("Next"),
                state.get("Default"),
                *(choice.get("Next") for choice in state.get("Choices", [])),
                *(catch.get("Next") for catch in state.get("Catch", [])),
            ]
            if target
        }
        for name, state in document["States"].items()
    }
    types = {name: state["Type"] for name, state in document["States"].items()}
    return document["StartAt"], transitions, types


def leads_to(transitions: dict[str, set[str]], drawn: set[str], source: Any, target: Any) -> bool:
    """Whether a state of `source` reaches one of `target` through states no node draws (the
    Choice and Pass states between tasks) or through `source`'s own states."""
    frontier = [after for state in source.states for after in transitions[state]]
    seen: set[str] = set()
    while frontier:
        state = frontier.pop()
        if state in target.states:
            return True
        if state in seen or (state in drawn and state not in source.states):
            continue
        seen.add(state)
        frontier.extend(transitions[state])
    return False


def asl_mismatches(edges: list[tuple[Any, Any, str]]) -> tuple[list[str], list[str]]:
    """Edges between states that the definition does not make, and transitions it makes that
    no edge draws."""
    _, transitions, _ = asl_transitions()
    nodes = {shown for edge in edges for shown in edge[:2] if shown.states}
    drawn = {state for shown in nodes for state in shown.states}
    state_edges = {(s, t) for s, t, _ in edges if s.states and t.states}
    invented = [
        f"{s.states[0]} -> {t.states[0]}"
        for s, t in state_edges
        if not leads_to(transitions, drawn, s, t)
    ]
    missing = [
        f"{s.states[0]} -> {t.states[0]}"
        for s in nodes
        for t in nodes
        if s != t and leads_to(transitions, drawn, s, t) and (s, t) not in state_edges
    ]
    return sorted(invented), sorted(missing)


def test_the_training_pipeline_draws_exactly_the_definitions_transitions(
    rendered: tuple[ModuleType, dict[str, Path]],
) -> None:
    module, _ = rendered
    edges = module.RECORDER.edges["training_pipeline"]
    start, _, types = asl_transitions()
    drawn = {state for edge in edges for shown in edge[:2] for state in shown.states}
    # every state that does work or ends a run is drawn; only Choice and Pass states between
    # tasks are folded into the edges
    assert {s for s, kind in types.items() if kind not in {"Choice", "Pass"}} <= drawn
    assert start in drawn
    assert asl_mismatches(edges) == ([], [])


def test_the_transition_check_finds_invented_and_missing_edges(
    rendered: tuple[ModuleType, dict[str, Path]],
) -> None:
    # GIVEN the earlier picture's faults: errors drawn from four of the tasks only, and an edge
    # the definition does not make
    module, _ = rendered
    edges = module.RECORDER.edges["training_pipeline"]
    by_state = {shown.states[0]: shown for edge in edges for shown in edge[:2] if shown.states}
    caught_by_four = [
        (s, t, label)
        for s, t, label in edges
        if not (
            t.states == ("Record failure",)
            and s.states[:1] in {("Evaluate model",), ("Register model",), ("Deploy model",)}
        )
    ]
    invented = [*edges, (by_state["Validate batch"], by_state["Evaluate model"], "")]
    # THEN the check names each
    assert asl_mismatches(caught_by_four)[1] == [
        "Deploy model -> Record failure",
        "Evaluate model -> Record failure",
        "Register model -> Record failure",
    ]
    assert asl_mismatches(invented)[0] == ["Validate batch -> Evaluate model"]


def test_the_check_rejects_edges_the_app_does_not_make(
    rendered: tuple[ModuleType, dict[str, Path]], templates: Templates
) -> None:
    # GIVEN edges the earlier system overview drew: the registry wrote the production pointer
    # (the approval rule and the deploy function do), and the pipeline's state machine fed the
    # alarm topic directly (an alarm on its failed runs does)
    module, _ = rendered
    registry = module.Shown("AWS::SageMaker::ModelPackageGroup")
    pointer = module.Shown("AWS::SSM::Parameter")
    machine = module.Shown("AWS::StepFunctions::StateMachine", "training-pipeline")
    topic = module.Shown("AWS::SNS::Topic")
    serving = module.Shown("AWS::Lambda::Function", "serving")
    training_job = module.Shown("AWS::S3::Bucket", "artifacts")
    # and the earlier serving picture's registry starting CodeDeploy (the rule and the deploy
    # function do)
    rollout = module.Shown("AWS::CodeDeploy::DeploymentGroup")
    # THEN the check refuses them, and accepts the integrations that exist
    assert not templates.connected(registry, rollout)
    assert templates.connected(module.Shown("AWS::Lambda::Function", "deploy-model"), rollout)
    assert not templates.connected(registry, pointer)
    # and the earlier delivery picture's cross-account reads of the registry, which are not built
    api = module.Shown("AWS::ApiGateway::RestApi")
    assert not templates.connected(api, registry)
    deploy_role = module.Shown("delivery:AWS::IAM::Role", "DeployDevRole")
    assert not templates.connected(deploy_role, registry)
    assert templates.connected(deploy_role, module.Shown("AWS::S3::Bucket", "data-lake"))
    assert not templates.connected(machine, topic)
    assert not templates.connected(serving, module.Shown("AWS::SageMaker::ModelPackageGroup", "x"))
    assert templates.connected(serving, training_job)


def load_sequences() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "facet_sequences", REPO / "diagrams" / "facet_sequences.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["facet_sequences"] = module
    spec.loader.exec_module(module)
    return module


def test_the_sequence_diagrams_render_and_are_committed(tmp_path: Path) -> None:
    module = load_sequences()
    paths = module.render_all(tmp_path)
    assert set(paths) == {
        "sequence_pipeline_run",
        "sequence_priced_request",
        "sequence_approval_rollback",
    }
    for name, path in paths.items():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
        assert (REPO / "diagrams" / f"{name}.png").stat().st_size > 20_000


def test_sequence_messages_name_only_real_states_and_participants() -> None:
    module = load_sequences()
    states = state_names()
    named = [s.state for s in module.PIPELINE_RUN.steps if s.state]
    assert len(named) >= 8 and set(named) <= states, set(named) - states
    for sequence in module.SEQUENCES:
        for step in sequence.steps:
            if not step.branch:
                assert {step.source, step.target} <= set(sequence.participants), step
