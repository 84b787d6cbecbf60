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
