"""Bulk scoring of a million stones on the embedded emulator, measured and printed (not a test).

    python benchmarks/bench_scoring.py [--stones 1000000]

Trains a production model (one batch through the pipeline, LightGBM only), writes an unlabelled
catalogue of N stones (`facet simulate --catalogue N`), and scores it through the scoring flow
twice, prices only and with explanations: the same ASL, step Lambdas and batch transform seam
as `facet score`, with the local stage's instance count (2 worker processes on this machine).
Prints, per run: wall time from landing to results, the transform job's time, rows per second
per worker (the rows a worker priced over the seconds its requests took), and the peak memory of
each worker process and of the emulator's own process.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from figures import Figures

from local_emulation.session import Session, open_session
from local_emulation.simulate import make_batches, make_catalogue


def _production(session: Session, directory: Path) -> None:
    batch = make_batches(1, rows=3000)[0]
    path = batch.write(directory)
    (result,) = session.ingest(path, batch.name)
    if result.status != "SUCCEEDED":
        raise SystemExit(f"the training run failed: {result.cause}")
    assert session.embedded is not None
    session.embedded.settle()


def state_seconds(execution_arn: str) -> dict[str, float]:
    """Seconds from entering each state to entering the next (a polling loop's states summed)."""
    from local_emulation.provision import client

    events = client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    entered = [
        (e["stateEnteredEventDetails"]["name"], e["timestamp"])
        for e in events
        if "stateEnteredEventDetails" in e
    ]
    end = events[-1]["timestamp"]
    seconds: dict[str, float] = {}
    for (name, at), (_, following) in zip(entered, [*entered[1:], ("", end)], strict=True):
        seconds[name] = seconds.get(name, 0.0) + (following - at).total_seconds()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stones", type=int, default=1_000_000)
    stones = parser.parse_args().stones
    figures = Figures("bulk scoring (moto)", "python benchmarks/bench_scoring.py")
    options = {"stage": "bench", "models": "lightgbm"}
    with (
        tempfile.TemporaryDirectory() as work,
        open_session(fresh=True, provision_options=options) as session,
    ):
        _production(session, Path(work))
        catalogue = Path(work) / f"catalogue_{stones}.csv"
        make_catalogue(stones).to_csv(catalogue, index=False)
        size_mb = catalogue.stat().st_size / 1024 / 1024
        figures.line(f"catalogue: {stones:,} stones", f"{size_mb:.0f} MB", "(info)", None)
        for explain in (False, True):
            kind = "with explanations" if explain else "prices only"
            started = time.monotonic()
            result = session.score(catalogue, None, explain=explain)
            wall = time.monotonic() - started
            if result.status != "SUCCEEDED" or result.output is None:
                raise SystemExit(f"scoring {kind} failed: {result.error}: {result.cause}")
            summary = result.output["summary"]
            assert session.embedded is not None and session.embedded.seams is not None
            outcome = session.embedded.seams.transforms.outcomes[summary["transform_job"]]
            figures.line(
                f"{kind}: landing to results ({summary['priced']:,} priced)",
                f"{wall:.1f} s",
                "(info)",
                None,
            )
            steps = state_seconds(result.arn)
            polling = sum(
                steps.get(n, 0.0) for n in ("Wait for transform job", "Check transform job")
            )
            figures.line(
                f"  {kind}: prepare (validate, split) / transform / join",
                f"{steps.get('Prepare catalogue', 0):.1f} / {polling:.1f} / "
                f"{steps.get('Join results', 0):.1f} s",
                "(info)",
                None,
            )
            figures.line(f"  {kind}: transform job", f"{outcome.seconds:.1f} s", "(info)", None)
            for index, instance in enumerate(outcome.instances):
                figures.line(
                    f"  {kind}: worker {index} rows per second ({instance.lines:,} rows)",
                    f"{instance.lines / max(instance.busy_seconds, 1e-9):,.0f}",
                    "(info)",
                    None,
                )
                figures.line(
                    f"  {kind}: worker {index} peak memory",
                    f"{instance.peak_rss_mb:.0f} MB",
                    "(info)",
                    None,
                )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lambdas = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures.line(
        "peak memory: emulator process (moto, S3 objects)", f"{own:.0f} MB", "(info)", None
    )
    figures.line(
        "peak memory: largest child (a Lambda step or a worker)",
        f"{lambdas:.0f} MB",
        "(info)",
        None,
    )
    figures.save()


if __name__ == "__main__":
    main()
