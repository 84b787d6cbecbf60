"""The registry → experiment link: the package records its MLflow run, the run its package.

The package's metadata carries the run id (written by the training job into the artifact); once
the package exists, its ARN, version and status are set as tags on that run, so a reader of
either side finds the other. A tracking server that fails here costs the link, never the model.
"""

from __future__ import annotations

import logging

from training.registry import PackageRecord

log = logging.getLogger("facet.pipeline.tracking")
PACKAGE_ARN_TAG = "facet.model_package_arn"
PACKAGE_VERSION_TAG = "facet.model_package_version"
REGISTRY_STATUS_TAG = "facet.registry_status"


def link_run(tracking_uri: str, run_id: str, record: PackageRecord) -> bool:
    """Tag the run with its package; False (and a warning) when it could not be done."""
    if not tracking_uri or not run_id:
        return False
    try:
        from mlflow import MlflowClient  # only here: the import costs ~2 s

        client = MlflowClient(tracking_uri=tracking_uri)
        client.set_tag(run_id, PACKAGE_ARN_TAG, record.arn)
        client.set_tag(run_id, PACKAGE_VERSION_TAG, str(record.version))
        client.set_tag(run_id, REGISTRY_STATUS_TAG, record.status)
    except Exception as error:  # the package stands; only the link is missing
        log.warning("could not tag MLflow run %s with %s: %s", run_id, record.arn, error)
        return False
    return True
