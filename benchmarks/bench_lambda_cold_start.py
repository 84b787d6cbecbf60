"""A pipeline step's cold start in the emulator's Lambda executor, printed. Not a test: it reports.

    python benchmarks/bench_lambda_cold_start.py              # 5 cold starts of each kind
    python benchmarks/bench_lambda_cold_start.py --repeats 9

A cold start here is the first invocation of a new environment: the runtime loop starts and
imports the handler's module (`pipeline.handlers`, with pandas, boto3 and pydantic behind it).
It is measured two ways, alternating: an environment forked from the runtime image once the image
has imported its libraries (what the executor does), and a fresh interpreter importing the same
handler from the same extracted zip (what every environment did before the runtime image).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figures

from contracts.names import PIPELINE_CODE_PACKAGES
from infra.packaging import image_distributions, lambda_zip
from local_emulation.lambda_executor import Invocation, LambdaExecutor

HANDLER = "pipeline.handlers.write_report"
IMAGE_READY_SECONDS = 10.0  # the image imports its libraries in ~2 s of one CPU


def invocation(name: str, code: bytes) -> Invocation:
    return Invocation(
        function_name=name,
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler=HANDLER,
        code=code,
        environment={},
        timeout_seconds=60.0,
        memory_mb=1024,
    )


def fresh_interpreter_import(task_root: Path) -> float:
    """Seconds for a new `python -I` to import the handler's module from the task root."""
    module = HANDLER.rsplit(".", 1)[0]
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(task_root)!r}); import {module}",
        ],
        check=True,
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    repeats = max(1, parser.parse_args().repeats)
    code = lambda_zip(PIPELINE_CODE_PACKAGES, distributions=image_distributions())
    forked, fresh = [], []
    with tempfile.TemporaryDirectory() as work_dir:
        executor = LambdaExecutor(Path(work_dir), {"AWS_DEFAULT_REGION": "us-east-1"})
        try:
            executor.prepare(code)
            time.sleep(IMAGE_READY_SECONDS)
            task_root = next((Path(work_dir) / "lambda-code").iterdir())
            for number in range(repeats):
                started = time.monotonic()
                # An empty event: the handler fails on it after its module is imported, which
                # is the part measured.
                result = executor.invoke(invocation(f"step-{number}", code), {})
                forked.append(time.monotonic() - started)
                assert result.cold_start, "every invocation here is a new function's first"
                fresh.append(fresh_interpreter_import(task_root))
        finally:
            executor.close()

    print(
        "forked:",
        ", ".join(f"{v:.2f}" for v in forked),
        "s; fresh interpreter:",
        ", ".join(f"{v:.2f}" for v in fresh),
        "s",
        flush=True,
    )
    figures = Figures(
        "Lambda cold start (emulator)", "python benchmarks/bench_lambda_cold_start.py"
    )
    figures.line(
        f"pipeline step cold start, forked from the runtime image (median of {repeats})",
        f"{statistics.median(forked):.2f} s",
        "(info)",
        None,
        before=f"{statistics.median(fresh):.2f} s, a fresh interpreter importing the handler",
    )
    figures.save()


if __name__ == "__main__":
    main()
