"""Model artifacts in S3: SageMaker's model.tar.gz, checksummed, unpacked, loaded.

Used by the pipeline (to evaluate) and by serving (to load production), with numpy and lightgbm
only. A download whose sha256 differs from the one recorded in the registry is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from training.predict import ArtifactError, PriceModel, load_model


def parse_s3_uri(uri: str, *, key_required: bool = True) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI; with `key_required=False` the key may be an empty prefix."""
    match = re.match(r"^s3://([^/]+)/(.+)$" if key_required else r"^s3://([^/]+)/?(.*)$", uri)
    if not match:
        raise ArtifactError(f"not an s3:// {'object ' if key_required else ''}URI: {uri!r}")
    return match.group(1), match.group(2)


def download(s3: Any, model_data_url: str) -> bytes:
    bucket, key = parse_s3_uri(model_data_url)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise ArtifactError(f"{model_data_url} does not exist") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unpack(tarball: bytes, directory: Path) -> Path:
    """Extract model.tar.gz safely (no absolute paths, links or parent references)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        archive.extractall(directory, filter="data")
    return directory


def pack(model_dir: Path) -> bytes:
    """model.tar.gz as SageMaker writes it: the model directory's files at the archive root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=path.relative_to(model_dir).as_posix())
    return buffer.getvalue()


def fetch_model(
    s3: Any, model_data_url: str, cache_dir: Path, expected_sha256: str | None = None
) -> tuple[PriceModel, str]:
    """Download, verify and load a model; returns it with the tarball's sha256."""
    tarball = download(s3, model_data_url)
    digest = sha256(tarball)
    if expected_sha256 and digest != expected_sha256:
        raise ArtifactError(
            f"{model_data_url}: sha256 {digest[:12]}... does not match the registry's "
            f"{expected_sha256[:12]}...; refusing to load it"
        )
    target = cache_dir / digest
    if (target / "metadata.json").exists():
        try:
            return load_model(target), digest
        except ArtifactError:  # the download matched; the cached copy is damaged: unpack again
            shutil.rmtree(target, ignore_errors=True)
    unpack_once(tarball, target)
    return load_model(target), digest


def unpack_once(tarball: bytes, target: Path) -> Path:
    """Unpack into a private directory, then rename it into place: processes that load the same
    model at once (gateway workers, Lambda environments on one host) share the cache, and none
    may read another's half-written files (a sha256 mismatch it would report as an altered
    artifact)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:16]}-", dir=target.parent))
    try:
        unpack(tarball, staging)
        try:
            staging.rename(target)
        except OSError:  # there already: another process's complete copy, or a stale partial one
            if not (target / "metadata.json").exists():
                shutil.rmtree(target, ignore_errors=True)
                with contextlib.suppress(OSError):
                    staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
