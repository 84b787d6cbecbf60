"""Thread pools are sized from the CPUs the process may use, never every core of the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contracts import compute


def test_a_cgroup_v2_quota_limits_the_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert compute.cgroup_cpu_limit(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert compute.cgroup_cpu_limit(tmp_path) == 1
    assert compute.host_cpus(tmp_path) == 1


def test_no_quota_means_the_affinity_mask(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert compute.cgroup_cpu_limit(tmp_path) is None
    assert compute.host_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_a_cgroup_v1_quota_limits_the_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert compute.cgroup_cpu_limit(tmp_path) == 3
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert compute.cgroup_cpu_limit(tmp_path) is None


@pytest.mark.parametrize(
    ("memory_mb", "vcpus"), [(128, 1), (1024, 1), (1769, 1), (2048, 2), (10240, 6)]
)
def test_lambda_cpu_follows_memory(memory_mb: int, vcpus: int) -> None:
    assert compute.lambda_vcpus(memory_mb) == vcpus


def test_the_platforms_figure_wins_within_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    host = compute.host_cpus()
    monkeypatch.setenv("SM_NUM_CPUS", "1")
    assert compute.usable_cpus() == 1
    monkeypatch.setenv("SM_NUM_CPUS", "96")
    assert compute.usable_cpus() == host  # an instance's figure cannot exceed this machine
    monkeypatch.delenv("SM_NUM_CPUS")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    assert compute.usable_cpus() == 1


def test_training_uses_the_usable_cpus_not_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.candidates import lightgbm_parameters
    from training.features import Encoding, FeatureTransform
    from training.hyperparameters import parse_hyperparameters
    from training.train import prepare_classic

    monkeypatch.setenv("SM_NUM_CPUS", "1")
    sample = prepare_classic().training.head(200)
    transform = FeatureTransform.fit(sample, encoding=Encoding.ORDINAL)
    options = lightgbm_parameters(parse_hyperparameters({}), transform)
    assert options["num_threads"] == 1
