"""The emulator's Lambda execution environments are reused as Lambda reuses them."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.packaging import LOCAL_DISTRIBUTIONS_FILE, image_distributions
from local_emulation.lambda_executor import ConcurrencyLimitError, Invocation, LambdaExecutor

HANDLER = """
import os, time

CALLS = 0  # module-level state: kept between invocations of one environment


def handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("exit"):
        os._exit(3)
    if event.get("set"):
        os.environ["LEAKED"] = event["set"]
    time.sleep(event.get("sleep", 0))
    return {
        "calls": CALLS,
        "pid": os.getpid(),
        "colour": os.environ.get("COLOUR"),
        "leaked": os.environ.get("LEAKED"),
        "version": VERSION,
    }
"""


def package(version: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # A fixed timestamp: the same version must be the same bytes (the same code hash), even
        # when two packages are built in different seconds.
        entry = zipfile.ZipInfo("app.py", date_time=(2026, 1, 1, 0, 0, 0))
        archive.writestr(entry, HANDLER + f"\nVERSION = {version}\n")
    return buffer.getvalue()


def invocation(name: str = "f", version: int = 1, **overrides: object) -> Invocation:
    values: dict[str, object] = {
        "function_name": name,
        "function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        "handler": "app.handler",
        "code": package(version),
        "environment": {"COLOUR": name},
        "timeout_seconds": 10.0,
        "memory_mb": 128,
    }
    return Invocation(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[LambdaExecutor]:
    running = LambdaExecutor(tmp_path, {"AWS_DEFAULT_REGION": "us-east-1"})
    yield running
    running.close()


def call(executor: LambdaExecutor, what: Invocation, **event: object) -> dict[str, object]:
    result = executor.invoke(what, event)
    assert not result.is_error, result.payload
    return dict(json.loads(result.payload)) | {"cold": result.cold_start}


def test_an_environment_is_reused_with_its_module_state(executor: LambdaExecutor) -> None:
    first, second = call(executor, invocation()), call(executor, invocation())
    assert (first["calls"], first["cold"]) == (1, True)
    assert (second["calls"], second["cold"]) == (2, False)
    assert first["pid"] == second["pid"]
    assert executor.cold_starts["f"] == 1


def test_new_code_starts_a_new_environment_and_retires_the_old(
    executor: LambdaExecutor,
) -> None:
    old = call(executor, invocation(version=1))
    new = call(executor, invocation(version=2))
    assert (new["version"], new["calls"], new["cold"]) == (2, 1, True)
    assert new["pid"] != old["pid"]
    assert executor.environments("f") == 1


def test_a_configuration_change_starts_a_new_environment(executor: LambdaExecutor) -> None:
    call(executor, invocation())
    changed = call(executor, invocation(environment={"COLOUR": "blue"}))
    assert (changed["colour"], changed["cold"]) == ("blue", True)


def test_functions_never_share_an_environment_or_its_variables(
    executor: LambdaExecutor,
) -> None:
    red = call(executor, invocation("red"), set="from red")
    blue = call(executor, invocation("blue"))
    assert (red["colour"], blue["colour"]) == ("red", "blue")
    assert blue["leaked"] is None and red["pid"] != blue["pid"]
    assert call(executor, invocation("red"))["leaked"] == "from red"  # its own, kept


def test_functions_with_the_same_code_and_configuration_still_get_their_own_environments(
    executor: LambdaExecutor,
) -> None:
    same = {"environment": {"COLOUR": "shared"}}
    first = call(executor, invocation("first", **same))
    second = call(executor, invocation("second", **same))
    assert second["cold"] is True and second["pid"] != first["pid"]
    assert executor.cold_starts == {"first": 1, "second": 1}


def test_a_crash_discards_the_environment(executor: LambdaExecutor) -> None:
    call(executor, invocation())
    crashed = executor.invoke(invocation(), {"exit": True})
    assert crashed.is_error
    assert json.loads(crashed.payload)["errorType"] == "Runtime.ExitError"
    assert executor.environments("f") == 0
    after = call(executor, invocation())
    assert (after["calls"], after["cold"]) == (1, True)


def test_a_timeout_discards_the_environment(executor: LambdaExecutor) -> None:
    timed_out = executor.invoke(invocation(timeout_seconds=1.0), {"sleep": 5})
    assert json.loads(timed_out.payload)["errorType"] == "Sandbox.Timedout"
    assert executor.environments("f") == 0


def test_concurrent_invocations_open_more_environments_up_to_the_reserved_concurrency(
    executor: LambdaExecutor,
) -> None:
    results: list[dict[str, object]] = []
    threads = [
        threading.Thread(target=lambda: results.append(call(executor, invocation(), sleep=1.5)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r["pid"] for r in results}) == 2
    assert executor.cold_starts["f"] == 2

    limited = invocation("g", reserved_concurrency=1)
    busy = threading.Thread(target=lambda: call(executor, limited, sleep=1.5))
    busy.start()
    time.sleep(0.5)
    with pytest.raises(ConcurrencyLimitError, match="reserved concurrency of 1"):
        executor.invoke(limited, {})
    busy.join()


def test_closing_while_an_invocation_runs_answers_it_with_an_exit_error(
    executor: LambdaExecutor,
) -> None:
    # The emulator stops (Ctrl-C) while a pipeline step runs: the step gets Lambda's error for
    # a runtime that exited, and nothing raises in the thread that invoked it.
    call(executor, invocation("idle"))
    outcomes: list[object] = []

    def invoke() -> None:
        try:
            outcomes.append(executor.invoke(invocation(), {"sleep": 30}))
        except Exception as error:  # the test reports what escaped
            outcomes.append(error)

    running = threading.Thread(target=invoke)
    running.start()
    deadline = time.monotonic() + 30
    while executor.environments("f") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)

    executor.close()
    running.join(30)

    (outcome,) = outcomes
    assert not isinstance(outcome, Exception), repr(outcome)
    assert outcome.is_error  # type: ignore[attr-defined]
    assert json.loads(outcome.payload)["errorType"] == "Runtime.ExitError"  # type: ignore[attr-defined]
    assert executor.environments() == 0


def test_an_idle_environment_is_stopped(tmp_path: Path) -> None:
    executor = LambdaExecutor(tmp_path, {}, idle_seconds=0.5)
    try:
        call(executor, invocation())
        time.sleep(1)
        assert call(executor, invocation())["cold"] is True
    finally:
        executor.close()


def test_beyond_the_cap_the_least_recently_used_idle_environment_stops(tmp_path: Path) -> None:
    executor = LambdaExecutor(tmp_path, {}, max_environments=2)
    try:
        first = call(executor, invocation("a"))
        call(executor, invocation("b"))
        call(executor, invocation("a"))  # b is now the least recently used
        call(executor, invocation("c"))
        assert (executor.environments("a"), executor.environments("b")) == (1, 0)
        assert executor.environments() == 2
        again = call(executor, invocation("a"))
        assert (again["pid"], again["cold"]) == (first["pid"], False)
    finally:
        executor.close()


IMPORTER = """
import importlib, sys


def handler(event, context):
    try:
        importlib.import_module(event["module"])
    except ModuleNotFoundError as error:
        return {"imported": False, "error": str(error)}
    return {"imported": True, "sklearn_loaded": "sklearn" in sys.modules}
"""


def importer(distributions: list[str] | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("app.py", date_time=(2026, 1, 1, 0, 0, 0)), IMPORTER)
        if distributions is not None:
            listing = zipfile.ZipInfo(LOCAL_DISTRIBUTIONS_FILE, date_time=(2026, 1, 1, 0, 0, 0))
            archive.writestr(listing, "\n".join(distributions))
    return buffer.getvalue()


def test_a_function_imports_only_what_its_image_has(executor: LambdaExecutor) -> None:
    # GIVEN a function whose image installs lightgbm only, on a machine that also has scikit-learn
    image = invocation("image", code=importer(["lightgbm"]))
    # WHEN it imports lightgbm, one of its dependencies, and scikit-learn
    lightgbm = call(executor, image, module="lightgbm")
    numpy = call(executor, image, module="numpy")
    sklearn = call(executor, image, module="sklearn")
    # THEN lightgbm loads without its optional scikit-learn, as in the image; numpy comes with it;
    # scikit-learn is not there, and the error says why
    assert lightgbm["imported"] is True and lightgbm["sklearn_loaded"] is False
    assert numpy["imported"] is True
    assert sklearn["imported"] is False
    assert "not in the function's image or package" in str(sklearn["error"])
    # AND a zip that names no distributions sees everything installed (the test's control)
    everything = call(executor, invocation("plain", code=importer(None)), module="sklearn")
    assert everything["imported"] is True


PROBE = """
import os, sys

# What the environment had imported before this module (the function's code) was loaded.
PRELOADED = sorted(name for name in ("numpy", "pandas", "boto3") if name in sys.modules)


def handler(event, context):
    return {"preloaded": PRELOADED, "pid": os.getpid(), "image": os.getppid()}
"""


def probe(version: int) -> Invocation:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entry = zipfile.ZipInfo("probe.py", date_time=(2026, 1, 1, 0, 0, 0))
        archive.writestr(entry, PROBE + f"\nVERSION = {version}\n")
    return invocation("probe", handler="probe.handler", code=buffer.getvalue())


def _gone(pid: int, within: float = 10.0) -> bool:
    """Whether the process ended (exited, or a zombie its parent has yet to reap)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_cold_start_forks_the_runtime_image_with_its_libraries_imported(
    executor: LambdaExecutor,
) -> None:
    # GIVEN a function whose runtime image was started when the function was created
    executor.prepare(probe(0).code)
    # WHEN new environments start while the image imports its libraries, one at a time
    deadline, seen = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        environment = call(executor, probe(len(seen)))
        seen.append(environment)
        if environment["preloaded"] == ["boto3", "numpy", "pandas"]:
            break
        time.sleep(0.2)
    # THEN each one is a child of the same image, and once the image has imported them a new
    # environment starts with pandas, NumPy and boto3 loaded but its function's module fresh
    assert seen[-1]["preloaded"] == ["boto3", "numpy", "pandas"], seen
    assert all(environment["cold"] for environment in seen)
    assert {environment["image"] for environment in seen} == {seen[0]["image"]}
    assert seen[0]["image"] != os.getpid()


def test_closing_the_executor_stops_its_runtime_images_and_their_environments(
    tmp_path: Path,
) -> None:
    executor = LambdaExecutor(tmp_path, {})
    environment = call(executor, probe(1))
    executor.close()
    assert _gone(int(environment["pid"])) and _gone(int(environment["image"]))


def test_a_runtime_image_that_died_is_started_again(executor: LambdaExecutor) -> None:
    first = call(executor, probe(1))
    os.kill(int(first["image"]), signal.SIGKILL)
    assert _gone(int(first["image"]))
    # its environment lives on (Lambda's do not depend on one another) and is reused
    again = call(executor, probe(1))
    assert (again["pid"], again["cold"]) == (first["pid"], False)
    # a new environment comes from a new image
    other = call(executor, invocation("other"))
    assert other["cold"] is True
    fresh = call(executor, probe(2))
    assert fresh["image"] != first["image"]
    executor.close()
    assert _gone(int(first["pid"])) and _gone(int(fresh["pid"]))


def test_the_pipeline_images_distributions_are_read_from_its_dockerfile(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM public.ecr.aws/lambda/python:3.12\n"
        "RUN pip install --no-cache-dir -c /tmp/constraints.txt numpy pandas \\\n"
        "      lightgbm && dnf install -y libgomp\n"
        "RUN pip install -r /tmp/requirements.txt --no-deps mlflow-skinny\n"
    )
    assert image_distributions(dockerfile) == [
        "numpy",
        "pandas",
        "lightgbm",
        "mlflow-skinny",
        "boto3",  # the Lambda base image's own
    ]
    assert "lightgbm" in image_distributions() and "scikit-learn" not in image_distributions()
