"""The SageMaker Model Registry as Facet uses it, and the production pointer.

Every trained model becomes a model package in one group. Production is the package the
production pointer (an SSM parameter) names; the deploy function is its only writer, in response
to the registry's state-change events (pipeline.promotion): approving an earlier version is a
rollback, and serving follows without any code or configuration change. Status updates always
re-send the package's metadata and description (moto replaced what it was not given; the local
emulator's seam now keeps it, as AWS does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from contracts.names import PackageMetadata
from contracts.pointer import ProductionPointer


class ApprovalStatus(StrEnum):
    APPROVED = "Approved"
    REJECTED = "Rejected"
    PENDING = "PendingManualApproval"


class RegistryError(Exception):
    """The registry does not hold what was asked for."""


@dataclass(frozen=True)
class PackageRecord:
    arn: str
    version: int
    status: str
    created_at: dt.datetime
    description: str
    metadata: dict[str, str] = field(default_factory=dict)
    model_data_url: str = ""

    @property
    def approved_at(self) -> str:
        return self.metadata.get(PackageMetadata.APPROVED_AT, "")

    @property
    def artifact_sha256(self) -> str:
        return self.metadata.get(PackageMetadata.ARTIFACT_SHA256, "")

    def metric(self, name: PackageMetadata) -> float | None:
        value = self.metadata.get(name)
        return float(value) if value not in (None, "") else None


def pointer_to(record: PackageRecord) -> ProductionPointer:
    return ProductionPointer(
        arn=record.arn,
        version=record.version,
        model_data_url=record.model_data_url,
        artifact_sha256=record.artifact_sha256,
        approved_at=record.approved_at,
        reason=record.description or record.metadata.get(PackageMetadata.REASON, ""),
    )


def read_pointer(ssm: Any, name: str) -> ProductionPointer:
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return ProductionPointer()
    return ProductionPointer.from_json(value)


def write_pointer(ssm: Any, name: str, pointer: ProductionPointer) -> None:
    ssm.put_parameter(Name=name, Value=pointer.to_json(), Type="String", Overwrite=True)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def ensure_group(client: Any, group: str, description: str = "Facet diamond price models") -> None:
    try:
        client.describe_model_package_group(ModelPackageGroupName=group)
    except client.exceptions.ClientError:
        client.create_model_package_group(
            ModelPackageGroupName=group, ModelPackageGroupDescription=description
        )


def _record(described: dict[str, Any]) -> PackageRecord:
    containers = described.get("InferenceSpecification", {}).get("Containers", [])
    return PackageRecord(
        arn=described["ModelPackageArn"],
        version=int(described.get("ModelPackageVersion", 0)),
        status=described.get("ModelApprovalStatus", ""),
        created_at=described["CreationTime"],
        description=described.get("ApprovalDescription", ""),
        metadata=dict(described.get("CustomerMetadataProperties", {})),
        model_data_url=containers[0].get("ModelDataUrl", "") if containers else "",
    )


def describe(client: Any, arn: str) -> PackageRecord:
    return _record(client.describe_model_package(ModelPackageName=arn))


def stamp_approval(client: Any, record: PackageRecord) -> PackageRecord:
    """Record when a package became production (the deploy function's job, nobody else's)."""
    metadata = {**record.metadata, PackageMetadata.APPROVED_AT: now_iso()}
    client.update_model_package(
        ModelPackageArn=record.arn,
        ModelApprovalStatus=record.status,
        ApprovalDescription=record.description[:1000],
        CustomerMetadataProperties=metadata,
    )
    return describe(client, record.arn)


def list_packages(client: Any, group: str) -> list[PackageRecord]:
    """Every package of the group, oldest first, with its metadata."""
    arns: list[str] = []
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime"}
    while True:
        page = client.list_model_packages(**kwargs)
        arns += [summary["ModelPackageArn"] for summary in page["ModelPackageSummaryList"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    records = [_record(client.describe_model_package(ModelPackageName=arn)) for arn in arns]
    return sorted(records, key=lambda r: r.version)


def next_version(client: Any, group: str) -> int:
    """The version the group's next package gets: one more than the newest (1 when empty).

    Two pipeline runs that overlap can both read the same number; the later registration then
    gets the next one, and its model keeps the name it was trained under (the package's
    `model_name` metadata says which name that is)."""
    newest = 0
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group}
    while True:
        try:
            page = client.list_model_packages(**kwargs)
        except client.exceptions.ClientError as error:
            if "does not exist" in str(error):  # no group yet: nothing registered
                return 1
            raise
        for summary in page["ModelPackageSummaryList"]:
            newest = max(newest, int(summary.get("ModelPackageVersion", 0)))
        if not page.get("NextToken"):
            return newest + 1
        kwargs["NextToken"] = page["NextToken"]


def production(records: list[PackageRecord]) -> PackageRecord | None:
    """The Approved package approved most recently, or None: an empty registry is a valid start."""
    approved = [r for r in records if r.status == ApprovalStatus.APPROVED]
    if not approved:
        return None
    return max(approved, key=lambda r: (r.approved_at, r.version))


def ever_approved(record: PackageRecord) -> bool:
    return record.status == ApprovalStatus.APPROVED or bool(record.approved_at)


def find_version(records: list[PackageRecord], version: int) -> PackageRecord:
    for record in records:
        if record.version == version:
            return record
    known = ", ".join(str(r.version) for r in records) or "none"
    raise RegistryError(f"no model version {version} in the registry (versions: {known})")


def register(
    client: Any,
    group: str,
    *,
    model_data_url: str,
    image: str,
    metadata: dict[str, str],
    description: str,
    metrics_s3_uri: str | None = None,
) -> PackageRecord:
    """Create a package awaiting its decision (PendingManualApproval) and return it."""
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": description[:1000],
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelApprovalStatus": ApprovalStatus.PENDING.value,
        "CustomerMetadataProperties": metadata,
    }
    if metrics_s3_uri:
        request["ModelMetrics"] = {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": metrics_s3_uri}
            }
        }
    arn = client.create_model_package(**request)["ModelPackageArn"]
    return _record(client.describe_model_package(ModelPackageName=arn))


def set_status(
    client: Any,
    record: PackageRecord,
    status: ApprovalStatus,
    reason: str,
    *,
    keep_reason: bool = False,
) -> PackageRecord:
    """Approve or reject a package with a reason a person understands.

    `keep_reason`: a later decision (a rollback, a person's approval) keeps the pipeline's
    original reason in the metadata and shows both in the description.
    """
    metadata = dict(record.metadata)
    if keep_reason and record.description:
        reason = f"{reason} | earlier: {record.description}"
    else:
        metadata[PackageMetadata.REASON] = reason[:256]
    client.update_model_package(
        ModelPackageArn=record.arn,
        ModelApprovalStatus=status.value,
        ApprovalDescription=reason[:1000],
        CustomerMetadataProperties=metadata,
    )
    return _record(client.describe_model_package(ModelPackageName=record.arn))
