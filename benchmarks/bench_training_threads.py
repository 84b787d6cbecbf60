"""Training under a competing CPU-bound process, by thread count (issue: CPU-aware compute).
Not a test: it reports.

    python benchmarks/bench_training_threads.py

Trains the default LightGBM candidate in a fresh interpreter, alone and beside one busy process,
with LightGBM's threads = every core of the host (LightGBM's default, OpenMP's active wait), = the
usable CPUs with OpenMP's passive wait, and = 1. Measured here (2 cores): active 4.8 s alone but
14.2 s beside a busy process; passive 10.4 s alone, 7.5 s beside it; one thread ~6 s either way.
Training keeps the usable CPUs (contracts.compute) and OpenMP's default (active) wait: passive
halves the idle case.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

from contracts.compute import usable_cpus

TRAIN = """
import time
from training.candidates import fit_lightgbm
from training.hyperparameters import parse_hyperparameters
from training.train import prepare_classic
classic = prepare_classic()
training = classic.training
fit = training.sample(frac=0.8, random_state=0)
validation = training.drop(fit.index)
params = parse_hyperparameters({})
started = time.perf_counter()
fit_lightgbm(fit, validation, params)
print(f"{time.perf_counter() - started:.2f}")
"""


def busy() -> None:
    while True:
        pass


def train(threads: str, passive: bool) -> float:
    environment = dict(os.environ) | {"SM_NUM_CPUS": threads}
    environment["OMP_WAIT_POLICY"] = "PASSIVE" if passive else "ACTIVE"
    completed = subprocess.run(
        [sys.executable, "-c", TRAIN],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    cores, usable = os.cpu_count() or 1, usable_cpus()
    print(f"host cores {cores}, usable CPUs {usable}, load average {os.getloadavg()[0]:.2f}")
    configurations = [
        (f"threads = every core ({cores}), active wait", str(cores), False),
        (f"threads = usable CPUs ({usable}), passive wait", str(usable), True),
        ("threads = 1", "1", True),
    ]
    for label, threads, passive in configurations:
        alone = train(threads, passive)
        competitors = [multiprocessing.Process(target=busy, daemon=True) for _ in range(1)]
        for process in competitors:
            process.start()
        time.sleep(0.5)
        try:
            contended = train(threads, passive)
        finally:
            for process in competitors:
                process.terminate()
                process.join()
        print(f"{label:<48} alone {alone:6.2f} s   beside a busy process {contended:6.2f} s")


if __name__ == "__main__":
    main()
