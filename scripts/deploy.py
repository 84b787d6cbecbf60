"""Deploy Facet to the AWS account of your credentials: `make deploy STAGE=dev` runs this.

    python scripts/deploy.py deploy --stage dev [--pipeline-image URI@sha256:...] [--dry-run]
    python scripts/deploy.py seed --stage dev       # (deploy does it) the lake's starting data
    python scripts/deploy.py destroy --stage dev
    python scripts/deploy.py delivery --repository owner/name

Finds the account and region from the credentials (boto3, as the AWS CLI does), bootstraps the
account and region for CDK if the bootstrap version parameter is missing, deploys the stage's
five stacks (never FacetDelivery, which an administrator deploys once), seeds the lake with the
reference data and the frozen holdout every pipeline run reads (once: a seeded lake is left as it
is), and prints the API's URL and how to read a partner key. Needs Docker when the images are
built here (no --pipeline-image/--serving-image); the delivery pipeline passes the images it
built once.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts.names import CLOUD_STAGES, BucketRole, StageNames  # noqa: E402

STACKS = (
    "FacetDataLake",
    "FacetTrainingPipeline",
    "FacetModelRegistry",
    "FacetServing",
    "FacetMonitoring",
)
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"


def target() -> tuple[str, str]:
    import boto3

    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    if not session.region_name:
        raise SystemExit("no AWS region: set AWS_REGION (or a default region in your profile)")
    return str(account), session.region_name


def bootstrapped(region: str) -> bool:
    import boto3

    ssm = boto3.client("ssm", region_name=region)
    try:
        ssm.get_parameter(Name=BOOTSTRAP_PARAMETER)
    except ssm.exceptions.ParameterNotFound:
        return False
    return True


def cdk(*arguments: str) -> list[str]:
    return ["npx", "cdk", *arguments]


def deploy_commands(
    stage: str, account: str, region: str, *, pipeline_image: str | None, serving_image: str | None
) -> list[list[str]]:
    context = ["-c", f"stage={stage}", "-c", f"account={account}", "-c", f"region={region}"]
    if pipeline_image:
        context += ["-c", f"pipelineImage={pipeline_image}"]
    if serving_image:
        context += ["-c", f"servingImage={serving_image}"]
    outputs = REPO / "build" / f"outputs-{stage}.json"
    return [
        cdk(
            "deploy",
            *STACKS,
            *context,
            "--require-approval",
            "never",
            "--outputs-file",
            str(outputs),
        )
    ]


def run(commands: list[list[str]], dry_run: bool) -> None:
    for command in commands:
        print("+ " + shlex.join(command), flush=True)
        if not dry_run:
            subprocess.run(command, cwd=REPO, check=True)


def seed(stage: str, account: str, region: str, *, dry_run: bool = False) -> dict[str, int]:
    """The reference data and the frozen holdout in the stage's lake, unless already there."""
    bucket = StageNames(stage).bucket(BucketRole.DATA_LAKE, account, region)
    print(f"+ seed s3://{bucket}/curated/ (reference data, frozen holdout)", flush=True)
    if dry_run:
        return {}
    import boto3

    from pipeline.seeding import seed_lake

    written = seed_lake(boto3.client("s3", region_name=region), bucket, archive_only=True)
    print(
        f"  {written['reference_rows']:,} reference rows and {written['holdout_rows']:,} holdout "
        "rows written"
        if written
        else "  already seeded: left as it is"
    )
    return written


def print_how_to_call(stage: str) -> None:
    outputs_file = REPO / "build" / f"outputs-{stage}.json"
    outputs = json.loads(outputs_file.read_text())
    serving = outputs.get(StageNames(stage).stack("serving"), {})
    url = next((v for k, v in serving.items() if k.startswith("PriceApiApiUrl")), "?")
    key = next((v for k, v in serving.items() if "PartnerExample" in k), "?")
    print(
        f"\nFacet {stage} is deployed. The price API: {url}\n"
        f"A partner key's value: aws apigateway get-api-key --include-value --api-key {key} "
        "--query value --output text\n"
        f'Try it:  curl -s {url}v1/model -H "x-api-key: $KEY"'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["deploy", "seed", "destroy", "delivery"])
    parser.add_argument("--stage", default="dev", choices=CLOUD_STAGES)
    parser.add_argument("--pipeline-image")
    parser.add_argument("--serving-image")
    parser.add_argument("--repository", help="owner/name of the GitHub repository (delivery)")
    parser.add_argument("--account")
    parser.add_argument("--region")
    parser.add_argument("--dry-run", action="store_true", help="Print the commands only.")
    args = parser.parse_args()
    account, region = (args.account, args.region) if args.account and args.region else target()
    commands: list[list[str]] = []
    if args.action == "seed":
        seed(args.stage, account, region, dry_run=args.dry_run)
        return
    if args.action != "destroy" and (args.dry_run or not bootstrapped(region)):
        commands.append(cdk("bootstrap", f"aws://{account}/{region}"))
    if args.action == "deploy":
        commands += deploy_commands(
            args.stage,
            account,
            region,
            pipeline_image=args.pipeline_image,
            serving_image=args.serving_image,
        )
    elif args.action == "destroy":
        commands.append(
            cdk(
                "destroy",
                *STACKS,
                "-c",
                f"stage={args.stage}",
                "-c",
                f"account={account}",
                "-c",
                f"region={region}",
                "--force",
            )
        )
    else:
        if not args.repository:
            raise SystemExit("delivery: --repository owner/name (REPOSITORY=owner/name)")
        commands.append(
            cdk(
                "deploy",
                "FacetDelivery",
                "-c",
                "delivery=true",
                "-c",
                f"githubRepository={args.repository}",
                "-c",
                f"account={account}",
                "-c",
                f"region={region}",
                "--require-approval",
                "broadening",
            )
        )
    run(commands, args.dry_run)
    if args.action == "deploy":
        seed(args.stage, account, region, dry_run=args.dry_run)
        if not args.dry_run:
            print_how_to_call(args.stage)


if __name__ == "__main__":
    main()
