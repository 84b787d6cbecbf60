"""The pipeline's one ASL file: where it is, what it substitutes, and its states.

The CDK app deploys this file with `DefinitionBody.from_file` and `definition_substitutions`; the
local emulation substitutes local ARNs into the same file and creates it in the emulator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from contracts.names import ASL_FILE, SCORING_ASL_FILE, AslSubstitution, ScoringSubstitution

ASL_PATH: Final = Path(__file__).with_name(ASL_FILE)
# The bulk scoring flow's own state machine (pipeline.scoring), substituted the same way.
SCORING_ASL_PATH: Final = Path(__file__).with_name(SCORING_ASL_FILE)
_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class SubstitutionError(ValueError):
    """A placeholder of the ASL file has no value, or a value names no placeholder."""


def raw_definition() -> str:
    return ASL_PATH.read_text()


def placeholders(text: str | None = None) -> set[str]:
    return set(_PLACEHOLDER.findall(raw_definition() if text is None else text))


def substitute(values: Mapping[str, str], text: str | None = None) -> str:
    """The definition with every `${Name}` replaced, as CloudFormation does."""
    source = raw_definition() if text is None else text
    wanted = placeholders(source)
    missing, unknown = wanted - set(values), set(values) - wanted
    if missing or unknown:
        raise SubstitutionError(
            f"missing values: {sorted(missing)}; unknown names: {sorted(unknown)}"
        )
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], source)


def state_names(definition: str | None = None) -> set[str]:
    document: dict[str, Any] = json.loads(raw_definition() if definition is None else definition)
    return set(document["States"])


def expected_substitutions() -> set[str]:
    return {member.value for member in AslSubstitution}


def scoring_definition(values: Mapping[str, str] | None = None) -> str:
    """The scoring flow's ASL, substituted when `values` are given."""
    text = SCORING_ASL_PATH.read_text()
    return text if values is None else substitute(values, text)


def expected_scoring_substitutions() -> set[str]:
    return {member.value for member in ScoringSubstitution}
