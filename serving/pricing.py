"""Pricing as a pure function of a loaded model and stones: prices, ranges, explanations."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.schema import FEATURE_NAMES, dimension_warning, explanation_factor_names
from training.explain import PriceExplanation, explain, group_contributions
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


@dataclass(frozen=True)
class PriceTable:
    """Prices of many stones as columns: what the hosting container's text/csv answer holds."""

    prices: np.ndarray
    low: np.ndarray
    high: np.ndarray
    base: np.ndarray | None = None
    factors: np.ndarray | None = None  # rows x explanation_factor_names()


def price_table(
    model: PriceModel, stones: Sequence[dict[str, Any]], *, explain: bool
) -> PriceTable:
    """The numbers `quote` gives, computed the same way, without a dictionary per stone: with an
    explanation, the price is base x factors (as in `explain`); without, the model's prediction."""
    rows = columns(stones)
    if not explain:
        prices = model.predict(rows)
        low, high, _ = price_range(model, prices)
        return PriceTable(prices, low, high)
    contributions = model.contributions(rows)
    names, grouped = group_contributions(contributions)
    if tuple(names) != explanation_factor_names():
        raise AssertionError(f"explanation factors {names} differ from the contract's")
    prices = np.exp(contributions.log_price)
    low, high, _ = price_range(model, prices)
    return PriceTable(prices, low, high, np.exp(contributions.base), np.exp(grouped))


def scored_csv(table: PriceTable, stones: Sequence[dict[str, Any]]) -> str:
    """One line per stone, in order, columns contracts.schema.scored_columns(explain)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # Python's round, as `quote` rounds: numpy's can differ on a half cent.
    cents = [[round(v, 2) for v in c.tolist()] for c in (table.prices, table.low, table.high)]
    explained = table.base is not None and table.factors is not None
    base = table.base.tolist() if table.base is not None else []
    factors = table.factors.tolist() if table.factors is not None else []
    for i, stone in enumerate(stones):
        line: list[Any] = [cents[0][i], cents[1][i], cents[2][i]]
        if explained:
            line += [base[i], *factors[i]]  # full precision: str(float) round-trips
        line.append(" ".join(warnings_for(stone)))
        writer.writerow(line)
    return out.getvalue()
