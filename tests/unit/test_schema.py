from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.schema import CUT, FEATURE_NAMES, Diamond, example_diamond


def test_api_model_fields_are_the_schema_features() -> None:
    assert tuple(Diamond.model_fields) == FEATURE_NAMES


def test_api_model_rejects_unknown_cut_listing_allowed_values() -> None:
    with pytest.raises(ValidationError) as error:
        Diamond.model_validate({**example_diamond(), "cut": "Excellent"})
    message = str(error.value)
    for level in CUT.levels:
        assert level in message


@pytest.mark.parametrize(
    ("field", "value"), [("carat", 0), ("carat", -1), ("depth", 95), ("x", 0), ("z", 12)]
)
def test_api_model_rejects_out_of_range_numbers(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as error:
        Diamond.model_validate({**example_diamond(), field: value})
    assert error.value.errors()[0]["loc"] == (field,)


def test_api_model_rejects_extra_fields() -> None:
    with pytest.raises(ValidationError):
        Diamond.model_validate({**example_diamond(), "price": 100})


def test_api_model_schema_documents_ranges() -> None:
    schema = Diamond.model_json_schema()
    assert schema["properties"]["carat"]["exclusiveMinimum"] == 0
    assert schema["properties"]["cut"]["enum"] == list(CUT.levels)
