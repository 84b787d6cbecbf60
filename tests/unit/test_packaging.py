"""Refreshing the serving package's code is a no-op when nothing changed, so a synth running
beside another (parallel test workers) never sees its asset directory rewritten under it; the
training source archive is the same bytes for the same code."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from contracts.names import SERVING_CODE_PACKAGES
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
