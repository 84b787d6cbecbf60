"""Pricing as a pure function of a loaded model and stones: prices, ranges, explanations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from contracts.schema import FEATURE_NAMES, dimension_warning
from training.explain import PriceExplanation, explain
from training.predict import PriceModel


def columns(stones: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [stone[name] for stone in stones] for name in FEATURE_NAMES}


def price_range(model: PriceModel, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The interval that held 80 % of validation prices around the prediction (stored in the
    artifact): a plausible range, not a guarantee."""
    interval = model.metadata.get("interval") or {}
    low = math.exp(float(interval.get("log_low", 0.0)))
    high = math.exp(float(interval.get("log_high", 0.0)))
    quantiles = interval.get("quantiles", [0.1, 0.9])
    return prices * low, prices * high, float(quantiles[1] - quantiles[0])


def dollar_effects(explanation: PriceExplanation) -> list[float]:
    """Each factor's share of (price - base price) in dollars; the shares add up exactly.

    Factors multiply, so dollars are shared in proportion to each factor's log effect, scaled by
    the logarithmic mean of price and base price (the LMDI decomposition): no factor's share
    depends on the order the factors are listed in, and price = base + the sum of the shares.
    """
    price, base = explanation.price, explanation.base_price
    log_gap = math.log(price) - math.log(base)
    scale = price if abs(log_gap) < 1e-12 else (price - base) / log_gap
    return [f.log_contribution * scale for f in explanation.factors]


def warnings_for(stone: dict[str, Any]) -> list[str]:
    warning = dimension_warning(stone["carat"], stone["x"], stone["y"], stone["z"])
    return [warning] if warning else []


def quote(
    model: PriceModel, stones: Sequence[dict[str, Any]], *, with_explanation: bool
) -> list[dict[str, Any]]:
    """One quote per stone: price, plausible range and (optionally) its explanation."""
    rows = columns(stones)
    if with_explanation:
        explanations = explain(model, rows)
        prices = np.array([e.price for e in explanations])
    else:
        explanations = []
        prices = model.predict(rows)
    low, high, coverage = price_range(model, prices)
    quotes = []
    for i, price in enumerate(prices):
        item: dict[str, Any] = {
            "price_usd": round(float(price), 2),
            "range_usd": {
                "low": round(float(low[i]), 2),
                "high": round(float(high[i]), 2),
                "coverage": coverage,
            },
            "explanation": None,
            "warnings": warnings_for(stones[i]),
        }
        if with_explanation:
            e = explanations[i]
            item["explanation"] = {
                "base_price_usd": round(e.base_price, 2),
                "factors": [
                    {
                        "name": f.name,
                        "factor": round(f.factor, 6),
                        "effect_percent": round(f.effect_usd_percent, 3),
                        "effect_usd": round(dollars, 2),
                        "inputs": f.inputs,
                    }
                    for f, dollars in zip(e.factors, dollar_effects(e), strict=True)
                ],
            }
        quotes.append(item)
    return quotes
