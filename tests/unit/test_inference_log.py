"""The inference logger: batched, bounded, counted, and nothing lost on a normal shutdown."""

from __future__ import annotations

from typing import Any

from serving.inference_log import InferenceLogger, rows_for


class Lake:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.bodies: list[str] = []

    def put_object(self, **kwargs: Any) -> None:
        if self.fail:
            raise ConnectionError("lake unreachable")
        self.bodies.append(kwargs["Body"].decode())


def stones(count: int) -> list[dict[str, Any]]:
    return rows_for(
        "r",
        route="price",
        model_version=1,
        latency_ms=1.0,
        stones=[{"carat": 0.5}] * count,
        prices=[100.0] * count,
    )


def test_rows_are_written_in_batches_not_per_request() -> None:
    lake = Lake()
    logger = InferenceLogger(lambda: lake, "bucket", flush_rows=10)
    for _ in range(25):
        logger.log(stones(1))
    assert lake.bodies == []  # nothing on the request path
    assert logger.due()
    assert logger.flush() == 25
    assert len(lake.bodies) == 1 and lake.bodies[0].count("\n") == 26  # header + 25 rows


def test_failed_flush_keeps_the_rows_for_the_next_one() -> None:
    lake = Lake(fail=True)
    logger = InferenceLogger(lambda: lake, "bucket")
    logger.log(stones(3))
    assert logger.flush() == 0
    assert logger.counters.failed_flushes == 1
    lake.fail = False
    assert logger.flush() == 3
    assert logger.counters.to_dict() == {
        "accepted": 3,
        "written": 3,
        "dropped": 0,
        "failed_flushes": 1,
        "pending": 0,
    }


def test_buffer_is_bounded_and_drops_are_counted() -> None:
    lake = Lake(fail=True)
    logger = InferenceLogger(lambda: lake, "bucket", max_buffer_rows=5)
    for _ in range(8):
        logger.log(stones(1))
    counters = logger.counters.to_dict()
    assert counters["dropped"] == 3 and counters["pending"] == 5


def test_close_writes_everything_left() -> None:
    lake = Lake()
    logger = InferenceLogger(lambda: lake, "bucket", flush_rows=1000, flush_seconds=60)
    logger.start()
    logger.log(stones(7))
    logger.close()
    assert logger.counters.written == 7 and sum(b.count("\n") - 1 for b in lake.bodies) == 7


def test_no_bucket_means_no_logging() -> None:
    logger = InferenceLogger(Lake, "")
    logger.log(stones(2))
    assert logger.counters.accepted == 0
