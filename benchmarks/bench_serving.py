"""Serving targets, measured in one run and printed (issue: serving). Not a test: it reports.

    python benchmarks/bench_serving.py [--soak-seconds 60]

Needs `wrk` (Debian) for the sustained-load figure, and builds the serving Lambda package
(python3.12, x86_64) under build/lambda/serving to measure its size and cold start.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import Figures

from contracts.names import Env
from contracts.schema import FEATURE_NAMES, example_diamond
from infra.packaging import REPO, build_serving_package
from local_emulation.gateway import Gateway
from local_emulation.processes import free_port
from serving.pricing import quote
from training.hyperparameters import parse_hyperparameters
from training.predict import load_model
from training.train import prepare_classic, train_and_evaluate

PYTHON_312 = Path(os.environ.get("FACET_PYTHON_312", "/root/.pyenv/versions/3.12.1/bin/python"))


FIGURES = Figures("serving", "python benchmarks/bench_serving.py")
line = FIGURES.line


def train_model(directory: Path) -> Path:
    classic = prepare_classic()
    outcome = train_and_evaluate(
        classic.training,
        classic.holdout,
        parse_hyperparameters({"models": "lightgbm"}),
        progress=lambda _: None,
    )
    outcome.save(directory)
    return directory


def in_process(model_dir: Path, repeats: int) -> None:
    model = load_model(model_dir)
    stone = [example_diamond()]
    quote(model, stone, with_explanation=True)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        quote(model, stone, with_explanation=True)
        timings.append(time.perf_counter() - started)
    p50, p99 = (np.percentile(timings, q) * 1000 for q in (50, 99))
    line("in-process: one price with explanation, p50", f"{p50:.2f} ms", "<= 2 ms", p50 <= 2)
    line("in-process: one price with explanation, p99", f"{p99:.2f} ms", "<= 5 ms", p99 <= 5)


def price_latencies_ms(gateway: Gateway, repeats: int, warmup: int = 20) -> np.ndarray:
    """One price at a time on one keep-alive connection; the warm-up requests are dropped."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    body = json.dumps(example_diamond())
    headers = {"Content-Type": "application/json"}
    timings = []
    for _ in range(repeats + warmup):
        started = time.perf_counter()
        connection.request("POST", f"/{gateway.stage}/v1/prices", body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        timings.append(time.perf_counter() - started)
    connection.close()
    return np.array(timings[warmup:]) * 1000


def through_gateway(gateway: Gateway, repeats: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    timings = price_latencies_ms(gateway, repeats)
    p50, p99 = (np.percentile(timings, q) for q in (50, 99))
    line("through the local API gateway: p50", f"{p50:.2f} ms", "<= 10 ms", p50 <= 10)
    line("through the local API gateway: p99", f"{p99:.2f} ms", "(info)", None)
    rows = (
        ",".join(FEATURE_NAMES)
        + "\n"
        + (",".join(str(v) for v in example_diamond().values()) + "\n") * 10_000
    )
    batch_timings = []
    for _ in range(3):
        started = time.perf_counter()
        connection.request(
            "POST", f"/{gateway.stage}/v1/prices/batch", rows, {"Content-Type": "text/csv"}
        )
        response = connection.getresponse()
        payload = json.loads(response.read())
        assert response.status == 200 and payload["count"] == 10_000
        batch_timings.append(time.perf_counter() - started)
    best = min(batch_timings)
    line(
        "batch of 10,000 rows (CSV) through the gateway, best of 3",
        f"{best:.2f} s",
        "<= 1 s",
        best <= 1,
    )
    connection.close()


def soak(gateway: Gateway, seconds: int) -> None:
    if shutil.which("wrk") is None:
        line("sustained load (wrk)", "wrk missing", ">= 300/s", False)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = '{json.dumps(example_diamond())}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    completed = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            "8",
            "-d",
            f"{seconds}s",
            "--timeout",
            "5s",
            "-s",
            script.name,
            f"{gateway.url}/v1/prices",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    output = completed.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    ):
        found = re.search(pattern, output)
        if found:
            errors += sum(int(g) for g in found.groups())
    line(
        f"sustained {seconds} s, 8 connections (wrk), requests/s",
        f"{rate:.0f}/s",
        ">= 300/s",
        rate >= 300 and errors == 0,
    )
    line("  errors during the soak", str(errors), "0", errors == 0)


def wrk_latency(url: str, seconds: int, connections: int = 8) -> dict[str, float]:
    """wrk's latency percentiles (ms), requests/s and errors for POST /v1/prices."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = '{json.dumps(example_diamond())}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    output = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = {}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        assert found, output
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        figures[key] = float(found.group(1)) * scale
    found = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", output)
    assert found, output
    figures["max"] = float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    figures["rate"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    figures["errors"] = sum(
        int(n)
        for n in re.findall(
            r"(?:Non-2xx or 3xx responses|connect|read|write|timeout) (\d+)", output
        )
    )
    return figures


def registry_refresh_load(model_dir: Path, seconds: int) -> None:
    """Latency under load while the API follows a registry and refreshes every 5 s (as the
    demo runs it): the refresh used to run inside a request; now it runs beside them."""
    import logging

    from local_emulation.emulator import EmbeddedEmulator, aws_environment
    from local_emulation.processes import clean_environment
    from training import registry
    from training.artifact_store import pack, sha256

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with EmbeddedEmulator() as emulator:
        import boto3

        sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
        s3.create_bucket(Bucket="bench-lake")
        registry.ensure_group(sagemaker, "bench-group")
        tarball = pack(model_dir)
        for version in range(1, 21):  # a registry with history: 20 packages, one production
            s3.put_object(Bucket="bench-lake", Key=f"m{version}/model.tar.gz", Body=tarball)
            record = registry.register(
                sagemaker,
                "bench-group",
                model_data_url=f"s3://bench-lake/m{version}/model.tar.gz",
                image="local",
                metadata={"artifact_sha256": sha256(tarball)},
                description=f"v{version}",
            )
            status = (
                registry.ApprovalStatus.APPROVED
                if version == 20
                else registry.ApprovalStatus.REJECTED
            )
            registry.set_status(sagemaker, record, status, "bench")
        environment = (
            clean_environment()
            | aws_environment()
            | {
                "FACET_MODEL_PACKAGE_GROUP": "bench-group",
                "FACET_DATA_BUCKET": "bench-lake",
                "FACET_MODEL_REFRESH_SECONDS": "5",
            }
        )
        del emulator
        with Gateway(free_port(), workers=2, environment=environment) as gateway:
            # Warm both workers first: the first load of a model is not what this measures.
            connection = http.client.HTTPConnection(
                "127.0.0.1", int(gateway.url.split(":")[2].split("/")[0]), timeout=60
            )
            for _ in range(20):
                connection.request("GET", f"/{gateway.stage}/ready")
                connection.getresponse().read()
                connection.close()
            figures = wrk_latency(f"{gateway.url}/v1/prices", seconds)
    line(
        f"with registry refresh every 5 s, wrk {seconds} s, 8 conn: p50",
        f"{figures['p50']:.2f} ms",
        "(info)",
        None,
    )
    line("  same: p99", f"{figures['p99']:.2f} ms", "(info)", None)
    line("  same: max", f"{figures['max']:.0f} ms", "(info)", None)
    line(
        "  same: requests/s, errors",
        f"{figures['rate']:.0f}/s, {figures['errors']:.0f}",
        "(info)",
        None,
    )


def lambda_package(model_dir: Path) -> None:
    target = REPO / "build" / "lambda" / "serving"
    size = build_serving_package(target)
    line(
        "serving Lambda package (python3.12, x86_64), unzipped",
        f"{size / 1e6:.0f} MB",
        "<= 250 MB",
        size <= 250e6,
    )
    if not PYTHON_312.exists():
        line("Lambda cold start", "no python3.12", "<= 1.0 s", False)
        return
    provided = REPO / "build" / "lambda" / "runtime-provided"
    if not (provided / "boto3").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(provided), "boto3"],
            check=True,
        )
    event = json.loads((REPO / "tests" / "events" / "price_one.json").read_text())
    code = (
        "import json, sys, time\n"
        "started = time.perf_counter()\n"
        "from serving.handler import handler\n"
        "imported = time.perf_counter()\n"
        f"response = handler(json.loads({json.dumps(json.dumps(event))}), None)\n"
        "done = time.perf_counter()\n"
        "assert response['statusCode'] == 200, response\n"
        "assert 'pandas' not in sys.modules and 'sklearn' not in sys.modules\n"
        "print(imported - started, done - started)\n"
    )
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{target}:{provided}",
        "LD_LIBRARY_PATH": str(target / "lib"),
        Env.MODEL_DIR.value: str(model_dir),
        Env.DATA_BUCKET.value: "",
        "AWS_LAMBDA_FUNCTION_NAME": "facet-serving-api",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        done = subprocess.run(
            [str(PYTHON_312), "-c", code],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        total = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr[-2000:])
            line("Lambda cold start", "failed", "<= 1.0 s", False)
            return
        imported, first = (float(v) for v in done.stdout.split())
        runs.append((total, imported, first))
    total, imported, first = (float(np.median([r[i] for r in runs])) for i in range(3))
    line(
        "Lambda cold start: import handler (python3.12, package only)",
        f"{imported:.2f} s",
        "(info)",
        None,
    )
    line(
        "Lambda cold start: import + model load + first price",
        f"{first:.2f} s",
        "<= 1.0 s",
        first <= 1.0,
    )
    line("  same, including interpreter start", f"{total:.2f} s", "(info)", None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--soak-seconds", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument(
        "--refresh-only",
        action="store_true",
        help="Only the latency under load while following a refreshing registry.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = train_model(Path(tmp) / "model")
        registry_refresh_load(model_dir, min(args.soak_seconds, 30))
        if args.refresh_only:
            return
        in_process(model_dir, args.repeats)
        with Gateway.for_local_model(model_dir, free_port(), workers=2) as gateway:
            through_gateway(gateway, min(args.repeats, 1000))
            soak(gateway, args.soak_seconds)
        lambda_package(model_dir)
    FIGURES.save()


if __name__ == "__main__":
    main()
