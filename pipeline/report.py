"""The run report: Markdown for people, with plots, from one pipeline execution's state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.evaluate import decile_metrics
from training.explain import group_contributions
from training.predict import PriceModel


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
    fig.tight_layout()
    fig.savefig(directory / "predicted_vs_actual.png", dpi=90)
    plt.close(fig)
    files.append("predicted_vs_actual.png")

    deciles = decile_metrics(actual, predicted)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([d["decile"] for d in deciles], [d["mape"] * 100 for d in deciles])
    ax.set_xlabel("price decile (1 = cheapest)")
    ax.set_ylabel("MAPE (%)")
    ax.set_title("Error per price decile, frozen holdout")
    fig.tight_layout()
    fig.savefig(directory / "error_per_decile.png", dpi=90)
    plt.close(fig)
    files.append("error_per_decile.png")

    sample = holdout.sample(min(2000, len(holdout)), random_state=0).reset_index(drop=True)
    names, grouped = group_contributions(model.contributions(sample))
    importance = np.abs(grouped).mean(axis=0)
    order = np.argsort(importance)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh([names[i] for i in order], importance[order])
    ax.set_xlabel("mean |contribution| to log price")
    ax.set_title("Top contributions (2,000 holdout stones)")
    fig.tight_layout()
    fig.savefig(directory / "top_contributions.png", dpi=90)
    plt.close(fig)
    files.append("top_contributions.png")
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
    fig.tight_layout()
    fig.savefig(directory / "drift.png", dpi=90)
    plt.close(fig)
    return "drift.png"


def outcome_line(state: dict[str, Any]) -> str:
    if "failure" in state or "error" in state:
        failure = state.get("failure") or {}
        return f"FAILED: {failure.get('cause') or state.get('error', {}).get('Cause', 'unknown')}"
    validation = state.get("validation") or {}
    if validation.get("already_processed"):
        return "Skipped: this batch was processed already."
    if validation and validation.get("accepted_rows") == 0:
        return "Nothing to train on: every row of the batch was quarantined."
    drift_check = state.get("drift_check") or {}
    if drift_check and not drift_check.get("retrain"):
        return f"No retraining: {drift_check.get('reason', '')}"
    deployment = state.get("deployment") or {}
    if deployment:
        return ("Deployed: " if deployment.get("deployed") else "Not deployed: ") + deployment.get(
            "reason", ""
        )
    evaluation = state.get("evaluation") or {}
    return evaluation.get("reason", "Run finished.")


def write_report(
    state: dict[str, Any],
    directory: Path,
    *,
    model: PriceModel | None = None,
    holdout: pd.DataFrame | None = None,
) -> list[str]:
    """Write report.md, run.json and the plots into `directory`; return the file names."""
    directory.mkdir(parents=True, exist_ok=True)
    run = state.get("run", {})
    lines = [f"# Facet pipeline run `{run.get('execution', '?')}`", ""]
    lines += [f"**{outcome_line(state)}**", ""]
    files = ["report.md", "run.json"]

    validation = state.get("validation") or {}
    if validation and not validation.get("already_processed"):
        lines += [
            "## Batch",
            "",
            f"`{validation.get('key')}`: {validation.get('input_rows')} rows, "
            f"{validation.get('accepted_rows')} accepted, {validation.get('quarantined_rows')} "
            f"quarantined, {validation.get('duplicate_rows', 0)} duplicates of earlier rows.",
            "",
        ]
        if validation.get("reasons"):
            lines += ["| reason | rows |", "|---|---|"]
            lines += [f"| {code} | {count} |" for code, count in validation["reasons"].items()]
            lines += [
                "",
                f"Quarantined rows with reasons: `{validation.get('quarantine_key')}`",
                "",
            ]
        production_error = validation.get("production_error")
        if production_error:
            lines += [
                f"Production v{production_error['version']} on this batch: MAPE "
                f"{production_error['batch_mape']:.2%} (its holdout MAPE: "
                f"{production_error['holdout_mape']:.2%}).",
                "",
            ]
    drift = validation.get("drift") or (state.get("drift_check") or {}).get("drift")
    if drift:
        lines += ["## Drift against the training data", "", "| feature | PSI | KS | level |"]
        lines += ["|---|---|---|---|"]
        for d in drift:
            ks = f"{d['ks']:.3f}" if d.get("ks") is not None else ""
            lines.append(f"| {d['feature']} | {d['psi']:.3f} | {ks} | {d['level']} |")
        files.append(_drift_plot(drift, directory))
        lines += ["", "![drift](drift.png)", ""]

    dataset = state.get("dataset") or {}
    if dataset:
        lines += [
            "## Dataset version",
            "",
            f"`{dataset.get('dataset_hash', '')[:16]}`: {dataset.get('rows')} training rows from "
            f"{len(dataset.get('sources', []))} sources; {dataset.get('holdout_rows_removed', 0)} "
            "rows that repeat holdout stones were kept out.",
            f"Why retrain: {dataset.get('retrain_reason', '')}",
            "",
        ]
    evaluation = state.get("evaluation") or {}
    if evaluation:
        candidate = evaluation["candidate"]
        metrics = candidate["metrics"]
        lines += [
            "## Candidate model",
            "",
            f"{candidate['family']} from training job `{candidate['training_job']}`; "
            f"artifact sha256 `{candidate['artifact_sha256'][:16]}...`.",
            "",
            "| | MAPE | RMSE (USD) | MAE (USD) | R² |",
            "|---|---|---|---|---|",
            f"| candidate | {metrics['mape']:.2%} | {metrics['rmse']:.0f} | {metrics['mae']:.0f} | "
            f"{metrics['r2']:.4f} |",
        ]
        production = evaluation.get("production")
        if production:
            m = production["metrics"]
            lines.append(
                f"| production v{production['version']} | {m['mape']:.2%} | {m['rmse']:.0f} | "
                f"{m['mae']:.0f} | {m['r2']:.4f} |"
            )
        lines += ["", f"Gate: {evaluation.get('reason')}", ""]
    registration = state.get("registration") or {}
    if registration:
        lines += [
            f"Registered as version {registration.get('version')} ({registration.get('status')}).",
            "",
        ]
    deployment = state.get("deployment") or {}
    if deployment:
        lines += [f"Deployment: {deployment.get('reason')}", ""]
    if model is not None and holdout is not None:
        plots = _plots(model, holdout, directory)
        files += plots
        lines += ["## Candidate on the frozen holdout", ""]
        lines += [f"![{name}]({name})" for name in plots]
        lines.append("")
    failure = state.get("failure") or {}
    if failure or state.get("error"):
        lines += [
            "## Failure",
            "",
            f"Error `{failure.get('error') or state['error'].get('Error')}`: "
            f"{failure.get('cause') or state['error'].get('Cause')}",
            "",
            "Production was left unchanged.",
            "",
        ]
    (directory / "report.md").write_text("\n".join(lines))
    (directory / "run.json").write_text(json.dumps(state, indent=2, default=str))
    return files
