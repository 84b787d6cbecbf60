"""The registry → experiment link: the package records its MLflow run, the run its package.

The package's metadata carries the run id (written by the training job into the artifact); once
the package exists, its ARN, version and status are set as tags on that run, so a reader of
either side finds the other. A tracking server that fails here costs the link, never the model.

A SageMaker tracking server (an ARN) is reached through the MLflow client and the
sagemaker-mlflow plugin, which signs the requests; a tracking server at a URL (the emulator's)
through MLflow's REST API directly (`runs/log-batch`), which spares the step the client's ~1.5 s
import.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Final

from training.registry import PackageRecord

log = logging.getLogger("facet.pipeline.tracking")
PACKAGE_ARN_TAG: Final = "facet.model_package_arn"
PACKAGE_VERSION_TAG: Final = "facet.model_package_version"
REGISTRY_STATUS_TAG: Final = "facet.registry_status"
REQUEST_TIMEOUT_SECONDS: Final = 10


def _tags(record: PackageRecord) -> dict[str, str]:
    return {
        PACKAGE_ARN_TAG: record.arn,
        PACKAGE_VERSION_TAG: str(record.version),
        REGISTRY_STATUS_TAG: record.status,
    }


def _tag_over_rest(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    body = {"run_id": run_id, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
    request = urllib.request.Request(
        f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/runs/log-batch",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        response.read(1024)


def _tag_with_client(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import RunTag

    MlflowClient(tracking_uri=tracking_uri).log_batch(
        run_id, tags=[RunTag(k, v) for k, v in tags.items()]
    )


def link_run(tracking_uri: str, run_id: str, record: PackageRecord) -> bool:
    """Tag the run with its package; False (and a warning) when it could not be done."""
    if not tracking_uri or not run_id:
        return False
    try:
        if tracking_uri.startswith(("http://", "https://")):
            _tag_over_rest(tracking_uri, run_id, _tags(record))
        else:
            _tag_with_client(tracking_uri, run_id, _tags(record))
    except Exception as error:  # the package stands; only the link is missing
        log.warning("could not tag MLflow run %s with %s: %s", run_id, record.arn, error)
        return False
    return True
