"""The code version recorded with every model: a digest of the source that trains and serves it.

A digest of the files rather than a git commit, because a SageMaker training container or a Lambda
has the source but no repository.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_VERSION = "0.1.0"
_VERSIONED_PACKAGES = ("contracts", "training")


@lru_cache(maxsize=1)
def code_version() -> str:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in _VERSIONED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{PACKAGE_VERSION}+{digest.hexdigest()[:12]}"
