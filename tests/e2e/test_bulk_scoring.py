"""Bulk scoring end to end on the embedded emulator: a catalogue landed under scoring/incoming/
runs the scoring flow's ASL, whose batch transform job runs the serving image's hosting entry
point in local worker processes; the results are joined in the lake."""

from __future__ import annotations

import io
import json
import math
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from contracts.compute import host_cpus
from contracts.names import SCORING_RESULTS_PREFIX, SCORING_WORK_PREFIX, StageNames
from contracts.schema import FEATURE_NAMES, scored_columns
from local_emulation.cli import app, session_gateway
from local_emulation.processes import free_port
from local_emulation.provision import client
from local_emulation.session import Session, open_session
from local_emulation.simulate import make_batches, make_catalogue
from local_emulation.triggers import start, wait_for
from pipeline.lake import list_keys
from training.validate import ROW_COLUMN

pytestmark = pytest.mark.slow
# A stage of its own: moto's backends are per process (see test_experiment_tracking).
STAGE = "scoretest"
NAMES = StageNames(STAGE)
GOOD_ROWS = 49_983
# One bad line per way a partner's file goes wrong, at known places (1-based data rows).
BAD_LINES = {
    3: "0.3,Superb,E,SI1,61.0,55.0,4.3,4.3,2.6",
    10: "0.3,Ideal,Z,SI1,61.0,55.0,4.3,4.3,2.6",
    100: "0.3,Ideal,E,XX,61.0,55.0,4.3,4.3,2.6",
    1_000: "-1,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6",
    2_000: "abc,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6",
    3_000: "0.3,Ideal,E,SI1,,55.0,4.3,4.3,2.6",
    4_000: "0.3,Ideal,E,SI1,61.0,1000,4.3,4.3,2.6",
    5_000: "0.3,Ideal,E,SI1,61.0,55.0,0,4.3,2.6",
    6_000: "0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6,7",
    7_000: "0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3",
    8_000: "0.3,Ideal,E,SI1,61.0,55.0,4.3,nan,2.6",
    9_000: "0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3,-2.6",
    20_000: "50,Ideal,E,SI1,61.0,55.0,4.3,4.3,2.6",
    30_000: "0.3,,E,SI1,61.0,55.0,4.3,4.3,2.6",
    40_000: "0.3,Ideal,E,SI1,61.0,55.0,4.3,4.3,inf",
    45_000: "0.3,Ideal,e,SI1,61.0,55.0,4.3,4.3,2.6x",
    50_000: "0.3,Ideal,E,SI1,61.0,-55.0,4.3,4.3,2.6",
}


def _catalogue(path: Path) -> pd.DataFrame:
    """GOOD_ROWS valid stones with BAD_LINES among them; the good ones, with their row numbers."""
    good = make_catalogue(GOOD_ROWS, seed=7)
    good_lines = iter(good.to_csv(index=False, header=False).splitlines())
    lines, numbers = [",".join(FEATURE_NAMES)], []
    for number in range(1, GOOD_ROWS + len(BAD_LINES) + 1):
        if number in BAD_LINES:
            lines.append(BAD_LINES[number])
        else:
            lines.append(next(good_lines))
            numbers.append(number)
    path.write_text("\n".join(lines) + "\n")
    return good.assign(**{ROW_COLUMN: numbers})


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """A stage with a model in production: one batch through the training pipeline."""
    # Scoring runs the same code for any model; exact explanations cost time per tree, and this
    # file's time was mostly the default model's ~400 trees explaining 50,000 stones twice.
    options = {"stage": STAGE, "models": "lightgbm", "hyperparameters": {"lgb_max_rounds": "100"}}
    with open_session(fresh=True, provision_options=options) as session:
        batch = make_batches(1, rows=3000)[0]
        path = batch.write(tmp_path_factory.mktemp("batches"))
        (result,) = session.ingest(path, batch.name)
        assert result.status == "SUCCEEDED", result.cause
        assert session.embedded is not None
        session.embedded.settle()
        yield session


@pytest.fixture(scope="module")
def scored(
    production: Session, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, object], pd.DataFrame]:
    path = tmp_path_factory.mktemp("catalogues") / "partner_catalogue.csv"
    good = _catalogue(path)
    result = production.score(path, None, explain=True)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output is not None
    return result.output, good


def _read(session: Session, key: str) -> bytes:
    body: bytes = (
        client("s3").get_object(Bucket=session.deployment.data_bucket, Key=key)["Body"].read()
    )
    return body


def test_every_row_is_priced_or_quarantined_with_a_reason(
    production: Session, scored: tuple[dict[str, object], pd.DataFrame]
) -> None:
    output, good = scored
    summary = output["summary"]
    assert isinstance(summary, dict)
    assert summary["status"] == "Succeeded"
    assert (summary["rows"], summary["priced"], summary["quarantined"]) == (50_000, 49_983, 17)
    assert summary["model_version"] == 1 and summary["explain"] is True
    name = summary["name"]
    quarantined = pd.read_csv(
        io.BytesIO(_read(production, f"{SCORING_RESULTS_PREFIX}{name}/quarantined.csv"))
    )
    assert sorted(quarantined[ROW_COLUMN]) == sorted(BAD_LINES)
    assert quarantined["reasons"].str.len().min() > 0
    assert sum(summary["reasons"].values()) >= 17
    prices = pd.read_parquet(
        io.BytesIO(_read(production, f"{SCORING_RESULTS_PREFIX}{name}/prices.parquet"))
    )
    assert list(prices[ROW_COLUMN]) == list(good[ROW_COLUMN])
    pd.testing.assert_frame_equal(
        prices.loc[:, list(FEATURE_NAMES)], good.loc[:, list(FEATURE_NAMES)], check_dtype=False
    )
    csv = pd.read_csv(io.BytesIO(_read(production, f"{SCORING_RESULTS_PREFIX}{name}/prices.csv")))
    assert len(csv) == GOOD_ROWS
    assert list(csv.columns) == [ROW_COLUMN, *FEATURE_NAMES, *scored_columns(True)]


def test_prices_equal_the_rest_api_to_the_cent_and_explanations_multiply_back(
    production: Session, scored: tuple[dict[str, object], pd.DataFrame]
) -> None:
    output, good = scored
    summary = output["summary"]
    assert isinstance(summary, dict)
    prices = pd.read_parquet(
        io.BytesIO(_read(production, f"{SCORING_RESULTS_PREFIX}{summary['name']}/prices.parquet"))
    )
    from_api: list[float] = []
    with session_gateway(production, free_port(), workers=1) as gateway:
        for start in range(0, GOOD_ROWS, 10_000):
            body = good.iloc[start : start + 10_000].loc[:, list(FEATURE_NAMES)].to_csv(index=False)
            request = urllib.request.Request(
                f"{gateway.url}/v1/prices/batch",
                data=body.encode(),
                headers={"Content-Type": "text/csv"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
            assert answer["model_version"] == summary["model_version"]
            from_api += [p["price_usd"] for p in answer["quotes"]]
    assert len(from_api) == GOOD_ROWS
    assert prices["price_usd"].tolist() == from_api
    factors = [c for c in prices.columns if c.startswith("factor_")]
    assert len(factors) >= 5
    product = prices["base_price_usd"] * prices[factors].prod(axis=1)
    assert (product - prices["price_usd"]).abs().max() <= 0.005 + 1e-6
    assert (prices["low_usd"] <= prices["price_usd"]).all()
    assert (prices["price_usd"] <= prices["high_usd"]).all()


def test_the_transform_job_ran_as_configured_on_every_instance(
    production: Session, scored: tuple[dict[str, object], pd.DataFrame]
) -> None:
    output, _ = scored
    summary = output["summary"]
    assert isinstance(summary, dict)
    job = client("sagemaker").describe_transform_job(TransformJobName=summary["transform_job"])
    assert job["TransformJobStatus"] == "Completed"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformOutput"]["Accept"] == "text/csv"
    assert job["TransformResources"]["InstanceCount"] == summary["instance_count"] == 2
    assert production.embedded is not None and production.embedded.seams is not None
    outcome = production.embedded.seams.transforms.outcomes[summary["transform_job"]]
    # one worker per instance, capped by the CPUs this process may use (one per pytest worker)
    assert len(outcome.instances) == min(2, host_cpus())
    assert all(instance.lines > 0 for instance in outcome.instances)
    assert sum(instance.lines for instance in outcome.instances) == GOOD_ROWS
    outputs = list_keys(
        client("s3"),
        production.deployment.data_bucket,
        f"{SCORING_WORK_PREFIX}{summary['name']}/output/",
    )
    assert [key.rsplit("/", 1)[-1] for key in outputs] == [
        "part-00000.csv.out",
        "part-00001.csv.out",
    ]
    head = client("s3").head_object(Bucket=production.deployment.data_bucket, Key=outputs[0])
    assert head["ServerSideEncryption"] == "aws:kms"
    # the run's model lived only as long as its job (the state machine's Delete model step)
    assert client("sagemaker").list_models(NameContains=summary["transform_job"])["Models"] == []
    assert "model_cleanup_error" not in output


def test_a_catalogue_that_cannot_be_read_fails_with_its_reason_in_the_summary(
    production: Session, tmp_path: Path
) -> None:
    path = tmp_path / "not_a_catalogue.csv"
    path.write_text("sku,weight\n1,2\n")
    result = production.score(path, None)
    assert result.status == "FAILED"
    assert "not_a_catalogue.csv" in str(result.cause) and "carat" in str(result.cause)
    summaries = [
        key
        for key in list_keys(
            client("s3"), production.deployment.data_bucket, SCORING_RESULTS_PREFIX
        )
        if key.rsplit("/", 2)[-2].startswith("not-a-catalogue-") and key.endswith("summary.json")
    ]
    (key,) = summaries
    summary = json.loads(_read(production, key))
    assert summary["status"] == "Failed" and summary["priced"] == 0
    assert "carat" in summary["reason"]


def test_prices_only_has_no_explanation_columns(production: Session, tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    make_catalogue(500, seed=3).to_csv(path, index=False)
    result = production.score(path, None, explain=False)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output is not None
    summary = result.output["summary"]
    prices = pd.read_parquet(
        io.BytesIO(_read(production, f"{SCORING_RESULTS_PREFIX}{summary['name']}/prices.parquet"))
    )
    assert len(prices) == 500 and summary["explain"] is False
    assert list(prices.columns) == [ROW_COLUMN, *FEATURE_NAMES, *scored_columns(False)]
    assert math.isfinite(prices["price_usd"].sum())


def test_a_second_event_for_the_same_upload_is_not_scored_again(
    production: Session, scored: tuple[dict[str, object], pd.DataFrame]
) -> None:
    # GIVEN the run input the catalogue's upload produced, delivered again (EventBridge delivers
    # at least once; moto even sends two events for one multipart upload)
    output, _ = scored
    sfn = client("stepfunctions")
    run_input = {k: output[k] for k in ("trigger", "bucket", "key", "etag", "event_time")}
    arn = start(sfn, production.deployment.scoring_state_machine_arn, run_input)
    result = wait_for(sfn, arn, timeout=120)
    # THEN the run ends without a second transform job, naming the first run's results
    assert result.status == "SUCCEEDED"
    assert result.output is not None
    assert result.output["scoring"]["duplicate"] is True
    summary = output["summary"]
    assert isinstance(summary, dict)
    assert result.output["scoring"]["name"] == summary["name"]
    jobs = client("sagemaker").list_transform_jobs(NameContains=NAMES.transform_job_prefix)
    assert summary["transform_job"] in [
        j["TransformJobName"] for j in jobs["TransformJobSummaries"]
    ]
    assert "transform" not in result.output


def test_facet_score_prints_progress_counts_and_where_the_results_are(
    production: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["simulate", "--catalogue", "300", "--output", str(tmp_path)])
    assert made.exit_code == 0, made.output
    path = tmp_path / "catalogue_300.csv"
    assert len(path.read_text().splitlines()) == 301
    monkeypatch.setenv("FACET_STAGE", STAGE)  # the CLI finds this test's stage in the emulator
    scored = runner.invoke(app, ["score", str(path), "--no-explain"])
    assert scored.exit_code == 0, scored.output
    for state in ("Prepare catalogue", "Start transform job", "Join results"):
        assert scored.output.count(f": {state}\n") == 1, state
    # the polling loop is shown once, however many times it ran
    assert scored.output.count(": Check transform job\n") == 1
    assert "300 of 300 stones priced by model version 1 (prices only); 0 quarantined" in (
        scored.output
    )
    assert f"s3://{production.deployment.data_bucket}/scoring/results/catalogue-300-" in (
        scored.output
    )


def test_a_failed_run_is_shown_as_plain_text(
    production: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a catalogue whose name (chosen by whoever uploads it) holds a terminal escape
    path = tmp_path / "evil\x1b[2J.csv"
    path.write_text("sku,weight\n1,2\n")
    monkeypatch.setenv("FACET_STAGE", STAGE)
    result = CliRunner().invoke(app, ["score", str(path)])
    # THEN the run's failure is reported, naming the file, with the escape removed
    assert result.exit_code == 1
    assert "evil[2J.csv" in result.output and "carat" in result.output
    assert "\x1b" not in result.output
