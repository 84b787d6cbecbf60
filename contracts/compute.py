"""How many CPUs this process may actually use: the size of every thread pool in training and
serving. Never "all cores" of the host: an affinity mask, a cgroup quota (containers, CI runners)
or the platform's own figure (SageMaker's SM_NUM_CPUS, Lambda's CPU share by memory) can be
smaller, and more threads than CPUs make OpenMP code (LightGBM) many times slower.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
# Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB, at most 6.
LAMBDA_MB_PER_VCPU: Final = 1769
LAMBDA_MAX_VCPUS: Final = 6


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """CPUs allowed by the cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), if any."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 else None


def host_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs of this machine the process may be scheduled on, within its cgroup quota."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    counted = affinity or os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(counted, limit) if limit else counted)


def lambda_vcpus(memory_mb: int) -> int:
    return max(1, min(LAMBDA_MAX_VCPUS, math.ceil(memory_mb / LAMBDA_MB_PER_VCPU)))


def usable_cpus() -> int:
    """The platform's figure where there is one (SageMaker, Lambda), within what the host allows."""
    host = host_cpus()
    if sagemaker := os.environ.get("SM_NUM_CPUS", "").strip():
        return max(1, min(host, int(sagemaker)))
    if memory := os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip():
        return min(host, lambda_vcpus(int(memory)))
    return host
