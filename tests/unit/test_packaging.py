"""Refreshing the serving package's code is a no-op when nothing changed, so a synth running
beside another (parallel test workers) never sees its asset directory rewritten under it."""

from __future__ import annotations

from pathlib import Path

from contracts.names import SERVING_CODE_PACKAGES
from infra.packaging import REPO, refresh_code


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
