"""Infrastructure targets, measured and printed (issue: CDK). Not a test: it reports.

    python benchmarks/bench_infra.py

Times `npx cdk synth` exactly as the README runs it (offline, no credentials, no Docker), then the
infra test suite.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from figures import Figures

from local_emulation.processes import clean_environment

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    environment = clean_environment()
    environment["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=REPO, env=environment, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - started, completed


def main() -> None:
    figures = Figures("infrastructure", "python benchmarks/bench_infra.py")
    for label, extra in (
        ("npx cdk synth (fixed placeholder account/region)", []),
        ("npx cdk synth -c account= -c region= (agnostic)", ["-c", "account=", "-c", "region="]),
    ):
        seconds, completed = timed(["npx", "cdk", "synth", "-q", *extra])
        if completed.returncode != 0:
            print(completed.stdout[-3000:], completed.stderr[-3000:])
        ok = completed.returncode == 0 and seconds <= 30
        figures.line(label, f"{seconds:.1f} s", "<= 30 s", ok)
    seconds, completed = timed([sys.executable, "-m", "pytest", "-q", "tests/infra"])
    ok = completed.returncode == 0 and seconds <= 60
    figures.line("infra tests (tests/infra)", f"{seconds:.1f} s", "<= 60 s", ok)
    print(completed.stdout.strip().splitlines()[-1])
    figures.save()


if __name__ == "__main__":
    main()
