"""The artifact refuses to load when altered, incomplete or written for another schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
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


def _unpack_and_load(tarball: bytes, target: str, start_at: float) -> str:
    import time

    from training.artifact_store import unpack_once

    time.sleep(max(0.0, start_at - time.time()))  # all at once, as workers starting together
    load_model(unpack_once(tarball, Path(target)))
    return "loaded"


def test_processes_unpacking_one_model_at_once_never_read_each_others_halves(
    artifact: Path, tmp_path: Path
) -> None:
    """Gateway workers and Lambda environments share the model cache: a worker that found a
    half-written directory used to report the model as altered (a sha256 mismatch)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from training.artifact_store import pack

    tarball, target = pack(artifact), tmp_path / "cache" / "digest"
    # Not fork: a forked child of a process that has run LightGBM's OpenMP can deadlock. A fork
    # server has run nothing; it imports this module (and through it the loader) once, so its
    # children start in milliseconds instead of each spawned child importing them (~1 s each).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "training.artifact_store", "lightgbm"])
    with ProcessPoolExecutor(max_workers=8, mp_context=context) as pool:
        start_at = time.time() + 3  # after every child has started
        results = list(
            pool.map(_unpack_and_load, [tarball] * 16, [str(target)] * 16, [start_at] * 16)
        )
    assert results == ["loaded"] * 16
    assert sorted(p.name for p in target.parent.iterdir()) == ["digest"]  # no staging left


def test_a_stale_partial_directory_is_replaced(artifact: Path, tmp_path: Path) -> None:
    from training.artifact_store import pack, unpack_once

    target = tmp_path / "cache" / "digest"
    target.mkdir(parents=True)
    (target / "model.txt").write_text("half")
    load_model(unpack_once(pack(artifact), target))
