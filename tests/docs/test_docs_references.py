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


# A figure: money, or a number with a unit of time, size, share or count.
FIGURE = re.compile(
    r"(?<![\w.])(\$\s?\d[\d,.]*|\d[\d,.]*\s?(?:ms|s|min|minutes|seconds|hours|days|MB|GB|KB|%"
    r"|rows/s|req/s|stones/s|rows|stones|trees|USD|ct)(?!\w))"
)
# A source: a repository file (code, a benchmark, its JSON, a test), `make bench`, or a link.
SOURCE = re.compile(
    r"(\b[\w./-]+/[\w.-]+\.(?:py|json|md|txt|ipynb|toml|yaml|yml|csv|cfg)\b"
    r"|benchmarks/|make bench|tests/|\]\()"
)


def blocks(text: str) -> list[tuple[int, int, str]]:
    """(first line, section's heading line, text) of each paragraph, list item and table, outside
    code fences."""
    found: list[tuple[int, int, str]] = []
    current: list[str] = []
    start = heading = 0
    fenced = False

    def close() -> None:
        if current:
            found.append((start, heading, "\n".join(current)))
            current.clear()

    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            close()
            continue
        if fenced:
            continue
        if line.startswith("#"):
            close()
            heading = number
            continue
        new_item = re.match(r"([-*]|\d+\.)\s", line)
        if not line.strip() or (new_item and current and not current[0].startswith("|")):
            close()
            if not line.strip():
                continue
        if not current:
            start = number
        current.append(line)
    close()
    return found


def unsourced_figures(text: str) -> list[str]:
    """Paragraphs, items and tables that state a figure without naming where it comes from:
    neither they, nor the paragraph that introduces them (the one just before, in the same
    section), nor their section's first paragraph (a lead-in such as "Measured by ...") cite a
    file, a benchmark or a link."""
    section_cites: dict[int, bool] = {}
    unsourced = []
    previous = (-1, False)
    for start, heading, block in blocks(text):
        cites = bool(SOURCE.search(block))
        section_cites.setdefault(heading, cites)
        introduced = previous == (heading, True)
        if FIGURE.search(block) and not (cites or introduced or section_cites[heading]):
            unsourced.append(f"line {start}: {block[:90]}")
        previous = (heading, cites)
    return unsourced


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_figure_cites_where_it_comes_from(doc: Path) -> None:
    assert unsourced_figures(doc.read_text()) == []


def test_the_figure_check_finds_a_figure_without_a_source() -> None:
    measured = "## Speed\n\nOne price takes 2.4 ms at p50.\n\nIt is fast.\n"
    cited = "## Speed\n\nOne price takes 2.4 ms at p50 (`python benchmarks/bench_serving.py`).\n"
    led_in = "## Speed\n\nMeasured by `make bench`:\n\n- one price 2.4 ms\n- a batch 1.2 s\n"
    assert unsourced_figures(measured) == ["line 3: One price takes 2.4 ms at p50."]
    assert unsourced_figures(cited) == []
    assert unsourced_figures(led_in) == []
    assert unsourced_figures("## Later\n\nA +15 % shift.\n") == ["line 3: A +15 % shift."]
    introduced = "## Costs\n\nNo figure here.\n\nFrom `infra/stages.py`:\n\n| a | 5 MB |\n"
    assert unsourced_figures(introduced) == []
    assert unsourced_figures(measured + "\n## Next\n\nFrom `x/y.py`.\n") == [
        "line 3: One price takes 2.4 ms at p50."
    ]
