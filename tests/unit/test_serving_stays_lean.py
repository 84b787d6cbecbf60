"""The serving Lambda stays free of MLflow: not in its dependencies, not in what it imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from infra.packaging import installed_closure, serving_requirements

REPO = Path(__file__).resolve().parents[2]
TRACKING = re.compile(r"^(mlflow|sagemaker-mlflow|mlflow-skinny|mlflow-tracing)$")


def test_the_serving_packages_dependencies_do_not_include_mlflow() -> None:
    closure = installed_closure(serving_requirements())
    assert {"fastapi", "mangum", "lightgbm", "numpy"} <= closure  # the walk does walk
    assert not {name for name in closure if TRACKING.match(name)}, sorted(closure)


def test_serving_entry_points_import_no_mlflow() -> None:
    # Each entry point of the serving package (the Lambda handler, the SageMaker hosting
    # server), imported in a fresh interpreter: which modules it loaded.
    script = (
        "import json, sys\n"
        "import serving.handler, serving.sagemaker_serve\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "serving.handler" in loaded and "fastapi" in loaded
    assert not [m for m in loaded if m.split(".")[0] in {"mlflow", "sagemaker_mlflow"}]
    assert "training.tracking" not in loaded


def test_what_the_local_gateway_hides_is_really_absent_from_the_serving_package() -> None:
    # The local gateway's workers hide these modules so that they import what the Lambda
    # imports; hiding one the package does ship would break serving locally for no reason.
    from local_emulation.gateway import ABSENT_FROM_THE_SERVING_PACKAGE

    distributions = {"sklearn": "scikit-learn"}
    closure = installed_closure(serving_requirements())
    hidden = {distributions.get(name, name) for name in ABSENT_FROM_THE_SERVING_PACKAGE}
    assert "lightgbm" in closure
    assert not hidden & closure, sorted(hidden & closure)
