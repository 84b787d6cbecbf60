"""Build the deployables' code packages: Lambda zips and the training source tarball.

The same package lists (contracts.names) drive the CDK assets, so local functions run the code a
deployment would ship. Third-party dependencies are not bundled here: locally they come from
this virtualenv; in the cloud from the Lambda layer and the training image.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from contracts.names import TRAINING_CODE_PACKAGES, TRAINING_ENTRY_SCRIPT

REPO: Final = Path(__file__).resolve().parents[1]
_SKIPPED: Final = ("__pycache__", ".pyc")
TRAINING_REQUIREMENTS: Final = "\n".join(
    [
        "numpy>=2.0,<3",
        "pandas>=2.2,<4",
        "pyarrow>=16",
        "scikit-learn==1.9.1",
        "lightgbm==4.7.0",
        "pydantic>=2.7,<3",
        "pydantic-settings>=2.3,<3",
        "",
    ]
)
TRAINING_ENTRY: Final = (
    '"""SageMaker framework-container entry point (sagemaker_program)."""\n'
    "import sys\n\n"
    "from training.sagemaker_entry import main\n\n"
    'if __name__ == "__main__":\n'
    "    sys.exit(main())\n"
)


def _source_files(packages: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*")):
            if path.is_file() and not any(part in str(path) for part in _SKIPPED):
                files.append(path)
    return files


def lambda_zip(packages: Iterable[str]) -> bytes:
    """A deployment zip with the packages at its root, as Lambda's /var/task expects."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _source_files(packages):
            info = zipfile.ZipInfo(
                path.relative_to(REPO).as_posix(), date_time=(2020, 1, 1, 0, 0, 0)
            )
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def training_source_tarball() -> bytes:
    """sourcedir.tar.gz for a SageMaker framework container: entry, packages, requirements."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in _source_files(TRAINING_CODE_PACKAGES):
            archive.add(path, arcname=path.relative_to(REPO).as_posix())
        for name, text in (
            (TRAINING_ENTRY_SCRIPT, TRAINING_ENTRY),
            ("requirements.txt", TRAINING_REQUIREMENTS),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


SERVING_REQUIREMENTS: Final = (
    "fastapi>=0.115,<1",
    "mangum==0.22.0",
    "pydantic>=2.7,<3",
    "pydantic-settings>=2.3,<3",
    "numpy>=2.0,<3",
    "lightgbm==4.7.0",
    "python-multipart>=0.0.9",
    "fastapi-swagger==0.4.64",
)
LAMBDA_PYTHON: Final = "3.12"
LAMBDA_PLATFORM: Final = "manylinux2014_x86_64"
# lightgbm links libgomp, which the Lambda runtime lacks; scikit-learn's manylinux wheel carries a
# portable copy (glibc >= 2.17). Lambda puts /var/task/lib on LD_LIBRARY_PATH.
LIBGOMP_SOURCE: Final = "scikit-learn==1.9.1"
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
        *SERVING_REQUIREMENTS,
    )
    with tempfile.TemporaryDirectory() as wheels:
        _pip("download", "--quiet", "--no-deps", "-d", wheels, *_platform_flags(), LIBGOMP_SOURCE)
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
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


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


def refresh_code(target: Path) -> None:
    """Replace the package's own code with the working tree's (compiled), keeping dependencies."""
    import shutil

    from contracts.names import SERVING_CODE_PACKAGES

    for package in SERVING_CODE_PACKAGES:
        shutil.rmtree(target / package, ignore_errors=True)
        shutil.copytree(
            REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        byte_compile(target / package)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build deployable code packages under build/.")
    parser.add_argument("--out", type=Path, default=REPO / "build")
    parser.add_argument(
        "--code-only",
        action="store_true",
        help="Keep the serving package's dependencies if present; refresh code and tarballs.",
    )
    args = parser.parse_args()
    serving = args.out / "lambda" / "serving"
    if args.code_only and (serving / "fastapi").exists():
        refresh_code(serving)
        size = sum(p.stat().st_size for p in serving.rglob("*") if p.is_file())
    else:
        size = build_serving_package(serving)
    (args.out / "training-source.tar.gz").write_bytes(training_source_tarball())
    (args.out / "lambda").mkdir(parents=True, exist_ok=True)
    print(
        f"serving Lambda package: {size / 1e6:.1f} MB unzipped at {args.out / 'lambda' / 'serving'}"
    )
    print(f"training source: {args.out / 'training-source.tar.gz'}")


if __name__ == "__main__":
    main()
