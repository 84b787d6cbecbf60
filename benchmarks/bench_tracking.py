"""What experiment tracking costs the demo's cold start, measured and printed (not a test).

    python benchmarks/bench_tracking.py [--repeats 2]

Runs `facet demo --batches 0 --exit` (a cold start to the first production model) with
`--no-tracking` and with tracking (the default: a local MLflow tracking server, every training
job a run with a nested run and a logged model per candidate), alternating, and prints the median
of each and their difference. Target: tracking adds at most 5 s.
"""

from __future__ import annotations

import argparse
import statistics

from bench_pipeline import run_demo
from figures import Figures

TARGET_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each kind (alternating).")
    repeats = parser.parse_args().repeats
    figures = Figures("experiment tracking (moto)", "python benchmarks/bench_tracking.py")
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    peaks: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(repeats):
        for kind, arguments in (("off", ["--no-tracking"]), ("on", ["--tracking"])):
            demo = run_demo(0, arguments)
            seconds[kind].append(demo.first_production_seconds)
            peaks[kind].append(demo.peak_rss_kb / 1024)
            print(
                f"  tracking {kind}: first production model {seconds[kind][-1]:.1f} s", flush=True
            )
    off, on = statistics.median(seconds["off"]), statistics.median(seconds["on"])
    figures.line("cold start to a production model, tracking off", f"{off:.1f} s", "(info)", None)
    figures.line("cold start to a production model, tracking on", f"{on:.1f} s", "(info)", None)
    figures.line(
        "  what tracking adds to the cold start",
        f"{on - off:+.1f} s",
        f"<= {TARGET_SECONDS:.0f} s",
        on - off <= TARGET_SECONDS,
    )
    figures.line(
        "  peak memory of the demo's process tree, tracking off / on",
        f"{statistics.median(peaks['off']):.0f} / {statistics.median(peaks['on']):.0f} MB",
        "(info)",
        None,
    )
    figures.save()


if __name__ == "__main__":
    main()
