"""Shared fixtures: the classic split and one trained model per family, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.hyperparameters import parse_hyperparameters
from training.predict import PriceModel, load_model
from training.train import ClassicSplit, prepare_classic, train_and_evaluate


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its own share of the CPUs (inherited by everything it
    starts: training jobs, Lambda environments, LocalStack). Code that sizes its threads from the
    CPUs it may use (contracts/compute.py) then stops two workers' OpenMP pools from fighting over
    the same cores, which made the notebook test 5x slower beside another worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= workers:
        os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw")) :: workers])


@pytest.fixture(scope="session")
def classic() -> ClassicSplit:
    return prepare_classic()


@pytest.fixture(scope="session")
def trained_models(
    classic: ClassicSplit, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, PriceModel]:
    """Every candidate family, trained on the classic training rows, saved and loaded back."""
    models: dict[str, PriceModel] = {}
    for family in ("linear", "tree", "lightgbm", "mlp"):
        params = parse_hyperparameters({"models": family, "mlp_epochs": "25"})
        outcome = train_and_evaluate(classic.training, classic.holdout, params)
        directory = tmp_path_factory.mktemp(f"model-{family}")
        outcome.save(directory)
        models[family] = load_model(directory)
    return models


@pytest.fixture(scope="session")
def default_model(
    classic: ClassicSplit, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PriceModel, Path]:
    """The model the pipeline trains by default (default hyperparameters), and its directory."""
    outcome = train_and_evaluate(classic.training, classic.holdout, parse_hyperparameters({}))
    directory = tmp_path_factory.mktemp("model-default")
    outcome.save(directory)
    return load_model(directory), directory


@pytest.fixture(scope="session")
def aws_emulator(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One embedded moto (with local compute) for the test session, stopped at its end."""
    from local_emulation.emulator import EmbeddedEmulator

    emulator = EmbeddedEmulator(work_dir=tmp_path_factory.mktemp("emulator")).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def served_model_dir(default_model: tuple[PriceModel, Path]) -> Path:
    """The default model's artifact directory, for serving it without a registry."""
    return default_model[1]


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The CDK app synthesized once per session with cdk.json's context (tests/infra/conftest.py)."""
    from tests.infra.conftest import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out"))
