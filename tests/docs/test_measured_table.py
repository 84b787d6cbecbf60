"""The README's measured table is the benchmarks' file, rendered: it cannot go stale by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.figures import FIGURES_FILE, README, Figures, load, readme_table, render

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_benchmark_file_rendered() -> None:
    assert readme_table(README.read_text()) == render(load(FIGURES_FILE))


def test_every_benchmark_of_make_bench_has_figures_in_the_file() -> None:
    document = load(FIGURES_FILE)
    makefile = (REPO / "Makefile").read_text()
    bench_recipe = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    for entry in document.values():
        assert entry["command"].removeprefix("python ") in bench_recipe, entry["command"]
        assert entry["figures"] and entry["cores"] >= 1 and entry["started"]
    sections = {entry["command"] for entry in document.values()}
    for line in bench_recipe.splitlines():
        if "benchmarks/bench_" in line:
            command = "python " + line.split("python ", 1)[1].strip()
            assert command in sections, f"{command} has no figures in {FIGURES_FILE.name}"


def test_a_changed_figure_makes_the_check_fail(tmp_path: Path) -> None:
    figures = Figures("example", "python benchmarks/bench_example.py")
    figures.line("a figure", "1.0 s", "<= 2 s", True)
    target = tmp_path / "figures.json"
    figures.save(target)
    before = render(load(target))
    figures.figures.clear()
    figures.line("a figure", "3.0 s", "<= 2 s", False)
    figures.save(target)
    after = render(load(target))
    assert before != after and "**missed**" in after and "3.0 s" in after


def test_the_check_command_agrees() -> None:
    completed = subprocess.run(
        [sys.executable, "benchmarks/figures.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
