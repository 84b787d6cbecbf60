"""The model-development notebook runs headless from top to bottom and saves its figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbconvert.preprocessors import ExecutePreprocessor

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "docs" / "notebooks" / "model_development.ipynb"
FIGURES = (
    "target_distribution",
    "price_per_carat_by_grade",
    "depth_consistency",
    "relationships",
    "linear_assumptions",
    "holdout_performance",
    "errors_by_carat",
    "explanations",
)


def test_notebook_is_built_from_its_source() -> None:
    from docs.notebooks.build_notebook import build  # type: ignore[import-not-found]

    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in build().cells]


@pytest.mark.slow
def test_notebook_executes_and_saves_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACET_FIGURES_DIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    ExecutePreprocessor(timeout=600, kernel_name="python3").preprocess(
        notebook, {"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == []
    for name in FIGURES:
        figure = tmp_path / f"{name}.png"
        assert figure.exists() and figure.stat().st_size > 5_000, name
