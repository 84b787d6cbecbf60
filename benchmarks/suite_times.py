"""Where the test suite's time goes, per folder: measured, printed (not a test).

    python benchmarks/suite_times.py                      # runs the suite as `make test` does
    python benchmarks/suite_times.py --workers 1          # one worker, for comparison
    python benchmarks/suite_times.py --junit report.xml   # only summarises an earlier run
    python benchmarks/suite_times.py --write              # and records each file's time in
                                                          # tests/file_seconds.json (the order
                                                          # tests/conftest.py runs files in)

Per folder it prints the tests' own time (setup + call + teardown, summed over workers) and the
slowest file; the wall time of the whole run is what a developer waits for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

REPO = Path(__file__).resolve().parents[1]


def _file_times(junit: Path) -> dict[str, float]:
    """{tests/.../test_x.py: seconds} from a JUnit XML report (a class's tests count for its file)."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")  # tests.e2e.test_localstack[.Class]
        for end in range(len(parts), 0, -1):
            path = "/".join(parts[:end]) + ".py"
            if (REPO / path).is_file():
                seconds[path] += float(case.get("time", 0))
                break
    return seconds


def summarise(junit: Path) -> dict[str, dict[str, float]]:
    """{folder: {file: seconds}} from a JUnit XML report."""
    folders: dict[str, dict[str, float]] = defaultdict(dict)
    for path, seconds in _file_times(junit).items():
        folder, _, name = path.removesuffix(".py").rpartition("/")
        folders[folder][name] = seconds
    return folders


def file_seconds(junit: Path) -> dict[str, float]:
    """Each file's time, rounded, as tests/file_seconds.json records it."""
    return {path: round(value, 1) for path, value in sorted(_file_times(junit).items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--junit", type=Path, help="summarise this report instead of running")
    parser.add_argument(
        "--write", action="store_true", help="record each file's time in tests/file_seconds.json"
    )
    arguments = parser.parse_args()
    wall = None
    with tempfile.TemporaryDirectory() as tmp:
        junit = arguments.junit or Path(tmp) / "junit.xml"
        if arguments.junit is None:
            started = time.monotonic()
            workers = ["-n", str(arguments.workers), "--dist", "loadfile"]
            subprocess.run(
                [sys.executable, "-m", "pytest", "-q", *workers, f"--junitxml={junit}"],
                cwd=REPO,
                check=False,
            )
            wall = time.monotonic() - started
        folders = summarise(junit)
        if arguments.write:
            target = REPO / "tests" / "file_seconds.json"
            target.write_text(json.dumps(file_seconds(junit), indent=1) + "\n")
            print(f"each file's time: {target.relative_to(REPO)}")
    print(f"\n{'folder':<18} {'tests time':>10}  slowest file")
    for folder, files in sorted(folders.items(), key=lambda item: -sum(item[1].values())):
        slowest = max(files, key=lambda name: files[name])
        print(f"{folder:<18} {sum(files.values()):>9.0f}s  {slowest} ({files[slowest]:.0f} s)")
    total = sum(sum(files.values()) for files in folders.values())
    print(f"{'all':<18} {total:>9.0f}s")
    if wall is not None:
        print(f"wall time with {arguments.workers} worker(s): {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
