"""The model a serving version prices with: pinned, or following production without a restart.

Pinned (a Lambda version published by the rollout, contracts.rollout): the environment names one
model package (`FACET_MODEL_PIN`); it is loaded once, checked against its sha256, and never
replaced, so every price of that version traces to that package.

Not pinned (a local artifact aside), production is the package the production pointer names (an
SSM parameter the deploy function alone writes, pipeline.promotion): one GetParameter per
refresh, whatever the registry holds. Every `model_refresh_seconds` a request starts that re-read
in a background thread (only the first load, with nothing to serve yet, waits for it); a new
production package is downloaded, checked against its recorded sha256 and schema version, and
swapped in. If a refresh fails, the current model keeps serving and the error is kept for /ready
and the logs. The model history (/v1/models) lists the registry, at most once per refresh period.
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

from contracts.rollout import ModelPin
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


def _info(model: PriceModel, pointer: registry.ProductionPointer | None, digest: str) -> ModelInfo:
    metadata = model.metadata
    return ModelInfo(
        version=pointer.version if pointer else None,
        arn=pointer.arn if pointer else None,
        approved_at=(pointer.approved_at or None) if pointer else None,
        family=model.family,
        holdout=dict(metadata.get("metrics", {}).get("holdout", {})),
        dataset_hash=str(metadata.get("dataset_hash", "")),
        code_version=str(metadata.get("code_version", "")),
        artifact_sha256=digest,
        reason=pointer.reason if pointer else "",
    )


@dataclass(frozen=True)
class AwsClients:
    sagemaker: Any
    s3: Any
    ssm: Any


@dataclass
class ModelStore:
    """Thread-safe holder of the production model; `clients` builds the AWS clients."""

    settings: Settings
    clients: Callable[[], AwsClients]
    clock: Callable[[], float] = time.monotonic
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "facet-serving")
    _current: LoadedModel | None = None
    _checked_at: float | None = None
    last_error: str | None = None
    _refreshing: bool = False
    _history: tuple[float, list[registry.PackageRecord]] | None = None
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
        if self.settings.model_pin and self._current is not None:
            return False  # a pinned version serves its one model for ever
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
            aws = self.clients()
            pointer = (
                ModelPin.from_json(self.settings.model_pin)
                if self.settings.model_pin
                else registry.read_pointer(aws.ssm, self.settings.production_model_param)
            )
            if pointer.arn is None:
                self.last_error = None
                return
            if self._current is not None and self._current.info.arn == pointer.arn:
                self.last_error = None
                return
            model, digest = fetch_model(
                aws.s3, pointer.model_data_url, self.cache_dir, pointer.artifact_sha256
            )
            previous = self._current.info.version if self._current else None
            self._current = LoadedModel(model, _info(model, pointer, digest))
            self.last_error = None
            log.info("serving model version %s (was %s)", pointer.version, previous)
        except Exception as error:  # keep serving what we have; say why in /ready and the log
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning("model refresh failed, keeping the current model: %s", self.last_error)

    def history(self) -> list[registry.PackageRecord]:
        """Every package of the group, re-listed at most once per refresh period."""
        cached = self._history
        if cached is not None and self.clock() - cached[0] < self.settings.model_refresh_seconds:
            return cached[1]
        records = registry.list_packages(
            self.clients().sagemaker, self.settings.model_package_group
        )
        self._history = (self.clock(), records)
        return records
