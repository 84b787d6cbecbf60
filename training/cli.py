"""`facet train`: train and evaluate on any CSV that passes validation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from training.hyperparameters import HyperparameterError, parse_hyperparameters
from training.split import exclude_holdout
from training.train import prepare_classic, train_and_evaluate
from training.validate import (
    REASONS_COLUMN,
    ROW_COLUMN,
    BatchRejectedError,
    validate_batch,
)

SHOWN_QUARANTINED_ROWS = 10


def train(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Labelled CSV (carat, cut, color, clarity, depth, table, x, y, z, price). "
            "Default: the shipped classic diamonds data."
        ),
    ] = None,
    models: Annotated[
        str,
        typer.Option(
            help="Candidates to compare: comma-separated of linear, tree, lightgbm, mlp, or all."
        ),
    ] = "all",
    output: Annotated[
        Path, typer.Option(help="Where to write the model, leaderboard and quarantine.")
    ] = Path("build/train"),
) -> None:
    """Validate a CSV, train the candidates, evaluate them on the frozen holdout, save the best."""
    started = time.perf_counter()
    try:
        params = parse_hyperparameters({"models": models})
    except HyperparameterError as error:
        raise typer.BadParameter(str(error), param_hint="--models") from None
    classic = prepare_classic()
    output.mkdir(parents=True, exist_ok=True)
    if data is None:
        training_rows, sources = classic.training, ["classic diamonds.csv (training split)"]
        typer.echo(
            f"classic data: {classic.report.accepted_rows} valid rows, "
            f"{classic.report.quarantined_rows} quarantined {dict(classic.report.reasons)}"
        )
    else:
        try:
            result = validate_batch(data)
        except BatchRejectedError as error:
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        except OSError as error:
            typer.secho(f"error: {data}: {error.strerror}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        report = result.report
        typer.echo(
            f"{data}: {report.input_rows} rows: {report.accepted_rows} accepted, "
            f"{report.quarantined_rows} quarantined, "
            f"{report.duplicate_rows} duplicates of earlier rows"
        )
        if report.quarantined_rows:
            quarantine_path = output / "quarantine.csv"
            result.quarantined.to_csv(quarantine_path, index=False)
            for _, row in result.quarantined.head(SHOWN_QUARANTINED_ROWS).iterrows():
                typer.echo(f"  {data}, row {row[ROW_COLUMN]}: {row[REASONS_COLUMN]}")
            more = report.quarantined_rows - SHOWN_QUARANTINED_ROWS
            if more > 0:
                typer.echo(f"  ... and {more} more")
            typer.echo(f"  quarantined rows with reasons: {quarantine_path}")
        accepted = result.accepted.drop(columns=[ROW_COLUMN])
        training_rows, removed = exclude_holdout(accepted, classic.manifest)
        if removed:
            typer.echo(f"  {removed} rows are in the frozen holdout and were kept out of training")
        if len(training_rows) < 100:
            typer.secho(
                f"error: {data}: only {len(training_rows)} usable training rows; need at least 100",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(2)
        sources = [str(data)]
    outcome = train_and_evaluate(
        training_rows, classic.holdout, params, sources=sources, progress=typer.echo
    )
    outcome.save(output / "model", output)
    typer.echo("")
    typer.echo((output / "leaderboard.md").read_text())
    typer.echo(
        f"model: {output / 'model'}  (dataset {outcome.dataset_hash[:12]}, "
        f"{time.perf_counter() - started:.1f} s)"
    )
