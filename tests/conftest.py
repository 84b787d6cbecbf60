"""Shared fixtures: the classic split and one trained model per family, built once per run (and
shared between pytest-xdist workers: the first one that needs a model trains it)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_emulation.processes import process_tree
from training.hyperparameters import parse_hyperparameters
from training.predict import PriceModel, load_model
from training.train import ClassicSplit, prepare_classic, train_and_evaluate


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its own share of the CPUs (inherited by everything it
    starts: training jobs, Lambda environments, LocalStack). Code that sizes its threads from the
    CPUs it may use (contracts/compute.py) then stops two workers' OpenMP pools from fighting over
    the same cores, which made the notebook test 5x slower beside another worker.

    pytest-xdist (3.6 and later) reorders files by their number of tests unless told not to:
    that undid the longest-first order below (a 110-s file started at minute 7, and one
    worker ran it alone for its last 50 s)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= workers:
        _ALL_CPUS.update(cpus)
        os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw")) :: workers])


# The CPUs a worker gave up in pytest_configure, and the directory every worker of this run sees.
_ALL_CPUS: set[int] = set()
_RUN_ROOT: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _worker_done_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A worker with no tests left says so: the last one still running takes every CPU."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not _ALL_CPUS:
        yield
        return
    _RUN_ROOT.append(tmp_path_factory.getbasetemp().parent)
    yield
    (_RUN_ROOT[0] / f"worker-{worker}.done").touch()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """When the other workers have finished, the last one's files (often the longest, which
    start first and end last) need not stay on one CPU: this worker and what it started
    (LocalStack, Lambda environments, the next training job) may use them all."""
    if not _RUN_ROOT or os.sched_getaffinity(0) == _ALL_CPUS:
        return
    me = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    others = [f"gw{index}" for index in range(workers) if f"gw{index}" != me]
    if all((_RUN_ROOT[0] / f"worker-{other}.done").exists() for other in others):
        for pid in process_tree(os.getpid()):
            with contextlib.suppress(OSError):  # a child may have exited meanwhile
                os.sched_setaffinity(pid, _ALL_CPUS)


# Each test file's own time in a recent full run (`python benchmarks/suite_times.py --write`).
FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first. pytest-xdist (`--dist loadfile`) hands whole files to whichever
    worker is free, in collection order: a long file that starts last keeps one worker busy
    while the other idles. Files not yet measured count as the median file. The order is the
    same on every worker, as xdist requires."""
    measured: dict[str, float] = (
        json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.is_file() else {}
    )
    if not measured:
        return
    typical = sorted(measured.values())[len(measured) // 2]
    # a stable sort: each file's tests keep their order, files of equal time theirs
    items.sort(key=lambda item: -measured.get(item.nodeid.split("::")[0], typical))


@pytest.fixture(scope="session")
def classic() -> ClassicSplit:
    return prepare_classic()


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """A directory built by the first worker that asks for it, then read by every worker (the
    workers' temporary directories share a parent, pytest-xdist's recipe for session data).
    Tests must not write into it: copy it first."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    directory, complete = root / f"built-{name}", root / f"built-{name}.complete"
    with (root / f"built-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            build(directory)
            complete.touch()
    return directory


def _trained(classic: ClassicSplit, hyperparameters: dict[str, str]) -> Callable[[Path], None]:
    def build(directory: Path) -> None:
        params = parse_hyperparameters(hyperparameters)
        train_and_evaluate(classic.training, classic.holdout, params).save(directory)

    return build


@pytest.fixture(scope="session")
def trained_models(
    classic: ClassicSplit, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, PriceModel]:
    """Every candidate family, trained on the classic training rows, saved and loaded back."""
    return {
        family: load_model(
            built_once(
                tmp_path_factory,
                f"model-{family}",
                _trained(classic, {"models": family, "mlp_epochs": "25"}),
            )
        )
        for family in ("linear", "tree", "lightgbm", "mlp")
    }


@pytest.fixture(scope="session")
def default_model(
    classic: ClassicSplit, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PriceModel, Path]:
    """The model the pipeline trains by default (default hyperparameters), and its directory."""
    directory = built_once(tmp_path_factory, "model-default", _trained(classic, {}))
    return load_model(directory), directory


# The slice whose labels the mislabelled model learned wrong, and by how much.
MISLABELLED_COLORS = ("D", "E", "F", "G")
MISLABELLED_FACTOR = 1.6


def _mislabelled(classic: ClassicSplit) -> Callable[[Path], None]:
    def build(directory: Path) -> None:
        training = classic.training.copy()
        wrong = training["color"].isin(MISLABELLED_COLORS)
        training.loc[wrong, "price"] = training.loc[wrong, "price"] * MISLABELLED_FACTOR
        params = parse_hyperparameters({"models": "lightgbm"})
        train_and_evaluate(training, classic.holdout, params).save(directory)

    return build


@pytest.fixture(scope="session")
def mislabelled_model_dir(classic: ClassicSplit, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained with the prices of the most colourless stones 60 % too high: a plausible
    bad candidate (a slice of appraisals mislabelled), whose prices disagree with production's
    on about half of the stones."""
    return built_once(tmp_path_factory, "model-mislabelled", _mislabelled(classic))


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


def synthesized_once(tmp_path_factory: pytest.TempPathFactory, name: str, **context: Any) -> Any:
    """The CDK app synthesized with cdk.json's context and `context` by the first worker that
    asks, then read by every worker (tests/infra/conftest.py)."""
    from tests.infra.conftest import Synthesized, synthesize

    outdir = built_once(tmp_path_factory, f"cdk.out.{name}", lambda d: synthesize(d, **context))
    return Synthesized.read(outdir)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The dev app as `cdk synth` makes it."""
    return synthesized_once(tmp_path_factory, "dev")


@pytest.fixture(scope="session")
def synthesized_with_endpoint(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The same app with the SageMaker endpoint alternative on (context servingEndpoint=true)."""
    return synthesized_once(tmp_path_factory, "endpoint", servingEndpoint=True)


@pytest.fixture(scope="session")
def synthesized_stage(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The app of a named stage (staging, prod), each synthesized once for all workers."""
    return lambda stage: synthesized_once(tmp_path_factory, stage, stage=stage)
