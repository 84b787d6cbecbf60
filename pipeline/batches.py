"""The catalogue of labelled batches: what arrived, the verdict on it, and whether it trains.

Training data is chosen from these records (accepted batches, not excluded), never by listing
`validated/`: a batch whose labels were judged inconsistent never reaches a training set, a batch
excluded after the fact stops reaching them, and a candidate losing the gate leaves its batch
in. Every change to a record is appended to its `events`, and exclusions are also written to
the lineage log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from contracts.names import BATCHES_PREFIX, LINEAGE_PREFIX
from pipeline import lake
from pipeline.production import LEVEL_TOLERANCE


class BatchEvent(BaseModel):
    at: str
    action: str
    detail: str


class BatchRecord(BaseModel):
    key: str
    stamp: str
    content_sha256: str
    recorded_at: str
    accepted_rows: int
    validated_key: str | None
    verdict: str
    verdict_reason: str
    market_level: float = 0.0
    production_version: int | None = None
    execution: str = ""
    excluded: bool = False
    excluded_reason: str = ""
    events: list[BatchEvent] = Field(default_factory=list)

    @property
    def record_key(self) -> str:
        return record_key(self.stamp)

    @property
    def trainable(self) -> bool:
        return self.verdict != "inconsistent" and not self.excluded and bool(self.validated_key)


class BatchNotFoundError(Exception):
    """No recorded batch has that key or stamp."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record_key(stamp: str) -> str:
    return f"{BATCHES_PREFIX}{stamp}.json"


def save(s3: Any, bucket: str, record: BatchRecord) -> str:
    lake.write_json(s3, bucket, record.record_key, record.model_dump(mode="json"))
    return record.record_key


def load_all(s3: Any, bucket: str) -> list[BatchRecord]:
    """Every recorded batch, in the order they arrived."""
    records = [
        BatchRecord.model_validate(lake.read_json(s3, bucket, key))
        for key in lake.list_keys(s3, bucket, BATCHES_PREFIX)
        if key.endswith(".json")
    ]
    return sorted(records, key=lambda r: (r.recorded_at, r.stamp))


def find(records: list[BatchRecord], key_or_stamp: str) -> BatchRecord:
    for record in records:
        if key_or_stamp in {record.key, record.stamp, record.key.rsplit("/", 1)[-1]}:
            return record
    known = ", ".join(r.key for r in records) or "none"
    raise BatchNotFoundError(f"no recorded batch {key_or_stamp!r} (batches: {known})")


def current_level(records: list[BatchRecord]) -> float:
    """The price level of the market now: that of the latest batch that can train."""
    trainable = [r for r in records if r.trainable]
    return trainable[-1].market_level if trainable else 0.0


def recent(records: list[BatchRecord]) -> list[BatchRecord]:
    """The trainable batches at today's price level: since the market last moved."""
    trainable = [r for r in records if r.trainable]
    level = current_level(records)
    since: list[BatchRecord] = []
    for record in reversed(trainable):
        if abs(record.market_level - level) > LEVEL_TOLERANCE:
            break
        since.append(record)
    return list(reversed(since))


def exclude(s3: Any, bucket: str, record: BatchRecord, reason: str, who: str) -> BatchRecord:
    """Exclude a batch from every future training set, recorded on it and in the lineage log."""
    at = now()
    updated = record.model_copy(
        update={
            "excluded": True,
            "excluded_reason": reason,
            "events": [
                *record.events,
                BatchEvent(at=at, action="excluded", detail=f"{who}: {reason}"),
            ],
        }
    )
    save(s3, bucket, updated)
    lake.write_json(
        s3,
        bucket,
        f"{LINEAGE_PREFIX}{at.replace(':', '')}-exclude-{record.stamp}.json",
        {"action": "exclude batch", "batch": record.key, "reason": reason, "by": who, "at": at},
    )
    return updated
