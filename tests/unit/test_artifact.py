"""The artifact refuses to load when altered, incomplete or written for another schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.predict import METADATA_FILE, ArtifactError, PriceModel, load_model


@pytest.fixture
def artifact(default_model: tuple[PriceModel, Path], tmp_path: Path) -> Path:
    _, directory = default_model
    copy = tmp_path / "model"
    shutil.copytree(directory, copy)
    return copy


def test_artifact_altered_weights_refused(artifact: Path) -> None:
    with (artifact / "model.txt").open("a") as handle:
        handle.write("\n")
    with pytest.raises(ArtifactError, match=r"model\.txt does not match its recorded sha256"):
        load_model(artifact)


def test_artifact_other_schema_version_refused(artifact: Path) -> None:
    metadata = json.loads((artifact / METADATA_FILE).read_text())
    metadata["schema_version"] = "0"
    (artifact / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ArtifactError, match="schema version 0"):
        load_model(artifact)


def test_artifact_missing_metadata_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a Facet model artifact"):
        load_model(tmp_path)


def test_lightgbm_artifact_loads_without_pandas_sklearn_or_torch(artifact: Path) -> None:
    # The heavy packages are installed here, so make them unimportable, as in the Lambda package.
    # (scipy stays: lightgbm imports scipy.sparse unconditionally.)
    code = (
        "import sys\n"
        "class Absent:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'pandas', 'sklearn', 'torch'}:\n"
        "            raise ImportError(f'{name} is not in the serving package')\n"
        "sys.meta_path.insert(0, Absent())\n"
        "from pathlib import Path\n"
        "from training.predict import load_model\n"
        f"model = load_model(Path({str(artifact)!r}))\n"
        "from contracts.schema import example_diamond\n"
        "row = {name: [value] for name, value in example_diamond().items()}\n"
        "print(float(model.predict(row)[0]))\n"
        "heavy = sorted(m for m in ('pandas', 'sklearn', 'torch') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    price, heavy = completed.stdout.splitlines()
    assert float(price) > 0
    assert heavy == "[]"
