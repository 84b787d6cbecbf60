"""Every priced stone, logged to the data lake's inference/ zone off the hot path.

Requests append rows to an in-memory buffer (bounded); a flush writes one CSV object per batch
of rows to inference/date=YYYY-MM-DD/. A flush is due when `flush_rows` rows wait or the oldest
has waited `flush_seconds`. Where threads keep running between requests (the local gateway, the
SageMaker container) a background thread flushes; in Lambda, which freezes threads between
invocations, the request that finds a flush due writes it before returning. Either way a hard
kill loses at most the rows of one flush window. Everything is counted: rows accepted, written,
and dropped (only if the lake stays unreachable while the buffer is at its bound).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from contracts.names import Zone
from contracts.schema import FEATURE_NAMES
from serving.guards import request_id

if TYPE_CHECKING:
    from fastapi import Request

log = logging.getLogger("facet.serving.inference_log")
COLUMNS: Final = (
    "request_id",
    "logged_at",
    "route",
    "model_version",
    "latency_ms",
    "price",
    *FEATURE_NAMES,
    # Filled only for requests a second model also priced (serving.comparison).
    "compared_role",
    "compared_version",
    "compared_price",
    "price_gap",
    "disagrees",
)


@dataclass
class LogCounters:
    accepted: int = 0
    written: int = 0
    dropped: int = 0
    failed_flushes: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "written": self.written,
            "dropped": self.dropped,
            "failed_flushes": self.failed_flushes,
            "pending": self.accepted - self.written - self.dropped,
        }


@dataclass
class InferenceLogger:
    """Buffered writer of inference rows; `s3_client` builds a client, `bucket` names the lake."""

    s3_client: Callable[[], Any]
    bucket: str
    flush_rows: int = 500
    flush_seconds: float = 10.0
    max_buffer_rows: int = 100_000
    # Called with the rows of each successful flush (serving.comparison publishes metrics).
    on_written: Callable[[list[dict[str, Any]]], None] | None = None
    counters: LogCounters = field(default_factory=LogCounters)
    _buffer: deque[dict[str, Any]] = field(default_factory=deque)
    _oldest: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def log(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows; never blocks on the network."""
        if not self.bucket:
            return
        with self._lock:
            overflow = len(self._buffer) + len(rows) - self.max_buffer_rows
            if overflow > 0:
                for _ in range(min(overflow, len(self._buffer))):
                    self._buffer.popleft()
                self.counters.dropped += overflow
                log.error(
                    "inference log buffer full: dropped %d rows (lake unreachable?)", overflow
                )
            self._buffer.extend(rows[-self.max_buffer_rows :])
            self.counters.accepted += len(rows)
            if self._oldest is None:
                self._oldest = time.monotonic()
            due = len(self._buffer) >= self.flush_rows
        if due:
            self._wake.set()

    def due(self) -> bool:
        with self._lock:
            return bool(self._buffer) and (
                len(self._buffer) >= self.flush_rows
                or (
                    self._oldest is not None
                    and time.monotonic() - self._oldest >= self.flush_seconds
                )
            )

    def flush(self) -> int:
        """Write everything buffered; returns rows written. Failed rows go back to the buffer."""
        with self._flush_lock:
            with self._lock:
                rows = list(self._buffer)
                self._buffer.clear()
                self._oldest = None
            if not rows:
                return 0
            try:
                self._write(rows)
            except Exception as error:  # keep the rows; the next flush retries them
                self.counters.failed_flushes += 1
                log.warning(
                    "inference log flush failed (%s); %d rows kept for retry", error, len(rows)
                )
                with self._lock:
                    self._buffer.extendleft(reversed(rows))
                    self._oldest = self._oldest or time.monotonic()
                return 0
            with self._lock:
                self.counters.written += len(rows)
            if self.on_written is not None:
                self.on_written(rows)
            return len(rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        now = dt.datetime.now(dt.UTC)
        key = (
            f"{Zone.INFERENCE.prefix()}date={now:%Y-%m-%d}/"
            f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.csv"
        )
        self.s3_client().put_object(
            Bucket=self.bucket, Key=key, Body=buffer.getvalue().encode(), ContentType="text/csv"
        )

    @property
    def flushing_in_background(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Flush in a background thread when rows are due (not in Lambda: it freezes threads)."""
        if self._thread is not None or not self.bucket:
            return

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(timeout=min(1.0, self.flush_seconds))
                self._wake.clear()
                if self.due():
                    self.flush()

        self._thread = threading.Thread(target=loop, name="inference-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and write what is left: nothing is lost on a normal shutdown."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()


def rows_for(
    request_id: str,
    *,
    route: str,
    model_version: int | None,
    latency_ms: float,
    stones: list[dict[str, Any]],
    prices: list[float],
    compared: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    logged_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    extras = compared or [{} for _ in stones]
    return [
        {
            "request_id": request_id,
            "logged_at": logged_at,
            "route": route,
            "model_version": "" if model_version is None else model_version,
            "latency_ms": round(latency_ms, 3),
            "price": round(price, 2),
            **stone,
            **extra,
        }
        for stone, price, extra in zip(stones, prices, extras, strict=True)
    ]


def log_priced(
    logger: InferenceLogger,
    request: Request,
    *,
    route: str,
    model_version: int | None,
    stones: list[dict[str, Any]],
    prices: Sequence[float],
    compared: list[dict[str, Any]] | None = None,
) -> None:
    """Queue one row per priced stone, with the request's id and its latency so far."""
    if not logger.bucket:
        return  # nothing is logged (a local artifact, a batch transform job): build no rows
    started = getattr(request.state, "started", None)
    latency = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    logger.log(
        rows_for(
            request_id(request.scope),
            route=route,
            model_version=model_version,
            latency_ms=latency,
            stones=stones,
            prices=list(prices),
            compared=compared,
        )
    )
