"""Where the deployables' code is, as asset paths. The CDK app never imports runtime code.

`make assets` (python -m infra.packaging) builds build/; `infra.app` runs it (as a
separate process) on every synth, so a fresh clone can `npx cdk synth` directly and never ships
stale code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

from contracts.names import ASL_FILE, SCORING_ASL_FILE

REPO: Final = Path(__file__).resolve().parents[1]
BUILD: Final = REPO / "build"
ASL_PATH: Final = REPO / "pipeline" / ASL_FILE
SCORING_ASL_PATH: Final = REPO / "pipeline" / SCORING_ASL_FILE
SERVING_PACKAGE: Final = BUILD / "lambda" / "serving"
TRAINING_SOURCE: Final = BUILD / "training-source.tar.gz"
PIPELINE_IMAGE_DOCKERFILE: Final = "infra/images/pipeline/Dockerfile"
SERVING_IMAGE_DOCKERFILE: Final = "infra/images/serving/Dockerfile"
# The Docker build contexts: the repository, minus everything the images do not need.
IMAGE_CONTEXT_EXCLUDES: Final = [
    "*",
    "!contracts/**",
    "!training/**",
    "!pipeline/**",
    "!serving/**",
    "!infra/images/**",
    "!constraints.txt",
    "**/__pycache__",
]


def ensure_built() -> None:
    """Build the assets; dependencies are downloaded once (PyPI), the code is refreshed every time
    so a synth never ships stale code."""
    subprocess.run(
        [sys.executable, "-m", "infra.packaging", "--code-only"],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
