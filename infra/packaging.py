"""Build the deployables' code packages: the serving Lambda package, Lambda zips, the training
source tarball. `cdk synth` runs it (infra.assets); the local emulation uses the same zips.

Versions come from one lock, constraints.txt (scripts/lock.py): the serving package and the
training job's requirements.txt install exactly what the local virtualenv and the images do.
Which packages make each set is read from pyproject.toml's extras, not restated here.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import re
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from contracts.names import TRAINING_CODE_PACKAGES, TRAINING_ENTRY_SCRIPT

REPO: Final = Path(__file__).resolve().parents[1]
_SKIPPED: Final = ("__pycache__", ".pyc")
CONSTRAINTS: Final = REPO / "constraints.txt"
PYPROJECT: Final = REPO / "pyproject.toml"
# What the Lambda runtime provides itself: never shipped in the package.
LAMBDA_PROVIDED: Final = frozenset({"boto3"})
_NAME: Final = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(names: Iterable[str]) -> set[str]:
    """The distributions and everything they require (extras not taken), as installed here;
    canonical names."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    found: set[str] = set()
    pending = [canonical(name) for name in names]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        found.add(name)
        for text in requires:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonical(requirement.name))
    return found


def locked_versions() -> dict[str, str]:
    """{canonical name: exact version} from constraints.txt."""
    versions = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            versions[canonical(name)] = version.strip()
    return versions


def extra_names(extra: str) -> list[str]:
    """The package names of one of pyproject.toml's dependency sets ("" = the core set)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    specs = project["dependencies"] if not extra else project["optional-dependencies"][extra]
    return [match.group(1) for spec in specs if (match := _NAME.match(spec))]


def pinned(names: Iterable[str]) -> list[str]:
    """`name==version` for each name, from the lock (a name missing from it is an error)."""
    versions = locked_versions()
    names = list(names)
    missing = [n for n in names if canonical(n) not in versions]
    if missing:
        raise KeyError(f"not in constraints.txt: {', '.join(missing)} (run scripts/lock.py)")
    return [f"{n}=={versions[canonical(n)]}" for n in names]


def serving_requirements() -> list[str]:
    """The serving Lambda package's dependencies: the core set and the serving set."""
    names = dict.fromkeys([*extra_names(""), *extra_names("serving")])
    return [n for n in names if canonical(n) not in LAMBDA_PROVIDED]


def serving_distributions() -> list[str]:
    """What the serving function has in AWS: its package's dependencies and the runtime's own."""
    return [*serving_requirements(), *sorted(LAMBDA_PROVIDED)]


def training_requirements() -> str:
    """requirements.txt of the training job: the training set and the core set, pinned."""
    names = dict.fromkeys([*extra_names(""), *extra_names("training")])
    return "\n".join(pinned(n for n in names if canonical(n) not in {"typer", "boto3"})) + "\n"


# The job's modules are imported under the guard, so that running this script again in a child
# process (as multiprocessing's spawn does, as __mp_main__) imports none of them.
TRAINING_ENTRY: Final = (
    '"""SageMaker framework-container entry point (sagemaker_program)."""\n'
    "import sys\n\n"
    'if __name__ == "__main__":\n'
    "    from training.sagemaker_entry import main\n\n"
    "    sys.exit(main())\n"
)


def _source_files(packages: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*")):
            if path.is_file() and not any(part in str(path) for part in _SKIPPED):
                files.append(path)
    return files


PIPELINE_DOCKERFILE: Final = REPO / "infra" / "images" / "pipeline" / "Dockerfile"
# The emulator runs a function from a zip of its code, with this virtualenv's packages; this file
# in the zip lists the distributions the function has in AWS (its image's or its package's), and
# the emulator's Lambda runtime lets the function import only those.
LOCAL_DISTRIBUTIONS_FILE: Final = "facet-local-distributions.txt"
_PIP_OPTIONS_WITH_VALUE: Final = frozenset(
    {"-c", "--constraint", "-r", "--requirement", "-i", "--index-url", "--extra-index-url"}
)


def image_distributions(dockerfile: Path = PIPELINE_DOCKERFILE) -> list[str]:
    """What a Lambda image's Dockerfile installs with pip, and what its base image provides."""
    text = dockerfile.read_text().replace("\\\n", " ")
    names: list[str] = []
    for command in re.findall(r"pip install ([^&\n]*)", text):
        words = iter(command.split())
        for word in words:
            if word in _PIP_OPTIONS_WITH_VALUE:
                next(words, None)
            elif not word.startswith("-"):
                names.append(word)
    if "public.ecr.aws/lambda/python" in text:
        names += sorted(LAMBDA_PROVIDED)
    return names


def lambda_zip(packages: Iterable[str], distributions: Iterable[str] | None = None) -> bytes:
    """A deployment zip with the packages at its root, as Lambda's /var/task expects; with
    `distributions`, the LOCAL_DISTRIBUTIONS_FILE naming them (for the emulator)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if distributions is not None:
            info = zipfile.ZipInfo(LOCAL_DISTRIBUTIONS_FILE, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, "\n".join(distributions) + "\n", zipfile.ZIP_DEFLATED)
        for path in _source_files(packages):
            info = zipfile.ZipInfo(
                path.relative_to(REPO).as_posix(), date_time=(2020, 1, 1, 0, 0, 0)
            )
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


# 2020-01-01T00:00:00Z, as the Lambda zips' entries: the archive depends on file contents only.
_FIXED_MTIME: Final = 1_577_836_800


def _tar_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), _FIXED_MTIME, 0o644
    return info, io.BytesIO(data)


def training_source_tarball() -> bytes:
    """sourcedir.tar.gz for a SageMaker framework container: entry, packages, requirements.

    Byte-for-byte the same for the same sources (fixed entry times and owners, gzip header time
    0), so its asset hash, and with it the deployed training step, change only when code does."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in _source_files(TRAINING_CODE_PACKAGES):
            archive.addfile(*_tar_entry(path.relative_to(REPO).as_posix(), path.read_bytes()))
        for name, text in (
            (TRAINING_ENTRY_SCRIPT, TRAINING_ENTRY),
            ("requirements.txt", training_requirements()),
        ):
            archive.addfile(*_tar_entry(name, text.encode()))
    return buffer.getvalue()


LAMBDA_PYTHON: Final = "3.12"
LAMBDA_PLATFORM: Final = "manylinux2014_x86_64"
# lightgbm links libgomp, which the Lambda runtime lacks; scikit-learn's manylinux wheel carries a
# portable copy (glibc >= 2.17). Lambda puts /var/task/lib on LD_LIBRARY_PATH.
LIBGOMP_SOURCE: Final = "scikit-learn"
_PRUNED_DIRS: Final = ("tests",)


def _pip(*arguments: str) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments], check=True
    )


def _platform_flags() -> list[str]:
    return [
        "--platform",
        LAMBDA_PLATFORM,
        "--platform",
        "manylinux_2_28_x86_64",
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON,
        "--only-binary=:all:",
    ]


def build_serving_package(target: Path) -> int:
    """The serving Lambda's /var/task for python3.12 on x86_64, built without Docker: pip's
    platform wheels, the code packages, and libgomp. Returns its unzipped size in bytes."""
    import shutil
    import tempfile

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    _pip(
        "install",
        "--quiet",
        "--no-compile",
        "--target",
        str(target),
        *_platform_flags(),
        "--constraint",
        str(CONSTRAINTS),
        *serving_requirements(),
    )
    with tempfile.TemporaryDirectory() as wheels:
        _pip(
            "download",
            "--quiet",
            "--no-deps",
            "-d",
            wheels,
            *_platform_flags(),
            *pinned([LIBGOMP_SOURCE]),
        )
        wheel = next(Path(wheels).glob("scikit_learn-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(
                n
                for n in archive.namelist()
                if "/libgomp" in n and n.startswith("scikit_learn.libs/")
            )
            (target / "lib").mkdir()
            (target / "lib" / "libgomp.so.1").write_bytes(archive.read(member))
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _PRUNED_DIRS and "site-packages" not in path.parts:
            shutil.rmtree(path, ignore_errors=True)
    byte_compile(target)
    refresh_code(target)
    (target / DEPENDENCIES_STAMP).write_text(dependencies_stamp())
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


DEPENDENCIES_STAMP: Final = ".dependencies.sha256"


def dependencies_stamp() -> str:
    """What the package's dependencies were built from: a change means a rebuild."""
    import hashlib

    material = "\n".join([*pinned(serving_requirements()), LAMBDA_PYTHON, LAMBDA_PLATFORM])
    return hashlib.sha256(material.encode()).hexdigest()


def dependencies_current(target: Path) -> bool:
    stamp = target / DEPENDENCIES_STAMP
    return stamp.exists() and stamp.read_text() == dependencies_stamp()


def lambda_python() -> str | None:
    """A python3.12 (the Lambda runtime's version) to byte-compile the package with, if any."""
    import shutil
    import subprocess

    versions = Path.home() / ".pyenv" / "versions"
    pattern = f"{LAMBDA_PYTHON}*/bin/python{LAMBDA_PYTHON}"
    candidates = [str(path) for path in sorted(versions.glob(pattern), reverse=True)]
    candidates += [found for found in [shutil.which(f"python{LAMBDA_PYTHON}")] if found]
    for candidate in candidates:
        probe = subprocess.run([candidate, "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def byte_compile(target: Path) -> bool:
    """Ship .pyc files: /var/task is read-only, so Lambda would otherwise compile every module on
    every cold start. Hash-based (unchecked) so the zip's file times do not matter."""
    import subprocess

    interpreter = lambda_python()
    if interpreter is None:
        print(f"warning: no python{LAMBDA_PYTHON} found; the package ships without .pyc files")
        return False
    subprocess.run(
        [
            interpreter,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(target),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return True


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def refresh_code(target: Path) -> None:
    """Replace the package's own code with the working tree's (compiled), keeping dependencies.

    A package whose source is unchanged is left alone, so a synth running beside another (test
    workers in parallel) never sees its asset directory rewritten under it."""
    import shutil

    from contracts.names import SERVING_CODE_PACKAGES

    for package in SERVING_CODE_PACKAGES:
        copy = target / package
        if copy.is_dir() and _tree_digest(copy) == _tree_digest(REPO / package):
            continue
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(REPO / package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        byte_compile(copy)


def _write_if_changed(path: Path, content: bytes) -> None:
    """Atomically, and only when different: readers never see a half-written file."""
    if path.exists() and path.read_bytes() == content:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(content)
    partial.replace(path)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build deployable code packages under build/.")
    parser.add_argument("--out", type=Path, default=REPO / "build")
    parser.add_argument(
        "--code-only",
        action="store_true",
        help="Keep the serving package's dependencies if they are current (their stamp matches "
        "constraints.txt); refresh code and tarballs.",
    )
    args = parser.parse_args()
    serving = args.out / "lambda" / "serving"
    args.out.mkdir(parents=True, exist_ok=True)
    # One build at a time (parallel test workers each synthesize): the others wait, then find
    # everything current and change nothing.
    with (args.out / ".packaging.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if args.code_only and dependencies_current(serving):
            refresh_code(serving)
            size = sum(p.stat().st_size for p in serving.rglob("*") if p.is_file())
        else:
            size = build_serving_package(serving)
        _write_if_changed(args.out / "training-source.tar.gz", training_source_tarball())
    print(
        f"serving Lambda package: {size / 1e6:.1f} MB unzipped at {args.out / 'lambda' / 'serving'}"
    )
    print(f"training source: {args.out / 'training-source.tar.gz'}")


if __name__ == "__main__":
    main()
