"""Facet's sequence diagrams as code, drawn with matplotlib (PNG beside the other diagrams).

    python diagrams/facet_sequences.py [OUT_DIR]     # default: diagrams/

Three flows: a pipeline run, a priced request, an approval and a rollback. A message that is a
state of the training pipeline names it (`state=`), and a test checks each such name against the
ASL file, so the sequence cannot describe steps the state machine does not have.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
ROW = 0.42  # inches per step
COLUMN = 1.9  # inches per participant


@dataclass(frozen=True)
class Step:
    """A message from one participant to another (a reply when `reply`), or, with `branch`, a
    band across the diagram naming an alternative path."""

    source: str = ""
    target: str = ""
    text: str = ""
    reply: bool = False
    branch: str = ""
    state: str = ""  # the training pipeline's ASL state this message is, if any


@dataclass(frozen=True)
class Sequence:
    name: str
    title: str
    participants: tuple[str, ...]
    steps: tuple[Step, ...]


PIPELINE_RUN = Sequence(
    "sequence_pipeline_run",
    "A pipeline run: a batch lands, a model is registered (pipeline/training_pipeline.asl.json)",
    (
        "uploader",
        "S3 lake",
        "EventBridge rule",
        "Step Functions",
        "step Lambdas",
        "SageMaker\ntraining job",
        "Model Registry",
    ),
    (
        Step("uploader", "S3 lake", "PUT raw/diamonds_raw_<stamp>.csv"),
        Step("S3 lake", "EventBridge rule", "Object Created (raw/ prefix)"),
        Step("EventBridge rule", "Step Functions", "StartExecution (input transformer)"),
        Step(
            "Step Functions",
            "step Lambdas",
            "validate, quarantine, verdict",
            state="Validate batch",
        ),
        Step(
            branch="already processed (ledger) → Skip duplicate batch; inconsistent labels or "
            "no rows → stop before training"
        ),
        Step(
            branch="or, from the daily schedule: Check drift — no drift or too few stones → end; "
            "drifted → Build dataset"
        ),
        Step("Step Functions", "step Lambdas", "check drift (scheduled runs)", state="Check drift"),
        Step(
            "Step Functions",
            "step Lambdas",
            "build dataset (content-hashed)",
            state="Build dataset",
        ),
        Step(
            "Step Functions",
            "SageMaker\ntraining job",
            "CreateTrainingJob",
            state="Start training job",
        ),
        Step("SageMaker\ntraining job", "S3 lake", "read curated/datasets/, holdout"),
        Step(
            "Step Functions",
            "SageMaker\ntraining job",
            "DescribeTrainingJob (poll)",
            state="Check training job",
        ),
        Step(
            "SageMaker\ntraining job", "Step Functions", "Completed / Failed + reason", reply=True
        ),
        Step(
            "Step Functions",
            "step Lambdas",
            "evaluate: frozen holdout, recent data",
            state="Evaluate model",
        ),
        Step(
            "Step Functions",
            "step Lambdas",
            "register with metrics and reason",
            state="Register model",
        ),
        Step("step Lambdas", "Model Registry", "CreateModelPackage (Pending / Rejected)"),
        Step(
            branch="better than production? yes → Deploy model (approve, or wait for a person); "
            "no → report only"
        ),
        Step("Step Functions", "step Lambdas", "write the run report", state="Write report"),
        Step(
            branch="any task fails (every Task catches States.ALL) → Record failure → "
            "Pipeline failed (the alarm watches failed executions)"
        ),
        Step(
            "Step Functions",
            "step Lambdas",
            "failure report, release the ledger claim",
            state="Record failure",
        ),
    ),
)

PRICED_REQUEST = Sequence(
    "sequence_priced_request",
    "A priced request: API Gateway → Lambda → model store → inference log",
    (
        "client",
        "API Gateway",
        "serving Lambda\n(alias live)",
        "model store\n(in process)",
        "SSM pointer",
        "S3 artifacts",
        "S3 lake\ninference/",
    ),
    (
        Step("client", "API Gateway", "POST /prod/v1/prices (x-api-key)"),
        Step(branch="no key → 403; throttled → 429; body not a Diamond → 422 (gateway responses)"),
        Step("API Gateway", "serving Lambda\n(alias live)", "invoke (REST proxy event)"),
        Step("serving Lambda\n(alias live)", "model store\n(in process)", "current model"),
        Step(branch="every 30 s, in a background thread (only the first load waits)"),
        Step("model store\n(in process)", "SSM pointer", "GetParameter"),
        Step(
            "model store\n(in process)", "S3 artifacts", "GetObject model.tar.gz (new version only)"
        ),
        Step(
            "model store\n(in process)", "model store\n(in process)", "check sha256, schema; swap"
        ),
        Step("model store\n(in process)", "serving Lambda\n(alias live)", "model", reply=True),
        Step("serving Lambda\n(alias live)", "serving Lambda\n(alias live)", "price + explanation"),
        Step(
            "serving Lambda\n(alias live)",
            "API Gateway",
            "200 {price, range, explanation}",
            reply=True,
        ),
        Step("API Gateway", "client", "200 (request id)", reply=True),
        Step(branch="1,000 rows waiting or the oldest 10 s old"),
        Step(
            "serving Lambda\n(alias live)", "S3 lake\ninference/", "PutObject date=<day>/<time>.csv"
        ),
    ),
)

APPROVAL_AND_ROLLBACK = Sequence(
    "sequence_approval_rollback",
    "Approval and rollback: the registry decides, the deploy function rolls out",
    (
        "person\n(console / facet)",
        "Model Registry",
        "EventBridge rule",
        "deploy Lambda",
        "serving Lambda\nversions, alias",
        "CodeDeploy",
        "CloudWatch\nalarms",
        "SSM pointer",
    ),
    (
        Step("person\n(console / facet)", "Model Registry", "UpdateModelPackage Approved"),
        Step("Model Registry", "EventBridge rule", "Model Package State Change"),
        Step("EventBridge rule", "deploy Lambda", "invoke (async, retried, dead letters)"),
        Step("deploy Lambda", "serving Lambda\nversions, alias", "PublishVersion (pinned to it)"),
        Step(branch="shadow first where the stage asks for it (prod: 10 % for 60 min)"),
        Step("deploy Lambda", "CodeDeploy", "CreateDeployment (canary on alias live)"),
        Step("CodeDeploy", "serving Lambda\nversions, alias", "shift 10 %, then 100 %"),
        Step("CodeDeploy", "CloudWatch\nalarms", "watch 5xx, p99, price disagreement"),
        Step("CodeDeploy", "EventBridge rule", "deployment SUCCESS / FAILURE / STOP"),
        Step("EventBridge rule", "deploy Lambda", "invoke"),
        Step(branch="SUCCESS → production moves; an alarm → CodeDeploy rolls the alias back"),
        Step("deploy Lambda", "SSM pointer", "PutParameter (new production)"),
        Step("deploy Lambda", "Model Registry", "rolled back: Rejected with the alarm as reason"),
        Step(branch="rollback by hand: approve an earlier version again (facet rollback N)"),
        Step("person\n(console / facet)", "Model Registry", "UpdateModelPackage (v N) Approved"),
    ),
)

SEQUENCES = (PIPELINE_RUN, PRICED_REQUEST, APPROVAL_AND_ROLLBACK)


def draw(sequence: Sequence, out_dir: Path) -> Path:
    columns = {name: i for i, name in enumerate(sequence.participants)}
    width = COLUMN * len(columns) + 0.6
    height = ROW * (len(sequence.steps) + 3) + 0.6
    figure, axes = plt.subplots(figsize=(width, height), dpi=110)
    axes.set_xlim(-0.6, len(columns) - 0.4)
    bottom = len(sequence.steps) + 1.2
    axes.set_ylim(bottom, -1.6)
    axes.axis("off")
    axes.set_title(sequence.title, fontsize=11, loc="left")
    for name, x in columns.items():
        axes.text(
            x,
            -0.9,
            name,
            ha="center",
            va="center",
            fontsize=8.5,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#e8eef7", "edgecolor": "#4a6fa5"},
        )
        axes.plot([x, x], [-0.45, bottom - 0.2], color="#9aa5b1", linestyle="--", linewidth=0.8)
    for row, step in enumerate(sequence.steps, start=0):
        y = row + 0.2
        if step.branch:
            axes.add_patch(
                plt.Rectangle((-0.55, y - 0.38), len(columns) - 0.1, 0.7, color="#fff4d6", zorder=0)
            )
            axes.text(-0.5, y, step.branch, va="center", fontsize=7.5, style="italic")
            continue
        start, end = columns[step.source], columns[step.target]
        colour = "#5b6b7a" if step.reply else "#1f3b5a"
        if start == end:  # a participant working on its own
            axes.annotate(
                "",
                xy=(start + 0.05, y + 0.18),
                xytext=(start + 0.05, y - 0.12),
                arrowprops={
                    "arrowstyle": "->",
                    "color": colour,
                    "connectionstyle": "arc3,rad=-1.2",
                },
            )
            axes.text(start + 0.25, y, step.text, va="center", fontsize=7.5)
            continue
        axes.annotate(
            "",
            xy=(end, y),
            xytext=(start, y),
            arrowprops={
                "arrowstyle": "->",
                "color": colour,
                "linestyle": "--" if step.reply else "-",
                "linewidth": 1.1,
            },
        )
        label = step.text + (f"   [{step.state}]" if step.state else "")
        axes.text((start + end) / 2, y - 0.12, label, ha="center", va="bottom", fontsize=7.5)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{sequence.name}.png"
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def render_all(out_dir: Path = HERE) -> dict[str, Path]:
    return {sequence.name: draw(sequence, out_dir) for sequence in SEQUENCES}


if __name__ == "__main__":
    for name, path in render_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE).items():
        print(f"{name}: {path}")
