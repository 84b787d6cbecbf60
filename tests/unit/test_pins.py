"""One set of pins: every install of Facet takes its versions from constraints.txt."""

from __future__ import annotations

import io
import re
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from infra.packaging import (
    CONSTRAINTS,
    REPO,
    canonical,
    extra_names,
    locked_versions,
    serving_requirements,
    training_requirements,
    training_source_tarball,
)

DOCKERFILES = sorted((REPO / "infra" / "images").glob("*/Dockerfile"))


def test_the_virtualenv_has_exactly_the_locked_versions() -> None:
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    mismatched = {
        name: (version, installed[name].split("+")[0])
        for name, version in locked_versions().items()
        if name in installed and installed[name].split("+")[0] != version
    }
    assert mismatched == {}
    missing = [name for name in locked_versions() if name not in installed]
    assert missing == []


def test_pyproject_ranges_admit_the_locked_versions() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = locked_versions()
    specs = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        specs += extra
    for spec in specs:
        requirement = Requirement(spec)
        version = locked[canonical(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (spec, version)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[d.parent.name for d in DOCKERFILES])
def test_images_install_names_only_with_the_lock(dockerfile: Path) -> None:
    text = dockerfile.read_text().replace("\\\n", " ")
    (install,) = [line for line in text.splitlines() if "pip install" in line]
    assert "COPY constraints.txt /tmp/constraints.txt" in text
    assert "-c /tmp/constraints.txt" in install
    names = re.split(r"\s+", install.split("-c /tmp/constraints.txt", 1)[1].split("&&")[0].strip())
    assert not [n for n in names if re.search(r"[<>=!~]", n)], names  # versions: the lock's only
    assert [n for n in names if canonical(n) not in locked_versions()] == []
    if dockerfile.parent.name == "serving":
        assert {canonical(n) for n in serving_requirements()} <= {canonical(n) for n in names}
    else:
        allowed = {canonical(n) for n in [*extra_names(""), *extra_names("training")]}
        assert {canonical(n) for n in names} <= allowed


def test_the_training_job_installs_the_locked_versions() -> None:
    with tarfile.open(fileobj=io.BytesIO(training_source_tarball())) as archive:
        member = archive.extractfile("requirements.txt")
        assert member is not None
        shipped = member.read().decode()
    assert shipped == training_requirements()
    locked = locked_versions()
    for line in shipped.splitlines():
        name, version = line.split("==")
        assert locked[canonical(name)] == version


def test_the_lock_is_generated_not_edited() -> None:
    text = CONSTRAINTS.read_text()
    assert text.startswith("# Exact versions for every install of Facet")
    pins = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.]+", pin) for pin in pins), pins
    assert pins == sorted(pins, key=str.lower)
