"""Accuracy vs explanation latency of LightGBM configurations: how the default was chosen.

    python benchmarks/bench_model_frontier.py

Exact TreeSHAP costs time per tree and grows with depth, so a bigger model is both a little more
accurate and slower to explain. The rule that chose the default (training/hyperparameters.py):
the best validation MAPE among configurations whose one-price explanation has p99 <= 2 ms.
Validation only, never the holdout; the holdout column is shown for information.
"""

from __future__ import annotations

import time

import numpy as np

from contracts.schema import example_diamond
from training.explain import explain
from training.hyperparameters import parse_hyperparameters
from training.train import prepare_classic, train_and_evaluate

CONFIGS = [
    {"lgb_num_leaves": "31", "lgb_max_depth": "5", "lgb_learning_rate": "0.1"},
    {"lgb_num_leaves": "40", "lgb_max_depth": "6", "lgb_learning_rate": "0.1"},
    {"lgb_num_leaves": "40", "lgb_max_depth": "6", "lgb_learning_rate": "0.15"},
    {"lgb_num_leaves": "80", "lgb_max_depth": "7", "lgb_learning_rate": "0.1"},
    {"lgb_num_leaves": "80", "lgb_max_depth": "7", "lgb_learning_rate": "0.15"},
    {"lgb_num_leaves": "63", "lgb_max_depth": "12", "lgb_learning_rate": "0.1"},
]


def main() -> None:
    classic = prepare_classic()
    row = {name: [value] for name, value in example_diamond().items()}
    print(
        f"{'leaves':>6} {'depth':>5} {'lr':>5} {'trees':>5} {'val MAPE':>9} {'hold MAPE':>9} {'RMSE':>5} {'R2':>7} {'p50 ms':>7} {'p99 ms':>7} {'fit s':>6}"
    )
    for config in CONFIGS:
        started = time.perf_counter()
        outcome = train_and_evaluate(
            classic.training,
            classic.holdout,
            parse_hyperparameters({"models": "lightgbm", **config}),
            progress=lambda _: None,
        )
        fit = time.perf_counter() - started
        model = outcome.model
        explain(model, row)
        timings = []
        for _ in range(1500):
            tick = time.perf_counter()
            explain(model, row)
            timings.append(time.perf_counter() - tick)
        metrics = model.metadata["metrics"]
        print(
            f"{config['lgb_num_leaves']:>6} {config['lgb_max_depth']:>5} {config['lgb_learning_rate']:>5} "
            f"{model.metadata['hyperparameters']['rounds']:>5} {metrics['validation']['mape']:>9.2%} "
            f"{metrics['holdout']['mape']:>9.2%} {metrics['holdout']['rmse']:>5.0f} {metrics['holdout']['r2']:>7.4f} "
            f"{np.percentile(timings, 50) * 1e3:>7.2f} {np.percentile(timings, 99) * 1e3:>7.2f} {fit:>6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
