"""Bulk scoring: the Lambda steps of the scoring flow (pipeline/scoring_flow.asl.json).

A catalogue CSV landed under scoring/incoming/ is validated with the training contract (without
the price column): bad rows go to results/<name>/quarantined.csv with reasons, the accepted rows
to the batch transform job's input parts. The job prices them with the production package's
serving image; `join_scores` joins input, prices, ranges and explanations into
results/<name>/prices.csv and prices.parquet, with summary.json. A failed run writes the summary
too, with the reason. Every input row ends up priced or quarantined, and is counted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import math
import re
import time
from typing import Any, Final

import boto3
import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from contracts.names import (
    CATALOGUE_EXPLAIN_METADATA,
    CATALOGUE_MAX_BYTES,
    CATALOGUE_MAX_ROWS,
    SCORING_INCOMING_PREFIX,
    SCORING_RESULTS_PREFIX,
    SCORING_WORK_PREFIX,
    Env,
)
from contracts.schema import FEATURE_NAMES, SCORED_WARNINGS_COLUMN, scored_columns
from contracts.settings import Settings
from pipeline import lake
from pipeline.state import error_cause
from training import registry
from training import validate as catalogue_validation
from training.validate import ROW_COLUMN

log = logging.getLogger("facet.pipeline.scoring")
log.setLevel(logging.INFO)
# Rows per input part at most: parts are what the service spreads over instances, and what one
# instance reads and answers object by object.
PART_ROWS: Final = 250_000
NAME_LENGTH: Final = 40
# The transform job's output for an input object: the object's name with ".out" appended.
OUTPUT_SUFFIX: Final = ".out"


class CatalogueError(Exception):
    """The catalogue cannot be scored (where it is, its size, its form); the run records why."""


def catalogue_name(key: str, landed_at: str) -> str:
    """`<file name, lower-case>-<UTC stamp of the run>`: readable, unique per run, safe as a
    prefix (the key is untrusted: only [a-z0-9-] survive)."""
    relative = (
        key[len(SCORING_INCOMING_PREFIX) :] if key.startswith(SCORING_INCOMING_PREFIX) else key
    )
    stem = relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative
    cleaned = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:NAME_LENGTH].strip("-")
    return f"{cleaned or 'catalogue'}-{_stamp(landed_at)}"


def _stamp(moment: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        parsed = dt.datetime.now(dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")


def results_prefix(name: str) -> str:
    return f"{SCORING_RESULTS_PREFIX}{name}/"


def work_prefix(name: str) -> str:
    return f"{SCORING_WORK_PREFIX}{name}/"


def part_sizes(rows: int, instances: int) -> list[int]:
    """Rows per input part: a multiple of the instance count, none over PART_ROWS, as even as
    np.array_split makes them."""
    if rows == 0:
        return []
    parts = instances * math.ceil(rows / (instances * PART_ROWS))
    parts = min(parts, rows)
    return [len(chunk) for chunk in np.array_split(np.arange(rows), parts)]


def part_key(name: str, index: int) -> str:
    return f"{work_prefix(name)}input/part-{index:05d}.csv"


def check_rows(body: bytes, source: str, limit: int = CATALOGUE_MAX_ROWS) -> None:
    """Refuse a catalogue of more than `limit` stones (lines after the header) before parsing it."""
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1) - 1
    if lines > limit:
        raise CatalogueError(
            f"{source} has {lines:,} rows; a catalogue may have at most {limit:,}: split it into "
            "several files (each is scored by its own run)"
        )


def _explain_wanted(metadata: dict[str, str]) -> bool:
    value = metadata.get(CATALOGUE_EXPLAIN_METADATA, "true").strip().lower()
    if value not in {"true", "false"}:
        raise CatalogueError(
            f"object metadata {CATALOGUE_EXPLAIN_METADATA}={value[:20]!r}: use true or false"
        )
    return value == "true"


def _run(event: dict[str, Any]) -> tuple[str, str]:
    """The execution's name, and when the catalogue landed (the S3 event's time; now if the run
    was started by hand), which names its results."""
    run = event.get("run") or {}
    landed = str(event.get("event_time") or "") or registry.now_iso()
    return str(run.get("execution", "run")), landed


def _job_name(settings: Settings, name: str, execution: str) -> str:
    digest = hashlib.sha256(f"{name}/{execution}".encode()).hexdigest()[:8]
    return f"{settings.names.transform_job_prefix}-{name.rsplit('-', 1)[-1]}-{digest}"


def prepare_catalogue(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Validate the landed catalogue, quarantine bad rows, write the transform job's input."""
    settings, s3 = Settings(), boto3.client("s3")
    bucket, key = str(event.get("bucket", "")), str(event.get("key", ""))
    execution, landed_at = _run(event)
    if bucket != settings.data_bucket or not key.startswith(SCORING_INCOMING_PREFIX):
        raise CatalogueError(
            f"s3://{bucket[:100]}/{key[:200]} is not under s3://{settings.data_bucket}/"
            f"{SCORING_INCOMING_PREFIX}: only catalogues landed there are scored"
        )
    name = catalogue_name(key, landed_at)
    source = f"s3://{bucket}/{key}"
    head = s3.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] > CATALOGUE_MAX_BYTES:
        raise CatalogueError(
            f"{source} is {head['ContentLength']:,} bytes; a catalogue may be at most "
            f"{CATALOGUE_MAX_BYTES:,} bytes: split it into several files"
        )
    explain = _explain_wanted({k.lower(): v for k, v in head.get("Metadata", {}).items()})
    # EventBridge delivers at least once (and moto sends two events for a multipart upload):
    # one upload, identified by its ETag and time, is scored by one run.
    upload = f"{bucket}/{key}/{head.get('ETag', '')}/{head.get('LastModified', '')}"
    claim = f"{SCORING_WORK_PREFIX}claims/{hashlib.sha256(upload.encode()).hexdigest()}.json"
    if not lake.claim(s3, bucket, claim, {"name": name, "execution": execution}):
        first = lake.read_json(s3, bucket, claim)
        log.info("%s is already being scored as %s", source, first)
        return {"duplicate": True, "name": str(first.get("name", "")), "source": source}
    pointer = registry.read_pointer(boto3.client("ssm"), settings.production_model_param)
    if pointer.arn is None:
        raise CatalogueError("no model is in production yet: nothing can price the catalogue")
    body = lake.read_bytes(s3, bucket, key)
    check_rows(body, source)
    try:
        result = catalogue_validation.validate_batch(body, labelled=False, name=source)
    except catalogue_validation.BatchRejectedError as error:
        raise CatalogueError(str(error)) from None
    report = result.report
    quarantine_key = None
    if len(result.quarantined):
        quarantine_key = f"{results_prefix(name)}quarantined.csv"
        lake.write_csv(s3, settings.data_bucket, quarantine_key, result.quarantined)
    accepted = result.accepted.loc[:, [ROW_COLUMN, *FEATURE_NAMES]]
    instances = settings.transform_instance_count
    sizes = part_sizes(len(accepted), instances)
    start = 0
    for index, size in enumerate(sizes):
        part = accepted.iloc[start : start + size]
        body = part.loc[:, list(FEATURE_NAMES)].to_csv(index=False, header=False).encode()
        s3.put_object(
            Bucket=settings.data_bucket,
            Key=part_key(name, index),
            Body=body,
            ContentType="text/csv",
        )
        start += size
    accepted_key = f"{work_prefix(name)}accepted.parquet"
    buffer = io.BytesIO()
    accepted.to_parquet(buffer, index=False)
    s3.put_object(Bucket=settings.data_bucket, Key=accepted_key, Body=buffer.getvalue())
    log.info("catalogue %s: %s", source, report.to_dict())
    return {
        "duplicate": False,
        "name": name,
        "source": source,
        "job_name": _job_name(settings, name, execution),
        "package_arn": pointer.arn,
        "model_version": pointer.version,
        "explain": explain,
        "environment": {Env.EXPLAIN.value: "true" if explain else "false"},
        "input_s3_uri": f"s3://{settings.data_bucket}/{work_prefix(name)}input/",
        "output_s3_uri": f"s3://{settings.data_bucket}/{work_prefix(name)}output/",
        "accepted_key": accepted_key,
        "quarantine_key": quarantine_key,
        "part_rows": sizes,
        "instance_count": instances,
        "poll_seconds": settings.training_poll_seconds,
        "input_rows": report.input_rows,
        "accepted_rows": report.accepted_rows,
        "quarantined_rows": report.quarantined_rows,
        "reasons": dict(sorted(report.reasons.items())),
        "landed_at": landed_at,
    }


def read_scored(body: bytes, explain: bool, source: str, expected_rows: int) -> pd.DataFrame:
    """One transform output object: exactly one line per input line, or CatalogueError."""
    columns = scored_columns(explain)
    frame = pd.read_csv(
        io.BytesIO(body),
        header=None,
        names=list(columns),
        dtype={SCORED_WARNINGS_COLUMN: str},
        keep_default_na=False,
        na_values={c: [""] for c in columns if c != SCORED_WARNINGS_COLUMN},
    )
    if len(frame) != expected_rows:
        raise CatalogueError(
            f"{source} has {len(frame):,} lines for {expected_rows:,} input lines: the transform "
            "output cannot be joined to its input"
        )
    numeric = [c for c in columns if c != SCORED_WARNINGS_COLUMN]
    if frame[numeric].isna().any().any():
        raise CatalogueError(f"{source} has empty or non-numeric prices")
    return frame


def join_scores(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """results/<name>/prices.csv and .parquet (input row, features, prices, ranges and, when
    asked, base price and factors) and summary.json."""
    settings, s3 = Settings(), boto3.client("s3")
    scoring = event["scoring"]
    name, explain = scoring["name"], bool(scoring["explain"])
    started = time.perf_counter()
    frames = []
    priced = 0
    if scoring["accepted_rows"]:
        accepted = pd.read_parquet(
            io.BytesIO(lake.read_bytes(s3, settings.data_bucket, scoring["accepted_key"]))
        )
        output_prefix = f"{work_prefix(name)}output/"
        for index, rows in enumerate(scoring["part_rows"]):
            key = f"{output_prefix}{part_key(name, index).rsplit('/', 1)[-1]}{OUTPUT_SUFFIX}"
            source = f"s3://{settings.data_bucket}/{key}"
            frames.append(
                read_scored(lake.read_bytes(s3, settings.data_bucket, key), explain, source, rows)
            )
        scored = pd.concat(frames, ignore_index=True)
        joined = pd.concat([accepted.reset_index(drop=True), scored], axis=1)
        priced = len(joined)
        prefix = results_prefix(name)
        body = joined.to_csv(index=False).encode()
        s3.put_object(
            Bucket=settings.data_bucket,
            Key=f"{prefix}prices.csv",
            Body=body,
            ContentType="text/csv",
        )
        buffer = io.BytesIO()
        joined.to_parquet(buffer, index=False)
        s3.put_object(
            Bucket=settings.data_bucket, Key=f"{prefix}prices.parquet", Body=buffer.getvalue()
        )
    if priced + scoring["quarantined_rows"] != scoring["input_rows"]:
        raise CatalogueError(
            f"{priced:,} priced + {scoring['quarantined_rows']:,} quarantined != "
            f"{scoring['input_rows']:,} input rows"
        )
    summary = _summary(settings, scoring, status="Succeeded", priced=priced)
    summary["join_seconds"] = round(time.perf_counter() - started, 3)
    lake.write_json(s3, settings.data_bucket, f"{results_prefix(name)}summary.json", summary)
    return summary


def _summary(
    settings: Settings, scoring: dict[str, Any], *, status: str, priced: int
) -> dict[str, Any]:
    prefix = f"s3://{settings.data_bucket}/{results_prefix(scoring['name'])}"
    started = scoring.get("landed_at") or ""
    finished = registry.now_iso()
    return {
        "name": scoring["name"],
        "status": status,
        "source": scoring.get("source"),
        "rows": scoring.get("input_rows", 0),
        "priced": priced,
        "quarantined": scoring.get("quarantined_rows", 0),
        "reasons": scoring.get("reasons", {}),
        "model_version": scoring.get("model_version"),
        "model_package_arn": scoring.get("package_arn"),
        "explain": scoring.get("explain"),
        "transform_job": scoring.get("job_name") if scoring.get("accepted_rows") else None,
        "instance_count": scoring.get("instance_count"),
        "landed_at": started,
        "finished_at": finished,
        "seconds": _seconds_between(started, finished),
        "results": {
            "csv": f"{prefix}prices.csv" if priced else None,
            "parquet": f"{prefix}prices.parquet" if priced else None,
            "quarantined": f"{prefix}quarantined.csv" if scoring.get("quarantine_key") else None,
            "summary": f"{prefix}summary.json",
        },
    }


def _seconds_between(start: str, end: str) -> float | None:
    try:
        begun = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    if begun.tzinfo is None:
        begun = begun.replace(tzinfo=dt.UTC)
    return round((ended - begun).total_seconds(), 3)


def _delete_model(name: str) -> str:
    """Delete the run's SageMaker model: "deleted", "not found" (never created, or already deleted
    after its job completed) or "left: <error code>". A model left behind costs nothing: never
    fail the step for it."""
    try:
        boto3.client("sagemaker").delete_model(ModelName=name)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ValidationException" and "Could not find model" in str(error):
            return "not found"
        log.warning("model %s not deleted: %s", name, code)
        return f"left: {code}"
    return "deleted"


def record_scoring_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """results/<name>/summary.json with status Failed and the reason; returns error and cause."""
    settings, s3 = Settings(), boto3.client("s3")
    error = event.get("error") or {}
    cause = error_cause(error)[:2000]
    execution, landed_at = _run(event)
    scoring = dict(event.get("scoring") or {})
    scoring.setdefault("name", catalogue_name(str(event.get("key", "")), landed_at))
    scoring.setdefault("source", f"s3://{event.get('bucket', '')}/{event.get('key', '')}")
    scoring.setdefault("landed_at", landed_at)
    summary = _summary(settings, scoring, status="Failed", priced=0)
    summary |= {"error": error.get("Error", "Error"), "reason": cause, "execution": execution}
    if scoring.get("job_name"):
        summary["run_model"] = _delete_model(str(scoring["job_name"]))
    lake.write_json(
        s3, settings.data_bucket, f"{results_prefix(scoring['name'])}summary.json", summary
    )
    return {"error": error.get("Error", "Error"), "cause": cause}
