"""What shadow mode costs a request: price p50/p99 through the local gateway, shadow off and on.

    python benchmarks/bench_shadow.py [--repeats 2000] [--rounds 3]

One gateway worker (one Lambda environment) serving a version pinned to a registered package, as
a rollout publishes it, with the inference log writing to the emulator's lake as in production:
without a comparison; shadowing a second package on prod's 10 % sample; and on every request
(a canary compares every request). Sequential requests on one keep-alive connection, after a
warm-up. Not a test: it reports.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import boto3
import numpy as np
from bench_serving import price_latencies_ms
from figures import Figures

from contracts.names import Env
from contracts.rollout import ComparisonRole, ModelPin, RolloutEnv, rollout_policy
from local_emulation.emulator import EmbeddedEmulator, aws_environment
from local_emulation.gateway import Gateway
from local_emulation.processes import clean_environment, free_port
from training import registry
from training.artifact_store import pack, sha256
from training.hyperparameters import parse_hyperparameters
from training.registry import pointer_to
from training.train import prepare_classic, train_and_evaluate

FIGURES = Figures("shadow (moto)", "python benchmarks/bench_shadow.py")
BUCKET, GROUP = "bench-shadow-lake", "bench-shadow-group"


def train(directory: Path, seed: int) -> Path:
    classic = prepare_classic()
    parameters = parse_hyperparameters({"models": "lightgbm", "seed": str(seed)})
    train_and_evaluate(classic.training, classic.holdout, parameters).save(directory)
    return directory


def publish(model_dir: Path, name: str) -> str:
    tarball = pack(model_dir)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{name}/model.tar.gz", Body=tarball)
    record = registry.register(
        boto3.client("sagemaker"),
        GROUP,
        model_data_url=f"s3://{BUCKET}/{name}/model.tar.gz",
        image="local",
        metadata={"artifact_sha256": sha256(tarball)},
        description=name,
    )
    return ModelPin.of(pointer_to(record)).to_env()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    prod_sample = rollout_policy("prod").shadow_sample
    with tempfile.TemporaryDirectory() as tmp, EmbeddedEmulator():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        registry.ensure_group(boto3.client("sagemaker"), GROUP)
        production = publish(train(Path(tmp) / "production", 1), "production")
        candidate = publish(train(Path(tmp) / "candidate", 2), "candidate")
        base = (
            clean_environment()
            | aws_environment()
            | {Env.DATA_BUCKET.value: BUCKET, RolloutEnv.MODEL_PIN.value: production}
        )
        shadow = {
            RolloutEnv.COMPARE_PIN.value: candidate,
            RolloutEnv.COMPARE_ROLE.value: ComparisonRole.SHADOW.value,
        }
        runs = {
            "shadow off": base,
            f"shadow on, {prod_sample:.0%} sampled (prod)": base
            | shadow
            | {RolloutEnv.COMPARE_SAMPLE.value: f"{prod_sample:g}"},
            "shadow on, every request": base | shadow | {RolloutEnv.COMPARE_SAMPLE.value: "1"},
        }
        # Rounds alternate the three set-ups, so that a slow spell of this shared VM lands on
        # all of them; each figure is the median over the rounds.
        rounds: dict[str, list[tuple[float, float]]] = {label: [] for label in runs}
        for _ in range(args.rounds):
            for label, environment in runs.items():
                with Gateway(free_port(), workers=1, environment=environment) as gateway:
                    timings = price_latencies_ms(gateway, args.repeats, warmup=50)
                rounds[label].append((np.percentile(timings, 50), np.percentile(timings, 99)))
        measured = {
            label: (float(np.median([r[0] for r in rs])), float(np.median([r[1] for r in rs])))
            for label, rs in rounds.items()
        }
    off_p99 = measured["shadow off"][1]
    for label, (p50, p99) in measured.items():
        FIGURES.line(
            f"one price through the gateway, {label}: p50", f"{p50:.2f} ms", "(info)", None
        )
        cost = "" if label == "shadow off" else f" ({p99 - off_p99:+.2f} ms against off)"
        FIGURES.line(f"  same: p99{cost}", f"{p99:.2f} ms", "(info)", None)
    FIGURES.save()


if __name__ == "__main__":
    main()
