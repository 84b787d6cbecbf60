"""The production pointer: which model package is production, in one SSM parameter.

Written only by the deploy function (pipeline/promotion.py) on the registry's state-change
events; read by serving and the pipeline. It carries what serving needs to load the model
without calling the registry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProductionPointer:
    arn: str | None = None
    version: int | None = None
    model_data_url: str = ""
    artifact_sha256: str = ""
    approved_at: str = ""
    reason: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProductionPointer:
        data = json.loads(text or "{}")
        known = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)
