"""The one definition of a diamond: its features, their types and their valid domains.

Data validation, the feature transform, the API request model and the docs all read this module;
none of them restates a range or a category list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

SCHEMA_VERSION: Final = "1"


@dataclass(frozen=True)
class NumericFeature:
    name: str
    unit: str
    description: str
    minimum: float
    maximum: float
    minimum_inclusive: bool
    example: float

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value >= self.minimum if self.minimum_inclusive else value > self.minimum
        return above and value <= self.maximum

    def domain_text(self) -> str:
        low = "[" if self.minimum_inclusive else "("
        return f"{low}{self.minimum:g}, {self.maximum:g}]"


@dataclass(frozen=True)
class OrdinalFeature:
    """A categorical feature whose levels are listed from worst to best."""

    name: str
    description: str
    levels: tuple[str, ...]
    example: str

    def code(self, level: str) -> int:
        return self.levels.index(level)

    def domain_text(self) -> str:
        return ", ".join(self.levels)


CARAT = NumericFeature("carat", "ct", "Weight of the stone in carats.", 0.0, 10.0, False, 0.7)
CUT = OrdinalFeature(
    "cut",
    "Quality of the cut, worst to best.",
    ("Fair", "Good", "Very Good", "Premium", "Ideal"),
    "Ideal",
)
COLOR = OrdinalFeature(
    "color",
    "Colour grade, J (worst, most tinted) to D (best, colourless).",
    ("J", "I", "H", "G", "F", "E", "D"),
    "G",
)
CLARITY = OrdinalFeature(
    "clarity",
    "Clarity grade, worst to best.",
    ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"),
    "VS2",
)
DEPTH = NumericFeature(
    "depth", "%", "Total depth percentage: 2 z / (x + y) x 100.", 40.0, 80.0, True, 61.8
)
TABLE = NumericFeature(
    "table", "%", "Width of the top facet relative to the widest point.", 40.0, 100.0, True, 57.0
)
X = NumericFeature("x", "mm", "Length in millimetres.", 0.0, 15.0, False, 5.7)
Y = NumericFeature("y", "mm", "Width in millimetres.", 0.0, 15.0, False, 5.71)
Z = NumericFeature("z", "mm", "Depth in millimetres.", 0.0, 10.0, False, 3.53)
PRICE = NumericFeature(
    "price", "USD", "Appraised price in US dollars.", 0.0, 1_000_000.0, False, 2401
)

NUMERIC_FEATURES: Final = (CARAT, DEPTH, TABLE, X, Y, Z)
ORDINAL_FEATURES: Final = (CUT, COLOR, CLARITY)
FEATURES: Final[tuple[NumericFeature | OrdinalFeature, ...]] = (
    CARAT,
    CUT,
    COLOR,
    CLARITY,
    DEPTH,
    TABLE,
    X,
    Y,
    Z,
)
FEATURE_NAMES: Final = tuple(feature.name for feature in FEATURES)
LABEL: Final = PRICE
LABEL_NAME: Final = PRICE.name
LABELLED_COLUMNS: Final = (*FEATURE_NAMES, LABEL_NAME)
FEATURES_BY_NAME: Final = {feature.name: feature for feature in (*FEATURES, PRICE)}

# Features a person thinks of as one thing: the size of the stone.
EXPLANATION_GROUPS: Final = {"size": ("carat", "x", "y", "z")}

# More of these never lowers the price, all else equal (ordinal codes rise with quality).
MONOTONE_INCREASING: Final = ("carat", "color", "clarity")


# A diamond's weight follows from its size: carat ≈ x · y · z · CARAT_PER_CUBIC_MM. The constant
# is the median of carat / (x · y · z) over the classic data's 53,920 valid rows; 99.92 % of them
# lie within DIMENSION_TOLERANCE of it, so a stone outside it is most likely mistyped.
CARAT_PER_CUBIC_MM: Final = 0.00612
DIMENSION_TOLERANCE: Final = 0.15


def dimension_warning(carat: float, x: float, y: float, z: float) -> str | None:
    """A sentence for a person when the stone's dimensions and its weight disagree, else None."""
    implied = x * y * z * CARAT_PER_CUBIC_MM
    if implied <= 0 or carat <= 0:
        return None
    ratio = carat / implied
    if 1 / (1 + DIMENSION_TOLERANCE) <= ratio <= 1 + DIMENSION_TOLERANCE:
        return None
    return (
        f"The dimensions {x:g} × {y:g} × {z:g} mm suggest about {implied:.2f} ct, but carat is "
        f"{carat:g}: check carat, x, y and z (the price uses all four)."
    )


def explanation_group(feature_name: str) -> str:
    for group, members in EXPLANATION_GROUPS.items():
        if feature_name in members:
            return group
    return feature_name


def _field_for(feature: NumericFeature | OrdinalFeature) -> tuple[Any, Any]:
    if isinstance(feature, OrdinalFeature):
        allowed = Literal[feature.levels]  # type: ignore[valid-type,name-defined]
        return (
            allowed,
            Field(
                description=f"{feature.description} One of: {feature.domain_text()}.",
                examples=[feature.example],
            ),
        )
    inclusive = feature.minimum_inclusive
    return (
        float,
        Field(
            description=(
                f"{feature.description} Unit: {feature.unit}. Range {feature.domain_text()}."
            ),
            examples=[feature.example],
            # Strict: JSON true or "0.7" is not a weight; CSV cells are converted before this.
            strict=True,
            allow_inf_nan=False,
            ge=feature.minimum if inclusive else None,
            gt=None if inclusive else feature.minimum,
            le=feature.maximum,
        ),
    )


def example_diamond() -> dict[str, Any]:
    return {feature.name: feature.example for feature in FEATURES}


# The API request model: built from the definitions above so it cannot drift from them.
Diamond: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Diamond",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [example_diamond()]},
    ),
    __doc__="One diamond's characteristics.",
    **{feature.name: _field_for(feature) for feature in FEATURES},
)


def explanation_factor_names() -> tuple[str, ...]:
    """The explanation's factors in schema order, each group once (size, cut, color, ...)."""
    return tuple(dict.fromkeys(explanation_group(feature.name) for feature in FEATURES))


# The hosting contract's text/csv answer: one headerless line per stone, in these columns. Prices
# are in cents' precision; the base price and factors at full precision, so that base x factors
# gives the price back to the cent.
SCORED_PRICE_COLUMNS: Final = ("price_usd", "low_usd", "high_usd")
SCORED_WARNINGS_COLUMN: Final = "warnings"


def scored_columns(explain: bool) -> tuple[str, ...]:
    explanation = (
        ("base_price_usd", *(f"factor_{name}" for name in explanation_factor_names()))
        if explain
        else ()
    )
    return (*SCORED_PRICE_COLUMNS, *explanation, SCORED_WARNINGS_COLUMN)
