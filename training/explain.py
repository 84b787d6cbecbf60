"""Explanations for people: a base price multiplied by one factor per feature.

Contributions are additive in log price, so price = exp(base) x prod(exp(contribution)). Features
a person thinks of as one thing (carat, x, y, z: the stone's size) are shown as one factor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.schema import EXPLANATION_GROUPS, FEATURES, example_diamond, explanation_group
from training.features import Columns
from training.predict import FeatureContributions, PriceModel


@dataclass(frozen=True)
class Factor:
    name: str
    factor: float
    log_contribution: float
    inputs: dict[str, Any]

    @property
    def effect_usd_percent(self) -> float:
        return (self.factor - 1.0) * 100.0


@dataclass(frozen=True)
class PriceExplanation:
    price: float
    base_price: float
    factors: tuple[Factor, ...]

    def reconstructed_price(self) -> float:
        product = self.base_price
        for factor in self.factors:
            product *= factor.factor
        return product

    def to_dict(self) -> dict[str, Any]:
        return {
            "price": self.price,
            "base_price": self.base_price,
            "factors": [
                {
                    "name": f.name,
                    "factor": f.factor,
                    "effect_percent": f.effect_usd_percent,
                    "inputs": f.inputs,
                }
                for f in self.factors
            ],
        }


def display_groups() -> list[tuple[str, tuple[str, ...]]]:
    """(factor name, member features) in schema order, each group once."""
    groups: list[tuple[str, tuple[str, ...]]] = []
    seen: set[str] = set()
    for feature in FEATURES:
        group = explanation_group(feature.name)
        if group in seen:
            continue
        seen.add(group)
        groups.append((group, EXPLANATION_GROUPS.get(group, (feature.name,))))
    return groups


def group_contributions(contributions: FeatureContributions) -> tuple[list[str], np.ndarray]:
    """Contributions summed within each display group: (group names, rows x groups)."""
    index = {name: i for i, name in enumerate(contributions.feature_names)}
    names: list[str] = []
    columns: list[np.ndarray] = []
    for group, members in display_groups():
        names.append(group)
        columns.append(contributions.by_feature[:, [index[m] for m in members]].sum(axis=1))
    return names, np.stack(columns, axis=1)


def explain(model: PriceModel, rows: Columns) -> list[PriceExplanation]:
    """One explanation per row, factors ranked by how far they move the price."""
    contributions = model.contributions(rows)
    group_names, grouped = group_contributions(contributions)
    members = dict(display_groups())
    values = {name: np.asarray(rows[name]) for group in members.values() for name in group}
    explanations = []
    for i, log_price in enumerate(contributions.log_price):
        factors = [
            Factor(
                name=name,
                factor=float(np.exp(grouped[i, j])),
                log_contribution=float(grouped[i, j]),
                inputs={m: _plain(values[m][i]) for m in members[name]},
            )
            for j, name in enumerate(group_names)
        ]
        factors.sort(key=lambda f: abs(f.log_contribution), reverse=True)
        explanations.append(
            PriceExplanation(
                price=float(np.exp(log_price)),
                base_price=float(np.exp(contributions.base[i])),
                factors=tuple(factors),
            )
        )
    return explanations


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def one_price_latency_ms(
    model: PriceModel, *, calls: int = 200, rounds: int = 1
) -> tuple[float, float]:
    """p50 and p99 (ms) of one price with its explanation, in process, as serving computes it:
    the lowest of `rounds` rounds, as timeit does, because on a shared VM another tenant's burst
    (CPU steal) inflates a tail that is not the model's."""
    row = {name: [value] for name, value in example_diamond().items()}
    for _ in range(20):
        explain(model, row)
    percentiles = []
    for _ in range(rounds):
        timings = np.empty(calls)
        for i in range(calls):
            tick = time.perf_counter()
            explain(model, row)
            timings[i] = time.perf_counter() - tick
        percentiles.append(np.percentile(timings, [50, 99]) * 1e3)
    p50, p99 = np.min(np.asarray(percentiles), axis=0)
    return float(p50), float(p99)
