"""The `facet` command line."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import gc
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer

from contracts.api import API_KEY_HEADER
from contracts.names import API_STAGE, RAW_BATCH_PATTERN, Env, StageNames, TrainingJobEnv, Zone
from contracts.pointer import ProductionPointer
from contracts.schema import example_diamond
from contracts.settings import Settings
from local_emulation import (
    experiments_view,
    failpoints,
    localstack,
    rehearsal,
    rest_api,
    rollout_view,
)
from local_emulation.experiments_view import plain_text
from local_emulation.gateway import Gateway
from local_emulation.processes import PortInUseError, free_port, require_free_port
from local_emulation.provision import client, serving_environment
from local_emulation.session import (
    MOTO_SERVICES_WITH_LOCALSTACK,
    SHOWN_SERVICES,
    EmulatorGoneError,
    EndpointError,
    PreflightError,
    Session,
    StateReport,
    deploy_function,
    open_session,
    recorded_environment,
    require_pipeline,
    require_promotion,
    require_scoring,
    service_backends,
)
from local_emulation.simulate import Change, catalogue_name, make_batches, make_catalogue
from local_emulation.triggers import ExecutionResult, start
from pipeline import batches, holdouts, promotion
from pipeline.lake import batch_stamp
from pipeline.report import outcome_line
from pipeline.state import RunState
from training import registry
from training.cli import train

app = typer.Typer(
    help="Facet: a diamond-pricing model on AWS, run end to end on this machine.",
    no_args_is_help=True,
    add_completion=False,
)
pipeline_app = typer.Typer(help="Run the training pipeline.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
REPORTS_DIR = Path("build/reports")
DEFAULT_PORT = 5599
DEFAULT_API_PORT = 8000


class Backend(StrEnum):
    MOTO = "moto"
    LOCALSTACK = "localstack"


@app.callback()
def facet(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the emulator does.")
    ] = False,
) -> None:
    """Facet: a diamond-pricing model on AWS, run end to end on this machine."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    if not verbose:
        for noisy in ("werkzeug", "moto", "botocore"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


app.command("train")(train)


def _progress(started: float) -> StateReport:
    """Each state of each execution, the first time it is entered, at the time it was entered
    (`started` is a time.monotonic()): a polling loop (wait, check, finished?) prints once,
    however long the job runs."""
    shown: set[tuple[str, str]] = set()
    started_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - started)

    def show(execution: str, state: str, entered: dt.datetime) -> None:
        if (execution, state) in shown:
            return
        shown.add((execution, state))
        seconds = (entered - started_at).total_seconds()
        typer.echo(f"  {seconds:6.1f} s  {execution}: {state}")

    return show


def _summarize(result: ExecutionResult) -> str:
    if result.status != "SUCCEEDED":
        return f"{result.status}: {result.error}: {result.cause}"
    output = result.output or {}
    report = output.get("report") or {}
    return str(report.get("outcome") or outcome_line(output))


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _run_batches(
    session: Session, paths: list[tuple[Path, str]], started: float
) -> list[ExecutionResult]:
    results = []
    for path, name in paths:
        typer.echo(f"landing {path} in s3://{session.deployment.data_bucket}/{Zone.RAW.prefix()}")
        for result in session.ingest(path, name, _progress(started)):
            state = RunState.model_validate(result.output or {})
            if state.deployment is not None and state.deployment.deployed:
                assert state.registration is not None
                _follow(session, registry.describe(client("sagemaker"), state.registration.arn))
            typer.echo(f"  => {_summarize(result)}  ({result.seconds:.1f} s)")
            verdict = state.validation.verdict if state.validation else None
            if verdict is not None:
                typer.echo(
                    f"     verdict on the labels: {verdict.kind} (price level "
                    f"{verdict.shift:+.1%}, spread {verdict.spread_ratio:.2f}x), "
                    f"judged in {verdict.seconds:.2f} s"
                )
            _show_report(session, result)
            results.append(result)
    return results


def _show_report(session: Session, result: ExecutionResult) -> None:
    local = session.download_report(result.name, REPORTS_DIR) / "report.md"
    if local.exists():
        typer.echo(f"     report: {local}")
    else:
        local.parent.rmdir()
        typer.echo("     (no report: nothing was done in this run)")


def _approve_on_screen(session: Session, results: list[ExecutionResult]) -> None:
    """The demo plays the person who approves a candidate waiting after a market shift."""
    for result in results:
        state = RunState.model_validate(result.output or {})
        if state.evaluation is None or state.evaluation.decision != "pending":
            continue
        assert state.registration is not None
        version = state.registration.version
        typer.echo(f"  a person looks at the report and approves: facet approve {version}")
        target = registry.find_version(_records(session), version)
        approved = registry.set_status(
            client("sagemaker"),
            target,
            registry.ApprovalStatus.APPROVED,
            "Approved: the demo's operator accepted the market shift",
            keep_reason=True,
        )
        if _follow(session, approved):
            typer.echo(f"  => v{version} is production")


def print_models(session: Session) -> None:
    records = registry.list_packages(client("sagemaker"), session.deployment.model_package_group)
    current = registry.read_pointer(client("ssm"), session.deployment.names.production_parameter)
    if not records:
        typer.echo("The registry is empty: no model has been trained yet.")
    else:
        typer.echo(
            f"{'ver':>3}  {'name':<20} {'status':<32} {'MAPE':>6} {'RMSE':>5} {'R²':>6}  "
            f"{'recent':>6}  {'dataset':<12} reason"
        )
        for record in records:
            mape = record.metric(registry.PackageMetadata.HOLDOUT_MAPE)
            rmse = record.metric(registry.PackageMetadata.HOLDOUT_RMSE)
            r2 = record.metric(registry.PackageMetadata.HOLDOUT_R2)
            recent = record.metric(registry.PackageMetadata.RECENT_MAPE)
            status = record.status + (" (production)" if record.arn == current.arn else "")
            dataset = record.metadata.get("dataset_hash", "")[:12]
            reason = record.description or record.metadata.get("reason", "")
            recent_text = f"{recent:.2%}" if recent is not None else "—"
            name = experiments_view.plain_text(
                record.metadata.get(registry.PackageMetadata.MODEL_NAME, ""), 20
            )
            typer.echo(
                f"{record.version:>3}  {name:<20} {status:<32} {mape or 0:>6.2%} {rmse or 0:>5.0f} "
                f"{r2 or 0:>6.4f}  {recent_text:>6}  {dataset:<12} {reason}"
            )
        typer.echo(
            "(MAPE, RMSE, R²: on the frozen holdout; recent: MAPE on recent data at today's "
            "price level)"
        )
    failed = client("stepfunctions").list_executions(
        stateMachineArn=session.deployment.state_machine_arn, statusFilter="FAILED"
    )["executions"]
    if failed:
        typer.echo("\nFailed runs (production unchanged):")
        for execution in failed[:10]:
            described = client("stepfunctions").describe_execution(
                executionArn=execution["executionArn"]
            )
            typer.echo(f"  {execution['name']}: {described.get('error')}: {described.get('cause')}")


def session_gateway(
    session: Session,
    port: int,
    workers: int,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
) -> Gateway:
    """The price API's gateway in front of the session's serving function, not yet started."""
    environment = dict(os.environ) | serving_environment(session.deployment)
    # As API Gateway: invoke the serving function's alias, version by version (its weights).
    environment[Env.LOCAL_GATEWAY_FUNCTION.value] = session.deployment.names.serving_function
    if cors_origins:
        environment[Env.CORS_ALLOWED_ORIGINS.value] = ",".join(cors_origins)
    return Gateway(port, workers=workers, api_key=api_key, environment=environment)


def _key_header(api_key: str | None) -> str:
    return f" -H '{API_KEY_HEADER}: {api_key}'" if api_key else ""


def example_request(gateway: Gateway) -> str:
    body = json.dumps(example_diamond())
    return (
        f"curl -s {gateway.url}/v1/prices{_key_header(gateway.api_key)} "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def show_api(gateway: Gateway) -> None:
    """Call the API once, as a user would, and print how to call it."""
    request = urllib.request.Request(
        f"{gateway.url}/v1/prices",
        data=json.dumps(example_diamond()).encode(),
        headers={"Content-Type": "application/json"}
        | ({API_KEY_HEADER: gateway.api_key} if gateway.api_key else {}),
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        quote = json.loads(response.read())
    factors = ", ".join(f"{f['name']} ×{f['factor']:.3f}" for f in quote["explanation"]["factors"])
    typer.echo(
        f"\nPrice API (API Gateway-style, stage '{gateway.stage}') at {gateway.url}/\n"
        f"  the example stone: ${quote['price_usd']:,.2f} (range ${quote['range_usd']['low']:,.0f}–"
        f"${quote['range_usd']['high']:,.0f}) by model v{quote['model_version']}: base "
        f"${quote['explanation']['base_price_usd']:,.0f}, {factors}\n"
        f"  web page:  {gateway.url}/\n  API docs:  {gateway.url}/docs\n"
        f"  {example_request(gateway)}\n"
        f"  curl -s {gateway.url}/v1/model{_key_header(gateway.api_key)}\n"
        f"  curl -s {gateway.url}/v1/prices/batch{_key_header(gateway.api_key)} "
        "-H 'Content-Type: text/csv' "
        "--data-binary @build/batches/<file>.csv"
    )


BACKEND_HELP = (
    "moto: every service on the embedded moto. localstack: "
    + ", ".join(s for s in SHOWN_SERVICES if s not in MOTO_SERVICES_WITH_LOCALSTACK)
    + " and sts on LocalStack, with the price API on LocalStack's API Gateway; "
    + ", ".join(MOTO_SERVICES_WITH_LOCALSTACK)
    + " on the embedded moto."
)


def show_localstack_api(session: Session, stand_in: Gateway, localstack_url: str) -> None:
    """Call LocalStack's API Gateway once with a key, as a partner would, and print it."""
    names = session.deployment.names
    declared = rest_api.find(client("apigateway"), names)
    if declared is None:
        _fail(f"the REST API {names.api_name} is missing on {localstack_url}")
        return
    url = declared.invoke_url(localstack_url)
    key = declared.keys[names.api_key("jeweller-web")]
    request = urllib.request.Request(
        f"{url}/v1/prices",
        data=json.dumps(example_diamond()).encode(),
        headers={"Content-Type": "application/json", API_KEY_HEADER: key},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        quote = json.loads(response.read())
    body = json.dumps(example_diamond())
    typer.echo(
        f"\nPrice API on LocalStack's API Gateway at {url}/\n"
        f"  the example stone through it: ${quote['price_usd']:,.2f} by model "
        f"v{quote['model_version']}\n"
        f"  API key ({names.api_key('jeweller-web')}): {key}\n"
        f"  curl -s {url}/v1/prices -H '{API_KEY_HEADER}: {key}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
        f"  (without the key: 403; a body the validator refuses: 422)\n"
        f"Its integration is the Lambda stand-in at {stand_in.url}/ (LocalStack cannot run the "
        "serving Lambda without Docker), the same handler:"
    )


def _guard(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except EmulatorGoneError as error:
        _fail(str(error), code=3)
    except (
        registry.RegistryError,
        batches.BatchNotFoundError,
        holdouts.HoldoutRefreshError,
        EndpointError,
        PreflightError,
        PortInUseError,
    ) as error:
        _fail(str(error))
    except urllib.error.HTTPError as error:
        body = error.read(2000).decode("utf-8", "replace")
        _fail(f"the price API at {error.url} answered {error.code}: {body}")
    return None


STOP_REQUESTED = threading.Event()


def _request_stop(*_: object) -> None:
    STOP_REQUESTED.set()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM set STOP_REQUESTED instead of raising wherever the main thread is.
    Installed explicitly: a process started with SIGINT ignored (as some test runners and
    service managers start them) would otherwise never see Ctrl-C at all."""
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)


def _wait_for_interrupt(message: str) -> None:
    typer.echo(message)
    _stop_on_signals()
    try:
        while not STOP_REQUESTED.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


@app.command()
def demo(
    batches: Annotated[
        int, typer.Option(help="Batches to land after the first (at most 4: the story below).")
    ] = 4,
    rows: Annotated[int, typer.Option(help="Stones per batch.")] = 5000,
    keep_running: Annotated[
        bool, typer.Option("--keep-running/--exit", help="Keep the emulator up afterwards.")
    ] = True,
    port: Annotated[
        int, typer.Option(help="Port of the embedded emulator on 127.0.0.1.")
    ] = DEFAULT_PORT,
    api_port: Annotated[
        int, typer.Option(help="Port of the price API on 127.0.0.1.")
    ] = DEFAULT_API_PORT,
    backend: Annotated[
        Backend,
        typer.Option(help=BACKEND_HELP),
    ] = Backend.MOTO,
    localstack_url: Annotated[
        str,
        typer.Option(
            help="LocalStack to use; started (host mode, no Docker) if nothing answers there."
        ),
    ] = "http://127.0.0.1:4566",
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Require this x-api-key on the price API's /v1 routes, as partners see the "
            "cloud API (the web page asks for it)."
        ),
    ] = None,
    tracking: Annotated[
        bool,
        typer.Option(
            "--tracking/--no-tracking",
            help="Track every training job in a local MLflow tracking server (its URL is shown).",
        ),
    ] = True,
) -> None:
    """The whole system locally: emulator, resources, batches, pipeline runs, registry, API.

    The story: fresh appraisals become production; more fresh appraisals; the market moves
    +15 % (a market shift: the candidate that follows it waits for approval, and is approved on
    screen); a batch of shuffled prices (quarantined before any training); fresh appraisals at
    the new price level (trained and judged on their merits).
    """
    started = time.monotonic()
    story = [Change.NONE, Change.NONE, Change.PRICES, Change.SHUFFLE, Change.NONE]
    changes = story[: batches + 1]
    labels = {
        Change.NONE: "fresh appraisals",
        Change.PRICES: "the market moves: prices +15 %",
        Change.SHUFFLE: "prices shuffled between stones (corrupt labels)",
    }

    def run() -> None:
        use_localstack = localstack_url if backend is Backend.LOCALSTACK else None
        stand_in = {"api_stand_in": f"http://127.0.0.1:{api_port}/{API_STAGE}"}
        # Checked now, not when the API starts after the batches.
        require_free_port(api_port, "the price API, --api-port")
        with (
            open_session(
                port=port,
                record=True,
                fresh=external is None,
                localstack_url=use_localstack,
                provision_options=stand_in if use_localstack else None,
                tracking=tracking,
            ) as session,
            contextlib.ExitStack() as stopping,
        ):
            elapsed = time.monotonic() - started
            typer.echo(f"resources provisioned ({elapsed:.1f} s); where each service runs:")
            for service, endpoint, label in service_backends(session.labels):
                typer.echo(f"  {service:<14} {label:<16} {endpoint}")
            if session.tracking is not None:
                typer.echo(
                    f"  {'MLflow':<14} {'(local)':<16} {session.tracking.url}  "
                    "(experiments: each training job's run appears there)"
                )
            gateway = session_gateway(session, api_port, workers=2, api_key=api_key)
            stopping.callback(gateway.stop)
            directory = Path("build/batches")
            plan = make_batches(len(changes), rows=rows, changes=changes)
            for index, batch in enumerate(plan):
                level = (
                    " (at the new price level)" if index > 2 and batch.change is Change.NONE else ""
                )
                typer.echo(
                    f"\nbatch {index + 1}/{len(plan)}: {batch.name} — {labels[batch.change]}{level}"
                )
                if index == len(plan) - 1 and index > 0:
                    # The API's workers start while the last batch runs (~2.6 s of start-up off
                    # the end); not sooner: each polls the serving alias 5 times a second.
                    gateway.launch()
                results = _run_batches(session, [(batch.write(directory), batch.name)], started)
                if index == 0:
                    typer.echo(_first_production(session, started))
                _approve_on_screen(session, results)
            typer.echo("\nBatches and their verdicts:")
            print_batches(session)
            typer.echo("\nModel registry:")
            print_models(session)
            typer.echo(f"\nReports: {REPORTS_DIR}/")
            with gateway.start():
                if use_localstack:
                    show_localstack_api(session, gateway, use_localstack)
                else:
                    _bad_candidate_rolls_back(session, gateway)
                show_api(gateway)
                typer.echo(f"\ndemo took {time.monotonic() - started:.1f} s")
                if keep_running:
                    _wait_for_interrupt(
                        "\nEverything stays up. In another terminal:\n"
                        "  .venv/bin/facet models\n"
                        "  .venv/bin/facet batches\n"
                        "  .venv/bin/facet rollback 1   (rolls out at once)\n"
                        "  .venv/bin/facet rollout      (versions, weights, alarms)\n"
                        "  .venv/bin/facet experiments  (MLflow runs and their candidates)\n"
                        f"  .venv/bin/facet ingest build/batches/{plan[0].name}\n"
                        "(they find the emulator through .facet/endpoint.json). Ctrl-C to stop."
                    )

    try:
        localstack_url = localstack.normalized_url(localstack_url)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--localstack-url") from None
    backend, localstack_url, external = demo_endpoints(backend, localstack_url)
    started_localstack = None
    if backend is Backend.LOCALSTACK and not localstack.healthy(localstack_url):
        typer.echo(f"starting LocalStack {localstack.VERSION} in host mode on {localstack_url} ...")
        try:
            started_localstack = localstack.start(localstack.port_of(localstack_url))
        except (localstack.LocalStackError, subprocess.CalledProcessError) as error:
            _fail(f"LocalStack could not be started: {error}")
        else:
            typer.echo(f"  its log: {started_localstack.log} (kept after it stops)")
    try:
        _guard(run)
    finally:
        if started_localstack is not None:
            started_localstack.stop()


def demo_endpoints(backend: Backend, localstack_url: str) -> tuple[Backend, str, str | None]:
    """Where the demo's AWS calls go: (backend, LocalStack URL, an endpoint used as it is).

    AWS_ENDPOINT_URL set by the user: a LocalStack there means "--backend localstack" with that
    URL, and the variable is dropped, so nothing the demo starts sees it; anything else (e.g.
    `facet emulator` in another terminal) is used as it is, starting nothing."""
    external = os.environ.get("AWS_ENDPOINT_URL")
    if not external:
        return backend, localstack_url, None
    try:
        external = localstack.normalized_url(external)
    except ValueError as error:
        _fail(f"AWS_ENDPOINT_URL: {error}")
    if backend is Backend.MOTO and localstack.healthy(external):
        os.environ.pop("AWS_ENDPOINT_URL")
        return Backend.LOCALSTACK, external, None
    return backend, localstack_url, external


def _first_production(session: Session, started: float) -> str:
    """When the first model became production: the moment the deploy function wrote the
    production pointer, which is what serving reads (SSM's LastModifiedDate), rather than when
    its run ended, after it had written its report; both are shown."""
    ended = time.monotonic() - started
    parameter = session.deployment.names.production_parameter
    ssm = client("ssm")
    try:
        pointer = ssm.get_parameter(Name=parameter)["Parameter"]
    except ssm.exceptions.ParameterNotFound:
        return f"  no production model after the first batch ({ended:.1f} s after a cold start)"
    # the version and its time from the same read
    version = ProductionPointer.from_json(pointer["Value"]).version
    started_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ended)
    written = pointer["LastModifiedDate"]
    return (
        f"  first production model {(written - started_at).total_seconds():.1f} s after a cold "
        f"start (the production pointer named v{version}); the first batch's run, report and "
        f"all, ended at {ended:.1f} s"
    )


def _bad_candidate_rolls_back(session: Session, gateway: Gateway) -> None:
    """The demo's last act: a model that passes the gate on paper, approved while the web app
    prices stones; its canary's prices disagree with production's and CodeDeploy (the
    emulator's stand-in) rolls it back by itself."""
    names = session.deployment.names
    speedup = Settings().local_rollout_speedup
    typer.echo(
        "\nA bad candidate: a model trained on a mislabelled slice (D–G colour prices +60 %), "
        f"approved while traffic flows (canary intervals and alarm periods {speedup:g}x faster "
        "here):"
    )
    bad = rollout_view.register_mislabelled(
        names, session.deployment.artifacts_bucket, Path("build/models"), typer.echo
    )
    headers = {API_KEY_HEADER: gateway.api_key} if gateway.api_key else {}
    with rollout_view.BackgroundTraffic(gateway.port, gateway.stage, headers) as traffic:
        traffic.wait_until_flowing()  # the canary's first period sees traffic, not a trickle
        registry.set_status(
            client("sagemaker"), bad, registry.ApprovalStatus.APPROVED, "demo: approved"
        )
        typer.echo(f"  v{bad.version} approved (facet approve {bad.version})")
        _follow(session, bad)
    typer.echo(f"  {traffic.summary()}; production is unchanged.")


@app.command()
def rollout() -> None:
    """The serving alias: its versions and weights, the rollback alarms, recent rollouts."""
    _guard(
        lambda: _with_session(lambda session: rollout_view.print_rollout(session.deployment.names))
    )


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_PORT,
    tracking: Annotated[
        bool,
        typer.Option("--tracking/--no-tracking", help="Start a local MLflow tracking server."),
    ] = True,
) -> None:
    """Run the embedded emulator (moto + local compute) with Facet's resources until Ctrl-C."""

    def run() -> None:
        with open_session(port=port, record=True, fresh=True, tracking=tracking) as session:
            if session.tracking is not None:
                typer.echo(f"MLflow tracking server at {session.tracking.url}")
            _wait_for_interrupt(
                f"AWS emulator at {session.endpoint} with Facet provisioned.\n"
                "Other commands find it via .facet/endpoint.json, or: "
                f"export AWS_ENDPOINT_URL={session.endpoint}"
            )

    _guard(run)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_API_PORT,
    workers: Annotated[
        int, typer.Option(help="Worker processes (concurrent Lambda environments).")
    ] = 2,
    api_key: Annotated[
        str | None,
        typer.Option(help="Require this x-api-key on /v1 routes, as the cloud API does."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="A browser origin allowed to call the API (CORS); repeatable."),
    ] = None,
) -> None:
    """Serve the price API (API Gateway-style, stage prod) against the emulator until Ctrl-C."""
    # From the start: a Ctrl-C while the gateway starts stops it once it has started.
    _stop_on_signals()

    def run() -> None:
        with (
            open_session() as session,
            session_gateway(session, port, workers, api_key, cors_origin or []) as gateway,
        ):
            typer.echo(
                f"Price API at {gateway.url}/ (web page), {gateway.url}/docs\n"
                f"  {example_request(gateway)}"
            )
            _wait_for_interrupt("Ctrl-C to stop.")

    _guard(run)


@app.command()
def ingest(
    file: Annotated[
        Path, typer.Argument(help="CSV of appraisals to land in raw/.", exists=True, dir_okay=False)
    ],
) -> None:
    """Land a batch in raw/ (as an upload would) and run the pipeline it triggers."""
    started = time.monotonic()
    name = (
        file.name
        if batch_stamp(file.name) in file.name and file.name.startswith("diamonds_raw_")
        else (RAW_BATCH_PATTERN.format(stamp=time.strftime("%Y%m%dT%H%M%S", time.gmtime())))
    )

    def run() -> None:
        with open_session() as session:
            require_pipeline(session.deployment)
            _run_batches(session, [(file, name)], started)

    _guard(run)


@pipeline_app.command("run")
def pipeline_run(
    force: Annotated[bool, typer.Option(help="Retrain even if no drift is found.")] = False,
) -> None:
    """Start a run as the daily schedule does: check drift, retrain if the data moved."""
    started = time.monotonic()

    def run() -> None:
        with open_session() as session:
            require_pipeline(session.deployment)
            arn = start(
                client("stepfunctions"),
                session.deployment.state_machine_arn,
                {"trigger": "schedule", "force": force},
            )
            result = session.wait(arn, _progress(started))
            typer.echo(f"  => {_summarize(result)}")
            _show_report(session, result)

    _guard(run)


@app.command()
def experiments(
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking server: a URL, or a SageMaker MLflow tracking server's ARN. "
            "Default: the one a running `facet demo` or `facet emulator` started."
        ),
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Whose experiment (facet-<stage>); default FACET_STAGE.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Newest runs to show.")] = 10,
) -> None:
    """Training runs (MLflow): each job's winner, its candidates and their metrics."""
    recorded = recorded_environment() or {}
    uri = (
        tracking_uri
        or os.environ.get(TrainingJobEnv.TRACKING_URI.value)
        or recorded.get(TrainingJobEnv.TRACKING_URI.value)
    )
    if not uri:
        _fail(
            "no MLflow tracking server: start `facet demo` or `facet emulator` (they start one), "
            "or pass --tracking-uri (a URL or a SageMaker MLflow tracking server ARN)"
        )
        return
    try:
        experiment = StageNames(stage or Settings().stage).experiment
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--stage") from None
    try:
        experiments_view.print_experiments(uri, experiment, limit, typer.echo)
    except Exception as error:  # the server's answer, whatever it is, as one line
        _fail(f"the tracking server at {uri} did not answer: {type(error).__name__}: {error}")


@app.command()
def models() -> None:
    """The registry: every version, its status, metrics, dataset, and why it was (not) promoted."""
    _guard(lambda: _with_session(print_models))


def _with_session(action: Callable[[Session], None]) -> None:
    with open_session(provision_resources=False) as session:
        action(session)


def _announce(session: Session, record: registry.PackageRecord) -> None:
    event = promotion.state_change_event(record, session.deployment.names.model_package_group)
    response = client("lambda").invoke(
        FunctionName=deploy_function(session.deployment), Payload=json.dumps(event).encode()
    )
    if response.get("FunctionError"):
        _fail(f"the deploy function failed: {response['Payload'].read().decode()}")


def _follow(session: Session, record: registry.PackageRecord, timeout: float = 90) -> bool:
    """Wait for an approval's outcome: the registry's state-change event reaches the deploy
    function asynchronously, as EventBridge delivers it in AWS, and a rollout (canary) follows.
    True: `record` is production; False: its rollout was rolled back."""
    outcome = rollout_view.follow(session.deployment.names, record, timeout)
    if outcome is None:
        _fail(
            f"v{record.version} is approved, but production did not follow within "
            f"{timeout:.0f} s: is the deploy function failing? (facet models, facet rollout)"
        )
    return bool(outcome)


def _records(session: Session) -> list[registry.PackageRecord]:
    return registry.list_packages(client("sagemaker"), session.deployment.model_package_group)


@app.command()
def rollback(
    version: Annotated[int, typer.Argument(help="The model version to make production again.")],
    force: Annotated[
        bool,
        typer.Option(help="Also make a version production that was never approved."),
    ] = False,
) -> None:
    """Approve an earlier version again; serving follows the latest approved one."""

    def run(session: Session) -> None:
        records = _records(session)
        target = registry.find_version(records, version)
        if not registry.ever_approved(target) and not force:
            _fail(
                f"v{version} was never approved ({target.status}: {target.description}); a "
                "rollback returns to a version that was production once. Use `facet approve "
                f"{version}` for a pending version, or --force."
            )
        require_promotion(session.deployment)
        current = registry.read_pointer(
            client("ssm"), session.deployment.names.production_parameter
        )
        reason = f"Rollback to v{version} requested by the operator" + (
            f" (was v{current.version})" if current.arn else ""
        )
        failpoints.reach("rollback:checked")
        approved = registry.set_status(
            client("sagemaker"), target, registry.ApprovalStatus.APPROVED, reason, keep_reason=True
        )
        failpoints.reach("rollback:written")
        if target.status == registry.ApprovalStatus.APPROVED:
            # Still Approved: no status change, so the registry emits no event. Deliver the one
            # a re-approval means to the deploy function, as EventBridge would.
            _announce(session, approved)
        _follow(session, approved)
        typer.echo(f"v{version} is production again. {reason}.")
        print_models(session)

    _guard(lambda: _with_session(run))


@app.command()
def approve(
    version: Annotated[int, typer.Argument(help="The version waiting for approval.")],
    reason: Annotated[
        str, typer.Option(help="Why, for the registry (kept beside the pipeline's evidence).")
    ] = "approved by the operator",
) -> None:
    """Approve a version waiting for a person (PendingManualApproval): it becomes production."""

    def run(session: Session) -> None:
        target = registry.find_version(_records(session), version)
        if target.status != registry.ApprovalStatus.PENDING:
            _fail(
                f"v{version} is {target.status}, not waiting for approval; to return to an "
                f"earlier production version use `facet rollback {version}`."
            )
        require_promotion(session.deployment)
        approved = registry.set_status(
            client("sagemaker"),
            target,
            registry.ApprovalStatus.APPROVED,
            f"Approved: {reason}",
            keep_reason=True,
        )
        if _follow(session, approved):
            typer.echo(f"v{version} approved and is production.")
        print_models(session)

    _guard(lambda: _with_session(run))


@app.command()
def reject(
    version: Annotated[int, typer.Argument(help="The version waiting for approval.")],
    reason: Annotated[str, typer.Option(help="Why it is rejected (recorded in the registry).")],
) -> None:
    """Reject a version waiting for a person (PendingManualApproval); production is unchanged."""

    def run(session: Session) -> None:
        target = registry.find_version(_records(session), version)
        if target.status != registry.ApprovalStatus.PENDING:
            _fail(f"v{version} is {target.status}, not waiting for approval.")
        registry.set_status(
            client("sagemaker"),
            target,
            registry.ApprovalStatus.REJECTED,
            f"Rejected by the operator: {reason}",
            keep_reason=True,
        )
        typer.echo(f"v{version} rejected; production is unchanged.")
        print_models(session)

    _guard(lambda: _with_session(run))


batches_app = typer.Typer(
    help="The labelled batches: their verdicts, and which ones train.", invoke_without_command=True
)
app.add_typer(batches_app, name="batches")


def print_batches(session: Session) -> None:
    records = batches.load_all(client("s3"), session.deployment.data_bucket)
    if not records:
        typer.echo("No batch has arrived yet.")
        return
    typer.echo(f"{'batch':<36} {'rows':>6}  {'verdict':<13} {'level':>7}  {'trains':<6} why")
    for record in records:
        trains = "yes" if record.trainable else "no"
        why = record.excluded_reason if record.excluded else record.verdict_reason
        typer.echo(
            f"{record.key.rsplit('/', 1)[-1]:<36} {record.accepted_rows:>6}  "
            f"{record.verdict:<13} {math.expm1(record.market_level):>+7.1%}  {trains:<6} {why}"
        )


@batches_app.callback()
def batches_list(context: typer.Context) -> None:
    """Every batch that arrived: accepted rows, verdict, price level, whether it trains."""
    if context.invoked_subcommand is None:
        _guard(lambda: _with_session(print_batches))


@batches_app.command("exclude")
def batches_exclude(
    key: Annotated[str, typer.Argument(help="The batch: its S3 key, file name or stamp.")],
    reason: Annotated[str, typer.Option(help="Why it must not train (recorded in lineage).")],
) -> None:
    """Keep a batch out of every future training set (recorded on the batch and in lineage)."""

    def run(session: Session) -> None:
        s3, bucket = client("s3"), session.deployment.data_bucket
        record = batches.find(batches.load_all(s3, bucket), key)
        if record.excluded:
            _fail(f"{record.key} is excluded already: {record.excluded_reason}")
        batches.exclude(s3, bucket, record, reason, who="operator (facet batches exclude)")
        typer.echo(f"{record.key} is excluded from every future training set: {reason}")
        print_batches(session)

    _guard(lambda: _with_session(run))


holdout_app = typer.Typer(help="The frozen holdout every model is judged on.", no_args_is_help=True)
app.add_typer(holdout_app, name="holdout")


@holdout_app.command("refresh")
def holdout_refresh(
    min_rows: Annotated[
        int, typer.Option(help="Refuse with fewer recent rows than this.")
    ] = holdouts.MIN_ROWS,
) -> None:
    """Freeze a new frozen holdout from the recent data at today's price level (deliberately;
    the old version is archived and recorded in lineage)."""

    def run(session: Session) -> None:
        manifest = holdouts.refresh(client("s3"), session.deployment.data_bucket, min_rows=min_rows)
        typer.echo(
            f"Frozen holdout v{manifest.version}: {manifest.rows} stones at price level "
            f"{math.expm1(manifest.market_level):+.1%} from {manifest.source}. Models judged on "
            "earlier versions are compared with new ones only after both are scored on it."
        )

    _guard(lambda: _with_session(run))


class StageChoice(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


@app.command()
def rehearse(
    stage: Annotated[StageChoice, typer.Option(help="The stage to synthesize and deploy.")] = (
        StageChoice.DEV
    ),
    cdk_out: Annotated[
        Path | None,
        typer.Option(
            help="A cloud assembly to deploy (synthesized with -c account="
            f"{localstack.ACCOUNT} -c region=us-east-1); default: `cdk synth` it now.",
            file_okay=False,
        ),
    ] = None,
    localstack_url: Annotated[
        str | None,
        typer.Option(help="A LocalStack to deploy into; default: start one, stop it after."),
    ] = None,
) -> None:
    """Rehearse `cdk deploy`: the synthesized stacks through CloudFormation into host-mode
    LocalStack (bootstrap, file assets, stacks in dependency order), then read back what
    matters and say what LocalStack's free edition could not create."""
    started = time.monotonic()
    region = localstack.CREDENTIALS["AWS_DEFAULT_REGION"]
    if cdk_out is None:
        cdk_out = Path("build/rehearsal") / stage.value / "cdk.out"
        typer.echo(f"cdk synth -c stage={stage.value} -c account={localstack.ACCOUNT} ...")
        try:
            rehearsal.synthesize(cdk_out, stage.value, localstack.ACCOUNT, region)
        except rehearsal.RehearsalError as error:
            _fail(str(error))
        typer.echo(f"  {cdk_out}/ ({time.monotonic() - started:.1f} s)")
    running = None
    try:
        url = localstack.normalized_url(localstack_url) if localstack_url else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--localstack-url") from None
    if url is None or not localstack.healthy(url):
        port = localstack.port_of(url) if url else free_port()
        typer.echo(f"starting LocalStack {localstack.VERSION} in host mode on port {port} ...")
        try:
            running = localstack.start(port, timeout=120)
        except (localstack.LocalStackError, subprocess.CalledProcessError) as error:
            _fail(f"LocalStack could not be started: {error}")
            return
        url = running.url
        typer.echo(f"  its log: {running.log}")
    assert url is not None
    endpoint = url

    def clients(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            aws_access_key_id=localstack.CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=localstack.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=region,
        )

    try:
        result = rehearsal.rehearse(
            clients,
            endpoint,
            cdk_out,
            stage=stage.value,
            account=localstack.ACCOUNT,
            region=region,
            on_stack=lambda name, seconds: typer.echo(
                f"  {name:<34} CREATE_COMPLETE  {seconds:5.1f} s"
            ),
        )
    except rehearsal.RehearsalError as error:
        _fail(f"the rehearsal failed: {error}")
        return
    finally:
        if running is not None:
            running.stop()
    typer.echo("\nSkipped (LocalStack's free edition, no Docker engine):")
    for item in result.skipped:
        typer.echo(f"  - {item.what}: {item.why}")
    typer.echo("\nRead back through the service APIs:")
    for check in result.checks:
        mark = "gap " if check.localstack_gap else "ok  " if check.ok else "FAIL"
        typer.echo(f"  {mark} {check.what}: {check.detail}")
    failed = [check for check in result.checks if not check.ok]
    typer.echo(
        f"\n{len(result.stacks)} stacks deployed, {len(result.checks) - len(failed)}/"
        f"{len(result.checks)} read-backs as declared "
        f"({sum(c.localstack_gap for c in result.checks)} LocalStack gaps), "
        f"{len(result.skipped)} skipped; "
        f"{time.monotonic() - started:.1f} s"
    )
    if failed:
        raise typer.Exit(1)


def print_scoring(result: ExecutionResult) -> None:
    """The run's summary (from the lake: shown as plain text)."""
    summary = (result.output or {}).get("summary") or {}
    reasons = ", ".join(
        f"{plain_text(code, 40)} {int(count)}" for code, count in summary.get("reasons", {}).items()
    )
    typer.echo(
        f"  => {int(summary.get('priced', 0)):,} of {int(summary.get('rows', 0)):,} stones priced "
        f"by model version {plain_text(summary.get('model_version'), 10)}"
        + (" with explanations" if summary.get("explain") else " (prices only)")
        + f"; {int(summary.get('quarantined', 0)):,} quarantined"
        + (f" ({reasons})" if reasons else "")
        + f"; {plain_text(summary.get('seconds'), 12)} s"
    )
    for kind, location in (summary.get("results") or {}).items():
        if location:
            typer.echo(f"     {plain_text(kind, 12):<12} {plain_text(location, 300)}")


@app.command()
def score(
    file: Annotated[
        Path,
        typer.Argument(
            help="Catalogue CSV: carat,cut,color,clarity,depth,table,x,y,z.",
            exists=True,
            dir_okay=False,
        ),
    ],
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Explain every price (base x factors).")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run.")] = 3600,
) -> None:
    """Land a catalogue in scoring/incoming/ and price it with a batch transform job."""
    started = time.monotonic()

    def run() -> None:
        with open_session() as session:
            require_scoring(session.deployment)
            typer.echo(f"landing {file} in s3://{session.deployment.data_bucket}/scoring/incoming/")
            result = session.score(file, _progress(started), explain=explain, timeout=timeout)
            if result.status != "SUCCEEDED":
                hint = (
                    " (no emulator was running: this command started an empty one; run "
                    "`facet demo` or `facet emulator` in another terminal first)"
                    if session.embedded is not None
                    else ""
                )
                # The cause names the uploaded key, which whoever uploads chooses.
                cause = plain_text(result.cause, 2000)
                _fail(f"scoring failed: {plain_text(result.error, 100)}: {cause}{hint}", 1)
            print_scoring(result)

    _guard(run)


@app.command()
def simulate(
    batches: Annotated[int, typer.Option(help="How many batches.")] = 3,
    rows: Annotated[int, typer.Option(help="Stones per batch.")] = 5000,
    drift: Annotated[
        Change,
        typer.Option(
            help="Change every batch: prices (+15%), sizes (larger stones), "
            "shuffle (corrupt prices), none."
        ),
    ] = Change.NONE,
    output: Annotated[Path, typer.Option(help="Directory for the CSV files.")] = Path(
        "build/batches"
    ),
    start_index: Annotated[
        int, typer.Option(help="Index of the first batch (dates follow it).")
    ] = 0,
    land: Annotated[
        bool, typer.Option("--ingest", help="Also land each batch and run the pipeline.")
    ] = False,
    catalogue: Annotated[
        int | None,
        typer.Option(
            help="Instead of batches: write one unlabelled catalogue of this many stones "
            "(for `facet score`).",
            min=1,
        ),
    ] = None,
) -> None:
    """Write deterministic dated batches diamonds_raw_YYYYMMDDTHHMMSS.csv (optionally drifted),
    or with --catalogue N, an unlabelled catalogue of N stones."""
    if catalogue is not None:
        path = output / catalogue_name(catalogue)
        output.mkdir(parents=True, exist_ok=True)
        make_catalogue(catalogue).to_csv(path, index=False)
        typer.echo(str(path))
        return
    plan = make_batches(batches, rows=rows, changes=[drift] * batches, start=start_index)
    paths = [(batch.write(output), batch.name) for batch in plan]
    for path, _ in paths:
        typer.echo(str(path))
    if land:
        started = time.monotonic()

        def run() -> None:
            with open_session() as session:
                _run_batches(session, paths, started)

        _guard(run)


def main() -> None:
    # Registered first, so it runs last: every handler, thread and child has finished by then.
    # At exit the interpreter garbage-collects what is left, an emulator's whole heap (moto's
    # state, botocore's models, frames): 1.2 s of `facet demo`'s exit. Frozen, it is skipped; the
    # memory goes back with the process.
    atexit.register(gc.freeze)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
