"""Refreshing the serving package's code is a no-op when nothing changed, so a synth running
beside another (parallel test workers) never sees its asset directory rewritten under it; the
training source archive is the same bytes for the same code."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from contracts.names import SERVING_CODE_PACKAGES, TRAINING_ENTRY_SCRIPT
from infra.packaging import REPO, refresh_code, training_source_tarball


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_refreshing_unchanged_code_touches_nothing(tmp_path: Path) -> None:
    refresh_code(tmp_path)
    package = SERVING_CODE_PACKAGES[0]
    assert (tmp_path / package / "__init__.py").read_bytes() == (
        REPO / package / "__init__.py"
    ).read_bytes()
    before = _snapshot(tmp_path)
    refresh_code(tmp_path)
    assert _snapshot(tmp_path) == before


def test_a_stale_copy_is_replaced(tmp_path: Path) -> None:
    refresh_code(tmp_path)
    package = SERVING_CODE_PACKAGES[0]
    stale = tmp_path / package / "__init__.py"
    stale.write_text("stale = True\n")
    refresh_code(tmp_path)
    assert stale.read_bytes() == (REPO / package / "__init__.py").read_bytes()


def test_the_training_source_tarball_depends_on_contents_only() -> None:
    # GIVEN two builds of the training source, seconds apart
    first = training_source_tarball()
    second = training_source_tarball()
    # THEN they are the same bytes: no gzip header time, no file times or owners inside, so
    # the asset hash (and the deployed training step) moves only when the code does
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # gzip MTIME
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        members = archive.getmembers()
    assert len(members) > 20
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (1_577_836_800, 0, 0, "", "")
    }


def test_the_entry_script_imported_by_a_spawned_child_imports_none_of_the_job(
    tmp_path: Path,
) -> None:
    # GIVEN the training source as SageMaker unpacks it
    with tarfile.open(fileobj=io.BytesIO(training_source_tarball())) as archive:
        archive.extractall(tmp_path, filter="data")
    # WHEN a spawned process (the tracking writer) runs the entry script as multiprocessing
    # does in a child, under the name __mp_main__
    probe = (
        "import runpy, sys; "
        f"runpy.run_path({TRAINING_ENTRY_SCRIPT!r}, run_name='__mp_main__'); "
        "print(sorted(m for m in ('pandas', 'lightgbm', 'training.sagemaker_entry') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    # THEN none of the job's modules were imported: the child pays only for what it runs
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
