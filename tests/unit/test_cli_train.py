"""`facet train` on bad files: a clear error naming the file (and the row), never a traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from contracts.schema import LABELLED_COLUMNS
from local_emulation.cli import app

runner = CliRunner()


def test_train_cli_empty_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = runner.invoke(app, ["train", "--data", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{path}: the file is empty" in result.output
    assert "Traceback" not in result.output


def test_train_cli_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    result = runner.invoke(app, ["train", "--data", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert str(path) in result.output


def test_train_cli_reports_quarantined_rows_by_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text(
        ",".join(LABELLED_COLUMNS) + "\n0.3,Excellent,E,SI2,61.5,55,3.95,3.98,2.43,326\n"
    )
    result = runner.invoke(app, ["train", "--data", str(path), "--output", str(tmp_path / "out")])
    assert f"{path}, row 1: cut 'Excellent' is not one of" in result.output
    assert "only 0 usable training rows" in result.output
    assert result.exit_code == 2
    assert (tmp_path / "out" / "quarantine.csv").exists()


def test_train_cli_a_field_over_the_csv_limit_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    good = "0.3,Ideal,E,SI2,61.5,55,3.95,3.98,2.43,326"
    path.write_text(
        ",".join(LABELLED_COLUMNS) + f"\n{good}\n" + '"' + "x" * 200_000 + '",' + good[4:] + "\n"
    )
    result = runner.invoke(app, ["train", "--data", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{path}: line 3 cannot be read: field larger than field limit" in result.output
    assert "Traceback" not in result.output
