"""Does weighting recent batches higher buy anything on recent data? (issue: retraining, point 4)

    python benchmarks/bench_recency_weight.py

The demo's situation: the archive (reference data), two fresh batches, then a +15 % market
shift batch. The pipeline brings every label to today's price level before training
(pipeline/datasets.py), so the shift itself is learned from all stones. This measures what a
weight w > 1 on the rows since the shift adds, on the recent holdout (the shift batch's held-out
slice, 20 %) and on the frozen holdout at today's level. Default LightGBM configuration, one
thread, three seeds; prints MAPE per weight.
"""

from __future__ import annotations

import math
import time

import lightgbm
import numpy as np
import pandas as pd

from local_emulation.simulate import Change, make_batches
from pipeline.production import relevel
from training.candidates import _log_price, lightgbm_parameters
from training.features import DERIVED, Encoding, FeatureTransform
from training.hyperparameters import parse_hyperparameters
from training.split import ROW_HASH_COLUMN, split_archive, split_recent
from training.train import prepare_classic

WEIGHTS = (1.0, 2.0, 5.0, 10.0)
SEEDS = (1, 2, 3)


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual) / actual))


def main() -> None:
    classic = prepare_classic()
    archive = split_archive(classic.training)[0].drop(columns=[ROW_HASH_COLUMN])
    plan = make_batches(3, rows=5000, changes=[Change.NONE, Change.NONE, Change.PRICES])
    level = math.log(1.15)
    old = [split_recent(b.frame)[0].drop(columns=[ROW_HASH_COLUMN]) for b in plan[:2]]
    new_train, recent = (f.drop(columns=[ROW_HASH_COLUMN]) for f in split_recent(plan[2].frame))
    before = pd.concat([archive, *old], ignore_index=True)
    training = pd.concat([relevel(before, 0.0, level), new_train], ignore_index=True)
    holdout_today = relevel(classic.holdout.drop(columns=[ROW_HASH_COLUMN]), 0.0, level)
    recent_flags = np.r_[np.zeros(len(before)), np.ones(len(new_train))]
    params = parse_hyperparameters({"models": "lightgbm"})
    transform = FeatureTransform.fit(training, encoding=Encoding.ORDINAL, derived=tuple(DERIVED))
    matrix = transform.transform(training)
    print(
        f"{len(before):,} rows before the shift (re-levelled +15 %), {len(new_train):,} after; "
        f"recent holdout {len(recent):,} stones"
    )
    print(f"{'weight':>6}  {'recent MAPE':>12}  {'frozen @ today':>14}  fit (s)")
    for weight in WEIGHTS:
        recent_scores, frozen_scores, seconds = [], [], []
        for seed in SEEDS:
            options = lightgbm_parameters(params, transform) | {"seed": seed, "num_threads": 1}
            started = time.perf_counter()
            booster = lightgbm.train(
                options,
                lightgbm.Dataset(
                    matrix, _log_price(training), weight=np.where(recent_flags, weight, 1.0)
                ),
                600,
            )
            seconds.append(time.perf_counter() - started)
            for frame, scores in ((recent, recent_scores), (holdout_today, frozen_scores)):
                predicted = np.exp(booster.predict(transform.transform(frame)))
                scores.append(mape(frame["price"].to_numpy(), predicted))
        print(
            f"{weight:>6.0f}  {np.mean(recent_scores):>11.3%}  {np.mean(frozen_scores):>13.3%}  "
            f"{np.mean(seconds):.1f}"
        )


if __name__ == "__main__":
    main()
