"""The S3 data lake: zones, object names, the ledger of processed batches, and small I/O helpers.

Object names follow `<dataset>_<phase>_<stamp>.csv` (diamonds_raw_20260101T000000.csv becomes
diamonds_validated_... and diamonds_quarantine_...). Clients are created by the caller.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from typing import Any

import pandas as pd

from contracts.names import LEDGER_PREFIX, RAW_BATCH_REGEX, Zone


class LakeError(Exception):
    """An object is missing or not where the lake's layout says."""


def batch_stamp(key: str) -> str:
    """The YYYYMMDDTHHMMSS stamp of a raw batch's name, or the name without extension."""
    name = key.rsplit("/", 1)[-1]
    match = re.match(RAW_BATCH_REGEX, name)
    return match.group(1) if match else re.sub(r"\W+", "-", name.rsplit(".", 1)[0])


def phase_key(zone: Zone, stamp: str) -> str:
    return f"{zone.prefix()}diamonds_{zone.value}_{stamp}.csv"


def ledger_key(content_sha256: str) -> str:
    return f"{LEDGER_PREFIX}{content_sha256}.json"


def read_bytes(s3: Any, bucket: str, key: str) -> bytes:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise LakeError(f"s3://{bucket}/{key} does not exist") from None


def read_csv(s3: Any, bucket: str, key: str) -> pd.DataFrame:
    data = read_bytes(s3, bucket, key)
    if key.endswith(".gz"):
        data = gzip.decompress(data)
    return pd.read_csv(io.BytesIO(data))


def write_csv(s3: Any, bucket: str, key: str, frame: pd.DataFrame) -> str:
    body = frame.to_csv(index=False).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/csv")
    return hashlib.sha256(body).hexdigest()


def write_json(s3: Any, bucket: str, key: str, document: Any) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, default=str).encode(),
        ContentType="application/json",
    )


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(read_bytes(s3, bucket, key))


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return sorted(keys)


def claim(s3: Any, bucket: str, key: str, document: dict[str, Any]) -> bool:
    """Create `key` only if it does not exist (S3 conditional write); False if it already did."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(document, default=str).encode(),
            IfNoneMatch="*",
            ContentType="application/json",
        )
    except s3.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in {"PreconditionFailed", "ConditionalRequestConflict"}:
            return False
        raise
    return True
