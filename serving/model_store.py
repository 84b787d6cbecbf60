"""The production model, as the registry says, loaded once and refreshed without a restart.

Production is the Approved package approved most recently (training.registry). Every
`model_refresh_seconds` a request starts a re-read of the registry in a background thread (only
the first load, with nothing to serve yet, waits for it); a new production package is downloaded,
checked against its recorded sha256 and schema version, and swapped in. If a refresh fails, the
current model keeps serving and the error is kept for /ready and the logs.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.names import PackageMetadata
from contracts.settings import Settings
from serving.errors import NoModelError
from training import registry
from training.artifact_store import fetch_model
from training.predict import PriceModel, load_model

log = logging.getLogger("facet.serving.models")


@dataclass(frozen=True)
class ModelInfo:
    version: int | None
    arn: str | None
    approved_at: str | None
    family: str
    holdout: dict[str, Any]
    dataset_hash: str
    code_version: str
    artifact_sha256: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "arn": self.arn,
            "approved_at": self.approved_at,
            "family": self.family,
            "holdout_metrics": self.holdout,
            "dataset_version": self.dataset_hash,
            "code_version": self.code_version,
            "artifact_sha256": self.artifact_sha256,
            "reason": self.reason,
        }


@dataclass
class LoadedModel:
    model: PriceModel
    info: ModelInfo


def _info(model: PriceModel, record: registry.PackageRecord | None, digest: str) -> ModelInfo:
    metadata = model.metadata
    return ModelInfo(
        version=record.version if record else None,
        arn=record.arn if record else None,
        approved_at=record.approved_at if record else None,
        family=model.family,
        holdout=dict(metadata.get("metrics", {}).get("holdout", {})),
        dataset_hash=str(metadata.get("dataset_hash", "")),
        code_version=str(metadata.get("code_version", "")),
        artifact_sha256=digest,
        reason=record.metadata.get(PackageMetadata.REASON, "") if record else "",
    )


@dataclass
class ModelStore:
    """Thread-safe holder of the production model; `clients` builds (sagemaker, s3) clients."""

    settings: Settings
    clients: Callable[[], tuple[Any, Any]]
    clock: Callable[[], float] = time.monotonic
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "facet-serving")
    _current: LoadedModel | None = None
    _checked_at: float | None = None
    last_error: str | None = None
    _refreshing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _start_lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> LoadedModel:
        """The model to price with. Only the very first load happens on the request path: once a
        model is loaded, a due refresh runs in a background thread and this returns at once."""
        if self._current is None:
            if self._due():
                with self._lock:
                    if self._current is None and self._due():
                        self._refresh()
        elif self._due():
            self._refresh_in_background()
        if self._current is None:
            raise NoModelError(
                "No model is approved yet, so no price can be given. Run the training pipeline "
                "(facet demo / facet ingest FILE) or approve a model version in the registry."
                + (f" Last registry error: {self.last_error}" if self.last_error else "")
            )
        return self._current

    def _refresh_in_background(self) -> None:
        # Its own lock: the refresh holds `_lock` for its whole duration, requests never wait on it.
        with self._start_lock:
            if self._refreshing or not self._due():
                return
            self._refreshing = True
            self._checked_at = self.clock()  # one refresh per period, however many requests

        def run() -> None:
            try:
                with self._lock:
                    self._refresh()
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="model-refresh", daemon=True).start()

    def wait_for_refresh(self, timeout: float = 30.0) -> None:
        """Block until a background refresh in flight has finished (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._refreshing and time.monotonic() < deadline:
            time.sleep(0.01)

    def current(self) -> LoadedModel | None:
        return self._current

    def _due(self) -> bool:
        return (
            self._checked_at is None
            or self.clock() - self._checked_at >= self.settings.model_refresh_seconds
        )

    def _refresh(self) -> None:
        self._checked_at = self.clock()
        try:
            if self.settings.model_dir is not None:
                if self._current is None:
                    model = load_model(self.settings.model_dir)
                    self._current = LoadedModel(model, _info(model, None, ""))
                return
            sagemaker, s3 = self.clients()
            records = registry.list_packages(sagemaker, self.settings.model_package_group)
            production = registry.production(records)
            if production is None:
                self.last_error = None
                return
            if self._current is not None and self._current.info.arn == production.arn:
                return
            model, digest = fetch_model(
                s3, production.model_data_url, self.cache_dir, production.artifact_sha256
            )
            previous = self._current.info.version if self._current else None
            self._current = LoadedModel(model, _info(model, production, digest))
            self.last_error = None
            log.info("serving model version %s (was %s)", production.version, previous)
        except Exception as error:  # keep serving what we have; say why in /ready and the log
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning("model refresh failed, keeping the current model: %s", self.last_error)

    def history(self) -> list[registry.PackageRecord]:
        sagemaker, _ = self.clients()
        return registry.list_packages(sagemaker, self.settings.model_package_group)
