"""The run report: Markdown for people, with plots, from one pipeline execution's state."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from contracts.names import figure_name
from pipeline.state import BatchVerdict, RunState, Validation
from training.evaluate import decile_metrics
from training.explain import group_contributions
from training.predict import PriceModel

IMPORTANCE_SAMPLE = 500
# Fixed margins around the plot, in inches, wide enough for the longest labels the report draws:
# tight_layout measured every label on each save (a report's four figures: 0.67 s, now 0.53 s).
MARGINS_INCHES: Final = {"left": 0.95, "right": 0.2, "bottom": 0.55, "top": 0.35}


def _save_figure(fig: Any, directory: Path, topic: str) -> str:
    """Save as `<topic>_diamonds_<date>.png` (names.figure_name) and return that name."""
    import matplotlib.pyplot as plt

    name = figure_name(topic, dt.date.today().isoformat())
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=MARGINS_INCHES["left"] / width,
        right=1 - MARGINS_INCHES["right"] / width,
        bottom=MARGINS_INCHES["bottom"] / height,
        top=1 - MARGINS_INCHES["top"] / height,
    )
    fig.savefig(directory / name, dpi=90)
    plt.close(fig)
    return name


def _plots(model: PriceModel, holdout: pd.DataFrame, directory: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actual = holdout["price"].to_numpy()
    predicted = model.predict(holdout)
    files = []

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual, predicted, s=1, alpha=0.25)
    ax.plot([actual.min(), actual.max()], [actual.min(), actual.max()], "k--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("actual price (USD)")
    ax.set_ylabel("predicted price (USD)")
    ax.set_title("Predicted vs actual, frozen holdout")
    files.append(_save_figure(fig, directory, "predicted vs actual"))

    deciles = decile_metrics(actual, predicted)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([d["decile"] for d in deciles], [d["mape"] * 100 for d in deciles])
    ax.set_xlabel("price decile (1 = cheapest)")
    ax.set_ylabel("MAPE (%)")
    ax.set_title("Error per price decile, frozen holdout")
    files.append(_save_figure(fig, directory, "error per decile"))

    # Exact TreeSHAP costs ~0.5 ms a stone here: 500 stones rank the groups as 2,000 did, in a
    # quarter of the run's time.
    sample = holdout.sample(min(IMPORTANCE_SAMPLE, len(holdout)), random_state=0)
    names, grouped = group_contributions(model.contributions(sample.reset_index(drop=True)))
    importance = np.abs(grouped).mean(axis=0)
    order = np.argsort(importance)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh([names[i] for i in order], importance[order])
    ax.set_xlabel("mean |contribution| to log price")
    ax.set_title(f"Top contributions ({len(sample):,} holdout stones)")
    files.append(_save_figure(fig, directory, "top contributions"))
    return files


def _drift_plot(drift: list[dict[str, Any]], directory: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [d["feature"] for d in drift][::-1]
    ax.barh(names, [d["psi"] for d in drift][::-1])
    ax.axvline(0.1, color="orange", ls="--", lw=1)
    ax.axvline(0.25, color="red", ls="--", lw=1)
    ax.set_xlabel("PSI vs training data (0.1 moderate, 0.25 shifted)")
    ax.set_title("Drift per feature")
    return _save_figure(fig, directory, "drift")


def _verdict_plot(verdict: BatchVerdict, directory: Path) -> str | None:
    if not verdict.histogram:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(verdict.histogram["edges"]) * 100
    centres = (edges[:-1] + edges[1:]) / 2
    width = np.diff(edges)
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.bar(centres, verdict.histogram["holdout"], width=width, alpha=0.5, label="on its holdout")
    ax.bar(centres, verdict.histogram["batch"], width=width, alpha=0.5, label="on this batch")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("actual price vs production's price (%)")
    ax.set_ylabel("share of stones")
    name = f"v{verdict.production_version}" if verdict.production_version else ""
    ax.set_title(f"Production {name}'s errors: this batch vs its holdout ({verdict.kind})")
    ax.legend()
    return _save_figure(fig, directory, "verdict")


def _outcome(run: RunState) -> str | None:
    """The outcome of a run that stopped before a model was evaluated, if it did."""
    if run.failure is not None or run.error is not None:
        cause = run.failure.cause if run.failure else (run.error or {}).get("Cause", "unknown")
        return f"FAILED: {cause}"
    validation = run.validation
    if validation is not None and validation.already_processed:
        return "Skipped: this batch was processed already."
    if validation is not None and validation.accepted_rows == 0:
        return "Nothing to train on: every row of the batch was quarantined."
    if validation is not None and validation.verdict is not None and validation.rejected_labels:
        return (
            f"Batch quarantined before training: {validation.verdict.reason} "
            "No training job was started; production is unchanged."
        )
    if run.drift_check is not None and not run.drift_check.retrain:
        return f"No retraining: {run.drift_check.reason}"
    return None


def outcome_line(state: dict[str, Any]) -> str:
    run = RunState.model_validate(state)
    stopped = _outcome(run)
    if stopped is not None:
        return stopped
    if run.deployment is not None:
        verb = "Deployed: " if run.deployment.deployed else "Not deployed: "
        return verb + run.deployment.reason
    return run.evaluation.reason if run.evaluation is not None else "Run finished."


def _metrics_row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['mape']:.2%} | {m['rmse']:.0f} | {m['mae']:.0f} | {m['r2']:.4f} |"


def _validation_lines(validation: Validation, directory: Path, files: list[str]) -> list[str]:
    lines = [
        "## Batch",
        "",
        f"`{validation.key}`: {validation.input_rows} rows, {validation.accepted_rows} passed "
        f"the row checks, {validation.quarantined_rows} quarantined one by one, "
        f"{validation.duplicate_rows} duplicates of earlier rows.",
        "",
    ]
    if validation.reasons:
        lines += ["| reason | rows |", "|---|---|"]
        lines += [f"| {code} | {count} |" for code, count in validation.reasons.items()]
        lines.append("")
    if validation.quarantine_key:
        lines += [f"Quarantined rows with reasons: `{validation.quarantine_key}`", ""]
    verdict = validation.verdict
    if verdict is not None:
        lines += ["## Verdict on the labels", "", f"**{verdict.kind}**: {verdict.reason}", ""]
        if verdict.batch is not None and verdict.holdout is not None:
            b, h = verdict.batch, verdict.holdout
            lines += [
                f"Production v{verdict.production_version}'s errors (log-residuals):",
                "",
                "| | stones | median | spread (robust σ) | beyond holdout p99 | MAPE |",
                "|---|---|---|---|---|---|",
                f"| this batch | {b.rows} | {np.expm1(b.median):+.2%} | {b.spread:.4f} | "
                f"{b.outlier_share:.2%} | {b.mape:.2%} |",
                f"| its holdout | {h.rows} | {np.expm1(h.median):+.2%} | {h.spread:.4f} | "
                f"{h.outlier_share:.2%} | {h.mape:.2%} |",
                "",
                f"Price level against production: {verdict.shift:+.2%}; spread ratio "
                f"{verdict.spread_ratio:.2f}. Judged in {verdict.seconds:.2f} s.",
                "",
            ]
        if verdict.decile_shifts:
            lines += [
                "Shift per decile of production's price (1 = cheapest): "
                + ", ".join(f"{i + 1}: {d:+.1%}" for i, d in enumerate(verdict.decile_shifts)),
                "",
            ]
        plot = _verdict_plot(verdict, directory)
        if plot:
            files.append(plot)
            lines += [f"![verdict]({plot})", ""]
    return lines


def write_report(
    state: dict[str, Any],
    directory: Path,
    *,
    model: PriceModel | None = None,
    holdout: pd.DataFrame | None = None,
) -> list[str]:
    """Write report.md, run.json and the plots into `directory`; return the file names."""
    directory.mkdir(parents=True, exist_ok=True)
    run = RunState.model_validate(state)
    lines = [f"# Facet pipeline run `{run.run.execution}`", ""]
    lines += [f"**{outcome_line(state)}**", ""]
    files = ["report.md", "run.json"]

    validation = run.validation
    if validation is not None and validation.already_processed:
        first = validation.processed_as or {}
        lines += [
            f"`{validation.key}` has the same content as a batch already processed "
            f"(first as `{first.get('key', '?')}` in run `{first.get('execution', '?')}`): "
            "nothing was done.",
            "",
        ]
    elif validation is not None:
        lines += _validation_lines(validation, directory, files)
    drift = (validation.drift if validation else []) or (
        run.drift_check.drift if run.drift_check else []
    )
    if drift:
        lines += ["## Drift against the training data", "", "| feature | PSI | KS | level |"]
        lines += ["|---|---|---|---|"]
        for d in drift:
            ks = f"{d['ks']:.3f}" if d.get("ks") is not None else ""
            lines.append(f"| {d['feature']} | {d['psi']:.3f} | {ks} | {d['level']} |")
        plot = _drift_plot(drift, directory)
        files.append(plot)
        lines += ["", f"![drift]({plot})", ""]
    if run.drift_check is not None and run.drift_check.verdict is not None:
        lines += [f"Labelled data production has not seen: {run.drift_check.verdict.reason}", ""]

    dataset = run.dataset
    if dataset is not None:
        lines += [
            "## Dataset version",
            "",
            f"`{dataset.dataset_hash[:16]}`: {dataset.rows} training rows, prices at level "
            f"{np.expm1(dataset.market_level):+.1%} against the classic data; "
            f"{dataset.holdout_rows_removed} rows that repeat holdout stones and "
            f"{dataset.recent_rows_removed} recent-holdout rows were kept out.",
            f"Why retrain: {dataset.retrain_reason}",
            "",
        ]
        if dataset.batches:
            lines += ["| batch | verdict | price level | rows used |", "|---|---|---|---|"]
            lines += [
                f"| `{b.key}` | {b.verdict} | {np.expm1(b.market_level):+.1%} | {b.rows} |"
                for b in dataset.batches
            ]
            lines.append("")
    evaluation = run.evaluation
    if evaluation is not None:
        candidate = evaluation.candidate
        lines += [
            "## Candidate model",
            "",
            f"`{candidate.model_name or candidate.family}` from training job "
            f"`{candidate.training_job}`; artifact sha256 `{candidate.artifact_sha256[:16]}...`"
            + (f"; MLflow run `{candidate.mlflow_run_id}`." if candidate.mlflow_run_id else "."),
            "",
        ]
        version = evaluation.production.version if evaluation.production else None
        for scores in (evaluation.frozen, evaluation.recent):
            if scores is None:
                continue
            title = "frozen holdout" if scores.holdout == "frozen" else "recent data"
            gate = " (the gate judged on this)" if scores.holdout == evaluation.gate_holdout else ""
            lines += [
                f"On the {title}, {scores.rows:,} stones{gate}:",
                "",
                "| | MAPE | RMSE (USD) | MAE (USD) | R² |",
                "|---|---|---|---|---|",
                _metrics_row("candidate", scores.candidate),
            ]
            if scores.production:
                lines.append(_metrics_row(f"production v{version}", scores.production))
            lines.append("")
        lines += [f"Gate: {evaluation.reason}", ""]
    if run.registration is not None:
        lines += [
            f"Registered as version {run.registration.version} ({run.registration.status}).",
            "",
        ]
    if run.deployment is not None:
        lines += [f"Deployment: {run.deployment.reason}", ""]
    if model is not None and holdout is not None:
        plots = _plots(model, holdout, directory)
        files += plots
        lines += ["## Candidate on the frozen holdout", ""]
        lines += [f"![{name}]({name})" for name in plots]
        lines.append("")
    if run.failure is not None or run.error is not None:
        error = run.error or {}
        lines += [
            "## Failure",
            "",
            f"Error `{run.failure.error if run.failure else error.get('Error')}`: "
            f"{run.failure.cause if run.failure else error.get('Cause')}",
            "",
            "Production was left unchanged.",
            "",
        ]
    (directory / "report.md").write_text("\n".join(lines))
    (directory / "run.json").write_text(json.dumps(state, indent=2, default=str))
    return files
