"""Measured figures: printed by each benchmark, kept in docs/benchmarks.json with when and where
they were measured, and rendered into the README's table (never typed by hand).

    figures = Figures("pipeline (moto)", "python benchmarks/bench_pipeline.py")
    figures.line("one pipeline run", "9.8 s", "<= 10 s", True)
    figures.save()                     # this section of docs/benchmarks.json, replaced

    python benchmarks/figures.py       # docs/benchmarks.json -> README.md's measured table
    python benchmarks/figures.py --check   # exit 1 if the README disagrees with the file
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[1]
FIGURES_FILE: Final = REPO / "docs" / "benchmarks.json"
README: Final = REPO / "README.md"
TABLE_START: Final = "<!-- measured:start (benchmarks/figures.py writes this table) -->"
TABLE_END: Final = "<!-- measured:end -->"


@dataclass(frozen=True)
class Figure:
    name: str
    value: str
    target: str
    verdict: str  # MET, MISSED or info
    before: str = ""  # the figure an issue reported before the work it asks for, if any


@dataclass
class Figures:
    """One benchmark's figures, with the machine's state when it started."""

    section: str
    command: str
    started: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    load_average: float = field(default_factory=lambda: round(os.getloadavg()[0], 2))
    figures: list[Figure] = field(default_factory=list)

    def line(self, name: str, value: str, target: str, ok: bool | None, before: str = "") -> None:
        verdict = "info" if ok is None or target == "(info)" else "MET" if ok else "MISSED"
        was = f"   (before: {before})" if before else ""
        print(f"{name:<60} {value:>16}   target {target:<12} {verdict}{was}", flush=True)
        self.figures.append(Figure(name, value, target, verdict, before))

    def save(self, path: Path = FIGURES_FILE) -> None:
        document = load(path)
        document[self.section] = asdict(self)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def load(path: Path = FIGURES_FILE) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(document: dict[str, Any]) -> str:
    """The README's measured table, one block per benchmark."""
    lines = [
        TABLE_START,
        "| benchmark (measured on) | what | before | measured | target | |",
        "|---|---|---|---|---|---|",
    ]
    for section in sorted(document):
        entry = document[section]
        where = (
            f"**{_cell(section)}** (`{_cell(entry['command'])}`, {entry['started'][:10]}, "
            f"{entry['cores']} cores, load {entry['load_average']:.2f} at start)"
        )
        for index, figure in enumerate(entry["figures"]):
            verdict = {"MET": "met", "MISSED": "**missed**"}.get(figure["verdict"], "")
            lines.append(
                f"| {where if index == 0 else ''} | {_cell(figure['name'])} | "
                f"{_cell(figure.get('before', ''))} | {_cell(figure['value'])} | "
                f"{_cell(figure['target'])} | {verdict} |"
            )
    lines.append(TABLE_END)
    return "\n".join(lines)


def readme_table(text: str) -> str:
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {TABLE_START} ... {TABLE_END} block")
    return text[start : end + len(TABLE_END)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="Compare instead of writing.")
    arguments = parser.parse_args()
    text = README.read_text()
    wanted = render(load())
    if arguments.check:
        if readme_table(text) != wanted:
            print("README.md's measured table differs from docs/benchmarks.json", file=sys.stderr)
            return 1
        return 0
    README.write_text(text.replace(readme_table(text), wanted))
    print(f"README.md: measured table from {FIGURES_FILE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
