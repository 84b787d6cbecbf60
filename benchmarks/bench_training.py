"""Training-core targets, measured and printed (issue: training core). Not a test: it reports.

    python benchmarks/bench_training.py [--large-rows 2000000]

Prints each number next to its target and says MET or MISSED.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import Figures

from contracts.schema import example_diamond
from training.data import read_classic_bytes
from training.explain import explain
from training.hyperparameters import parse_hyperparameters
from training.train import prepare_classic, train_and_evaluate
from training.validate import validate_batch

REPO = Path(__file__).resolve().parents[1]


FIGURES = Figures("training core", "python benchmarks/bench_training.py")
line = FIGURES.line


def large_file_peak_memory(rows: int) -> None:
    """Validate a large generated CSV in chunks in a fresh process, and report its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "large.csv"
        classic = read_classic_bytes().decode().splitlines()
        header, body = classic[0], classic[1:]
        with source.open("w") as handle:
            handle.write(header + "\n")
            written = 0
            while written < rows:
                chunk = body[: min(len(body), rows - written)]
                handle.write("\n".join(chunk) + "\n")
                written += len(chunk)
        code = (
            "import resource, time, sys\n"
            "from pathlib import Path\n"
            "from training.validate import validate_to_files\n"
            "t = time.perf_counter()\n"
            f"r = validate_to_files(Path({str(source)!r}), Path({tmp!r}) / 'a.csv', "
            f"Path({tmp!r}) / 'q.csv', chunk_rows=100_000)\n"
            "print(r.input_rows, r.accepted_rows, r.quarantined_rows, time.perf_counter() - t, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout.split()
        size_mb = source.stat().st_size / 1e6
        total, accepted, quarantined, seconds, peak_kb = out
        print(
            f"large file: {int(total):,} rows ({size_mb:.0f} MB) -> {int(accepted):,} accepted + "
            f"{int(quarantined):,} quarantined in {float(seconds):.1f} s; "
            f"peak RSS {int(peak_kb) / 1024:.0f} MB (chunks of 100,000 rows)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large-rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()

    raw = read_classic_bytes()
    validate_batch(raw)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        validate_batch(raw)
        timings.append(time.perf_counter() - started)
    classic = prepare_classic()
    print(
        f"classic data: {classic.report.input_rows} rows, training {len(classic.training)}, "
        f"holdout {len(classic.holdout)}"
    )
    line(
        "validate 53,940 rows (median of 5)",
        f"{np.median(timings):.2f} s",
        "<= 1 s",
        np.median(timings) <= 1.0,
    )

    started = time.perf_counter()
    outcome = train_and_evaluate(
        classic.training,
        classic.holdout,
        parse_hyperparameters({"models": "lightgbm"}),
        progress=lambda _: None,
    )
    train_seconds = time.perf_counter() - started
    holdout = outcome.model.metadata["metrics"]["holdout"]
    line(
        f"train default model on {len(classic.training):,} rows",
        f"{train_seconds:.1f} s",
        "<= 10 s",
        train_seconds <= 10,
    )
    # Targets of the training core (6.0 % / 510 / 0.984) and the goal of the model frontier
    # (issue "Fast where it counts": 5.8 % / 500 / 0.985), before = the default it started from.
    mape, rmse, r2 = holdout["mape"], holdout["rmse"], holdout["r2"]
    for name, value, before, targets in (
        (
            "holdout MAPE",
            f"{mape:.2%}",
            "6.12%",
            [("<= 6.0%", mape <= 0.06), ("<= 5.8%", mape <= 0.058)],
        ),
        (
            "holdout RMSE",
            f"{rmse:.0f} USD",
            "511 USD",
            [("<= 510", rmse <= 510), ("<= 500", rmse <= 500)],
        ),
        (
            "holdout R^2",
            f"{r2:.4f}",
            "0.9833",
            [(">= 0.984", r2 >= 0.984), (">= 0.985", r2 >= 0.985)],
        ),
    ):
        (target, ok), (goal, goal_ok) = targets
        line(name, value, target, ok, before)
        line(f"{name} (frontier goal)", value, goal, goal_ok, before)
    rounds = outcome.model.metadata["hyperparameters"]["rounds"]
    print(f"default model: LightGBM, {rounds} trees, monotone in carat/color/clarity")

    with tempfile.TemporaryDirectory() as tmp:
        outcome.save(Path(tmp))
        loads = []
        for _ in range(5):
            # The serving package has no pandas, scikit-learn or torch; lightgbm imports them when
            # it finds them, so hide them to measure what the serving Lambda pays.
            code = (
                "import time; t = time.perf_counter()\n"
                "import sys\n"
                "class Absent:\n"
                "    def find_spec(self, name, path=None, target=None):\n"
                "        if name.split('.')[0] in {'pandas', 'sklearn', 'torch', 'pyarrow'}:\n"
                "            raise ImportError(name)\n"
                "sys.meta_path.insert(0, Absent())\n"
                "from pathlib import Path\n"
                "from training.predict import load_model\n"
                f"load_model(Path({tmp!r}))\n"
                "print(time.perf_counter() - t)\n"
            )
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
            )
            loads.append(float(done.stdout.strip()))
        line(
            "fresh interpreter, serving deps: import+load (median)",
            f"{np.median(loads):.3f} s",
            "<= 0.5 s",
            np.median(loads) <= 0.5,
        )

    model = outcome.model
    row = {name: [value] for name, value in example_diamond().items()}
    explain(model, row)
    gc.disable()
    latencies = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        explain(model, row)
        latencies.append(time.perf_counter() - started)
    gc.enable()
    p50, p99 = (np.percentile(latencies, q) * 1e3 for q in (50, 99))
    line("one prediction with its explanation p50", f"{p50:.2f} ms", "(info)", True)
    # Serving's budget for one price with its explanation (the training core's was 2 ms).
    line("one prediction with its explanation p99", f"{p99:.2f} ms", "<= 5 ms", p99 <= 5.0)
    print(
        f"peak RSS of this benchmark: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    if args.large_rows:
        large_file_peak_memory(args.large_rows)
    print(json.dumps({"holdout": holdout, "train_seconds": train_seconds, "p99_ms": p99}))
    FIGURES.save()


if __name__ == "__main__":
    main()
