"""The docs stay true: every test, file and command they cite exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def references() -> list[tuple[str, str, str | None]]:
    """(doc, test file, test function or None) for every `tests/...py[::test_...]` cited."""
    found = []
    for doc in DOCS:
        for path, test in re.findall(r"(tests/[\w/]+\.py)(?:::(test_[\w*]+))?", doc.read_text()):
            found.append((doc.name, path, test or None))
    return found


@pytest.mark.parametrize(("doc", "path", "test"), references())
def test_cited_test_exists(doc: str, path: str, test: str | None) -> None:
    source = REPO / path
    assert source.exists(), f"{doc} cites {path}"
    if test:
        pattern = re.escape(test).replace(r"\*", r"\w*")
        assert re.search(rf"def {pattern}\(", source.read_text()), f"{doc} cites {path}::{test}"


def test_docs_cite_tests() -> None:
    assert len(references()) > 20


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_linked_files_exist(doc: str | Path) -> None:
    path = Path(doc)
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if target.startswith("http"):
            continue
        assert (path.parent / target).exists(), f"{path.name} links to {target}"
