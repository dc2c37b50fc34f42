"""Strata: the values of a protocol's stratification factors for a case, frozen at enrollment.

A stratum is stored as canonical JSON of {factor: value} (its identity, used by the
randomizer) and shown as a readable label such as `primary_barrier=social|months_band=6-12`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trials.protocol import Protocol

MISSING = "(missing)"


def months_band(months: float, bands: Sequence[float]) -> str:
    """The label of the band a number of months falls in: lower edges [0, 6, 12] give
    `0-6`, `6-12`, `12+` (lower edge included, upper excluded)."""
    label = f"{_fmt(bands[-1])}+"
    for lower, upper in zip(bands, bands[1:], strict=False):
        if lower <= months < upper:
            label = f"{_fmt(lower)}-{_fmt(upper)}"
            break
    return label


def band_labels(bands: Sequence[float]) -> list[str]:
    """Every band label in order, for tables that must show empty bands too."""
    return [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(bands, bands[1:], strict=False)] + [f"{_fmt(bands[-1])}+"]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def case_stratum(protocol: Protocol, case: Mapping[str, Any]) -> dict[str, str]:
    """The stratum values of a case under a case-level protocol.

    `case` has the case's categorisation: primary_barrier, months_unemployed, benefit_type,
    team, caseworker and a `covariates` mapping (for `covariate:<name>` factors).
    """
    values: dict[str, str] = {}
    for factor in protocol.stratification.factors:
        if factor == "months_band":
            values[factor] = months_band(float(case["months_unemployed"]), protocol.stratification.months_bands)
        elif factor.startswith("covariate:"):
            value = (case.get("covariates") or {}).get(factor.removeprefix("covariate:"))
            values[factor] = MISSING if value is None or value == "" else str(value)
        else:
            value = case.get(factor)
            values[factor] = MISSING if value is None or value == "" else str(value)
    return values


def cluster_stratum(protocol: Protocol, size: int, team: str | None) -> dict[str, str]:
    """The stratum of a caseworker or team cluster: its size band and/or its team."""
    values: dict[str, str] = {}
    for factor in protocol.stratification.factors:
        if factor == "size_band":
            values[factor] = months_band(size, protocol.stratification.cluster_size_bands)
        elif factor == "team":
            values[factor] = team or MISSING
    return values


def stratum_key(values: Mapping[str, str]) -> str:
    """The canonical identity of a stratum (sorted-key JSON)."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stratum_values(key: str) -> dict[str, str]:
    """The factor values of a stratum from its `stratum_key`."""
    return dict(json.loads(key))


def stratum_label(values: Mapping[str, str]) -> str:
    """A readable label in factor order, e.g. `primary_barrier=social|months_band=6-12`."""
    return "|".join(f"{factor}={value}" for factor, value in values.items()) or "(all)"


@dataclass(frozen=True)
class StratumSize:
    label: str
    n: int
    too_small: bool


def stratum_sizes(protocol: Protocol, strata: Iterable[Mapping[str, str]]) -> list[StratumSize]:
    """How many units fall in each stratum; flags strata smaller than the smallest block,
    where permuted blocks cannot complete even one block (and complete/minimization strata
    with fewer units than arms)."""
    counts = Counter(stratum_label(values) for values in strata)
    sizes = protocol.stratification.block_sizes
    smallest = min(sizes) if protocol.stratification.method == "permuted_blocks" and sizes else len(protocol.arms)
    return [StratumSize(label, n, n < smallest) for label, n in sorted(counts.items())]
