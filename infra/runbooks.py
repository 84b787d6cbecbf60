"""Every alarm's description ends with its runbook: a section of docs/runbooks.md."""

from __future__ import annotations

from typing import Final

RUNBOOKS: Final = "docs/runbooks.md"


def with_runbook(description: str, section: str) -> str:
    return f"{description.rstrip()} Runbook: {RUNBOOKS}#{section}"
