"""The `facet` command line."""

from __future__ import annotations

import typer

from training.cli import train

app = typer.Typer(
    help="Facet: a diamond-pricing model on AWS, run end to end on this machine.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def facet() -> None:
    """Facet: a diamond-pricing model on AWS, run end to end on this machine."""


app.command("train")(train)


def main() -> None:
    app()
